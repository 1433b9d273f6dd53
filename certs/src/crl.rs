//! Revocation and certificate revocation lists.

use std::fmt;
use std::str::FromStr;

use openssl::bn::BigNum;
use openssl::x509::extension::{AuthorityKeyIdentifier, CrlNumber};
use openssl::x509::{X509Builder, X509CrlBuilder, X509Revoked, X509RevokedBuilder};
use serde::{Deserialize, Serialize};

use crate::ca::Ca;
use crate::error::{CertError, Result};
use crate::keys::digest;
use crate::store::{self, Revocation};
use crate::util;

/// Why a certificate was revoked (RFC 5280 §5.3.1 CRLReason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    /// No reason given (no reasonCode extension is written, as RFC 5280 recommends).
    Unspecified,
    /// The private key was (or may have been) exposed.
    KeyCompromise,
    /// The issuing CA's key was exposed.
    CaCompromise,
    /// The holder's name or affiliation changed.
    AffiliationChanged,
    /// Replaced by a newer certificate (renewal, rotation).
    Superseded,
    /// The holder stopped operating (licence ended, gateway decommissioned).
    CessationOfOperation,
    /// The holder's privileges were withdrawn (licence revoked for a violation).
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// The RFC 5280 CRLReason code.
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::CaCompromise => 2,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
            RevocationReason::PrivilegeWithdrawn => 9,
        }
    }

    /// The kebab-case name used in the CLI and the index.
    pub fn name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key-compromise",
            RevocationReason::CaCompromise => "ca-compromise",
            RevocationReason::AffiliationChanged => "affiliation-changed",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation-of-operation",
            RevocationReason::PrivilegeWithdrawn => "privilege-withdrawn",
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RevocationReason {
    type Err = CertError;

    fn from_str(s: &str) -> Result<Self> {
        <Self as clap::ValueEnum>::from_str(s, true)
            .map_err(|_| CertError::InvalidInput(format!("unknown revocation reason {s:?}")))
    }
}

/// Marks the certificate with this serial (hex, any case, `:` separators allowed) as revoked
/// in the CA index. Returns the normalised serial. The revocation reaches relying parties
/// through the next [`crl`].
pub fn revoke(ca: &Ca, serial: &str, reason: RevocationReason) -> Result<String> {
    let serial = util::normalize_serial(serial)?;
    let _lock = store::lock_folder(ca.dir())?;
    let mut entries = ca.index()?;
    let entry = entries
        .iter_mut()
        .find(|e| e.serial == serial)
        .ok_or_else(|| CertError::SerialNotFound(serial.clone()))?;
    if entry.revoked.is_some() {
        return Err(CertError::AlreadyRevoked(serial));
    }
    entry.revoked = Some(Revocation {
        reason,
        revoked_at: util::now_unix(),
    });
    store::save_index(ca.dir(), entries)?;
    Ok(serial)
}

/// Produces a signed version 2 CRL (PEM) listing every certificate revoked in the CA index,
/// with reason codes, thisUpdate (now, minus a few minutes for clock skew), nextUpdate
/// (`next_update_hours` later), an authorityKeyIdentifier and a CRL number taken from the
/// folder's `crlnumber` counter (which this call advances).
pub fn crl(ca: &Ca, next_update_hours: u32) -> Result<String> {
    if next_update_hours == 0 || next_update_hours > 24 * 366 {
        return Err(CertError::InvalidInput(format!(
            "next update must be between 1 and 8784 hours, got {next_update_hours}"
        )));
    }
    let now = util::now_unix();
    let mut builder = X509CrlBuilder::new()?;
    builder.set_issuer_name(ca.certificate().subject_name())?;
    builder.set_last_update(&*util::asn1_from_unix(now - util::CLOCK_SKEW_SECS)?)?;
    builder.set_next_update(&*util::asn1_from_unix(now + i64::from(next_update_hours) * 3600)?)?;

    let dummy = X509Builder::new()?;
    let ctx = dummy.x509v3_context(Some(ca.certificate()), None);
    builder.append_extension(AuthorityKeyIdentifier::new().keyid(true).build(&ctx)?)?;
    // The number and the revoked list are read under the lock, so two CRLs never share a
    // number and a later number never lists fewer revocations.
    let _lock = store::lock_folder(ca.dir())?;
    let number = store::take_crl_number(ca.dir())?;
    builder.append_extension(CrlNumber::new(BigNum::from_dec_str(&number.to_string())?)?.build()?)?;

    for entry in ca.index()? {
        let Some(revocation) = entry.revoked else { continue };
        let mut rb = X509RevokedBuilder::new()?;
        rb.set_serial_number(&*util::serial_from_hex(&entry.serial)?)?;
        rb.set_revocation_date(&*util::asn1_from_unix(revocation.revoked_at)?)?;
        let mut revoked = rb.build();
        if revocation.reason != RevocationReason::Unspecified {
            let der = util::revoked_entry_with_reason(&revoked.to_der()?, revocation.reason.code())?;
            revoked = X509Revoked::from_der(&der)?;
        }
        builder.add_revoked(revoked)?;
    }
    builder.sort()?;
    builder.sign(ca.key(), digest())?;
    let crl = builder.build()?;
    String::from_utf8(crl.to_pem()?).map_err(|e| CertError::InvalidInput(e.to_string()))
}
