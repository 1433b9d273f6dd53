//! Reading the sluice identity out of a certificate.
//!
//! **Security rules.** The identity comes only from subject-alternative-name URIs of the
//! exact form `urn:sluice:<kind>:<id>` with `<kind>` one of `licensee`, `admin`, `gateway`
//! and `<id>` matching `[A-Za-z0-9._-]{1,64}`:
//!
//! * exactly one SAN URI starting (case-insensitively) with `urn:sluice:` must be present;
//!   two or more are an error, even if they agree, and a variant spelling such as
//!   `URN:Sluice:licensee:x` counts towards that total and is itself an error;
//! * the subject common name is never consulted, even if it looks like an identity;
//! * other URI schemes (`https://…`, `urn:other:…`), DNS names and IP addresses are ignored.
//!
//! **What this does not do.** [`identity_from_der`] does not verify the certificate chain,
//! the signature, the validity period, the key usage or revocation: a certificate signed by
//! any CA yields the identity it claims. Issuer verification is the TLS layer's job (rustls
//! `WebPkiClientVerifier` with the sluice root and CRLs in the gateway); call this only on a
//! peer certificate the TLS handshake has already verified.

use std::fmt;
use std::str::FromStr;

use openssl::hash::MessageDigest;
use openssl::x509::{X509Ref, X509};
use serde::{Deserialize, Serialize};

use crate::error::{CertError, Result};
use crate::util;

/// The URI prefix shared by every sluice identity.
pub const URI_PREFIX: &str = "urn:sluice:";

/// What kind of principal a certificate identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityKind {
    /// An approved enterprise calling agency data (`urn:sluice:licensee:<id>`).
    Licensee,
    /// An administrator of the licence authority (`urn:sluice:admin:<name>`).
    Admin,
    /// A gateway authenticating to the registry (`urn:sluice:gateway:<id>`).
    Gateway,
}

impl IdentityKind {
    /// The `<kind>` segment of the URI.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Licensee => "licensee",
            IdentityKind::Admin => "admin",
            IdentityKind::Gateway => "gateway",
        }
    }

    /// The SAN URI for `id` of this kind (`id` is validated).
    pub fn uri(self, id: &str) -> Result<String> {
        validate_id(id)?;
        Ok(format!("{URI_PREFIX}{}:{id}", self.as_str()))
    }
}

impl fmt::Display for IdentityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IdentityKind {
    type Err = CertError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "licensee" => Ok(IdentityKind::Licensee),
            "admin" => Ok(IdentityKind::Admin),
            "gateway" => Ok(IdentityKind::Gateway),
            other => Err(CertError::InvalidInput(format!(
                "unknown identity kind {other:?}"
            ))),
        }
    }
}

/// The sluice identity a certificate carries, with the facts the gateway logs and checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Licensee, admin or gateway.
    pub kind: IdentityKind,
    /// The validated id (`[A-Za-z0-9._-]{1,64}`).
    pub id: String,
    /// Certificate serial, lower-case hex without leading zeros (as in the CA index and CRLs).
    pub serial_hex: String,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub sha256_fingerprint_hex: String,
    /// Start of validity, unix seconds.
    pub not_before: i64,
    /// End of validity, unix seconds.
    pub not_after: i64,
}

impl Identity {
    /// The SAN URI this identity came from.
    pub fn uri(&self) -> String {
        format!("{URI_PREFIX}{}:{}", self.kind, self.id)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} (serial {})", self.kind, self.id, self.serial_hex)
    }
}

/// Checks an id against `[A-Za-z0-9._-]{1,64}` (the rule is [`sluice_policy::id::is_valid_id`]).
pub fn validate_id(id: &str) -> Result<()> {
    if sluice_policy::id::is_valid_id(id) {
        Ok(())
    } else {
        Err(CertError::InvalidId(id.to_string()))
    }
}

/// Extracts the sluice identity from a DER certificate (for example the peer certificate
/// rustls hands over). See the module documentation for the rules, and note that this
/// function does **not** verify who issued the certificate.
pub fn identity_from_der(der: &[u8]) -> Result<Identity> {
    let cert = X509::from_der(der).map_err(|e| CertError::NotACertificate(e.to_string()))?;
    identity_of(&cert)
}

/// Like [`identity_from_der`], for the first certificate of a PEM text.
pub fn identity_from_pem(pem: &[u8]) -> Result<Identity> {
    let cert = X509::from_pem(pem).map_err(|e| CertError::NotACertificate(e.to_string()))?;
    identity_of(&cert)
}

/// Extracts the sluice identity from a parsed certificate.
pub fn identity_of(cert: &X509Ref) -> Result<Identity> {
    let (kind, id) = parse_identity_uri(cert)?;
    Ok(Identity {
        kind,
        id,
        serial_hex: util::serial_hex(cert.serial_number())?,
        sha256_fingerprint_hex: hex::encode(cert.digest(MessageDigest::sha256())?),
        not_before: util::asn1_to_unix(cert.not_before())?,
        not_after: util::asn1_to_unix(cert.not_after())?,
    })
}

/// Applies the identity rules to the certificate's SAN URIs.
fn parse_identity_uri(cert: &X509Ref) -> Result<(IdentityKind, String)> {
    let sluice_uris: Vec<String> = cert
        .subject_alt_names()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.uri())
                .filter(|u| {
                    u.as_bytes()
                        .get(..URI_PREFIX.len())
                        .is_some_and(|p| p.eq_ignore_ascii_case(URI_PREFIX.as_bytes()))
                })
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    match sluice_uris.as_slice() {
        [] => Err(CertError::NoIdentity(no_identity_reason(cert))),
        [uri] => parse_uri(uri),
        more => Err(CertError::AmbiguousIdentity(more.len())),
    }
}

/// Parses `urn:sluice:<kind>:<id>` exactly (lower-case prefix and kind).
pub fn parse_uri(uri: &str) -> Result<(IdentityKind, String)> {
    let malformed = || CertError::MalformedIdentity(uri.to_string());
    let rest = uri.strip_prefix(URI_PREFIX).ok_or_else(malformed)?;
    let (kind, id) = rest.split_once(':').ok_or_else(malformed)?;
    let kind = IdentityKind::from_str(kind).map_err(|_| malformed())?;
    validate_id(id)?;
    Ok((kind, id.to_string()))
}

fn no_identity_reason(cert: &X509Ref) -> String {
    let has_sans = cert.subject_alt_names().is_some_and(|n| !n.is_empty());
    let cn = crate::inspect::common_name(cert.subject_name());
    let mut reason = if has_sans {
        "no subject-alternative-name URI starts with urn:sluice:".to_string()
    } else {
        "no subject alternative names".to_string()
    };
    if cn.to_ascii_lowercase().starts_with(URI_PREFIX) {
        reason.push_str(" (the subject CN looks like an identity, but the CN is never used)");
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "acme-corp", "A.b_c-9", &"x".repeat(64)] {
            validate_id(ok).unwrap();
        }
        for bad in ["", "a b", "a/b", "a:b", "é", &"x".repeat(65), "a\0", "a\n"] {
            assert!(
                matches!(validate_id(bad), Err(CertError::InvalidId(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn uris() {
        assert_eq!(
            parse_uri("urn:sluice:licensee:acme").unwrap(),
            (IdentityKind::Licensee, "acme".into())
        );
        assert_eq!(parse_uri("urn:sluice:admin:root").unwrap().0, IdentityKind::Admin);
        assert_eq!(
            parse_uri("urn:sluice:gateway:gw-1").unwrap().0,
            IdentityKind::Gateway
        );
        for bad in [
            "URN:SLUICE:licensee:acme",
            "urn:sluice:Licensee:acme",
            "urn:sluice:registry:acme",
            "urn:sluice:licensee",
            "urn:sluice:licensee:",
            "urn:sluice:licensee:a:b",
            "urn:sluice:licensee:a%20b",
        ] {
            assert!(parse_uri(bad).is_err(), "{bad}");
        }
        assert_eq!(IdentityKind::Licensee.uri("x").unwrap(), "urn:sluice:licensee:x");
        assert!(IdentityKind::Licensee.uri("x y").is_err());
    }
}
