//! The one place where certificates are assembled and signed.

use std::net::IpAddr;

use openssl::asn1::Asn1Integer;
use openssl::pkey::{HasPublic, PKeyRef, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509Ref, X509};

use crate::error::{CertError, Result};
use crate::keys::digest;
use crate::util;

/// A subject alternative name to put in a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum San {
    Dns(String),
    Ip(IpAddr),
    Uri(String),
}

/// What the certificate may be used for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Profile {
    /// A CA certificate; `pathlen` limits how many intermediates may follow.
    Ca { pathlen: Option<u32> },
    /// A TLS server leaf.
    Server { key_encipherment: bool },
    /// A TLS client leaf.
    Client { key_encipherment: bool },
}

/// Everything that varies between certificates.
pub(crate) struct CertSpec<'a> {
    pub common_name: &'a str,
    pub days: u32,
    pub profile: Profile,
    pub sans: Vec<San>,
}

/// Builds and signs a certificate for `public_key`. `issuer` is `None` for a self-signed
/// certificate, in which case `self_key` signs. The validity starts [`util::CLOCK_SKEW_SECS`]
/// in the past and never extends beyond the issuer's own notAfter.
pub(crate) fn sign<K: HasPublic>(
    spec: &CertSpec<'_>,
    public_key: &PKeyRef<K>,
    issuer: Option<&X509Ref>,
    signing_key: &PKeyRef<Private>,
) -> Result<X509> {
    util::check_days(spec.days)?;
    if spec.common_name.is_empty() || spec.common_name.len() > 64 {
        return Err(CertError::InvalidInput(format!(
            "common name must be 1 to 64 bytes, got {:?}",
            spec.common_name
        )));
    }
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    b.set_serial_number(&*Asn1Integer::from_bn(&*util::random_serial()?)?)?;

    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("O", "sluice")?;
    name.append_entry_by_text("CN", spec.common_name)?;
    let name = name.build();
    b.set_subject_name(&name)?;
    b.set_issuer_name(issuer.map(|i| i.subject_name()).unwrap_or(&name))?;
    b.set_pubkey(public_key)?;

    let now = util::now_unix();
    let mut not_after = util::asn1_from_unix(now + i64::from(spec.days) * util::DAY_SECS)?;
    if let Some(issuer) = issuer {
        if issuer.not_after() < not_after {
            not_after = util::asn1_from_unix(util::asn1_to_unix(issuer.not_after())?)?;
        }
    }
    b.set_not_before(&*util::asn1_from_unix(now - util::CLOCK_SKEW_SECS)?)?;
    b.set_not_after(&not_after)?;

    match spec.profile {
        Profile::Ca { pathlen } => {
            let mut bc = BasicConstraints::new();
            bc.critical().ca();
            if let Some(p) = pathlen {
                bc.pathlen(p);
            }
            b.append_extension(bc.build()?)?;
            b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
        }
        Profile::Server { key_encipherment } | Profile::Client { key_encipherment } => {
            b.append_extension(BasicConstraints::new().critical().build()?)?;
            let mut ku = KeyUsage::new();
            ku.critical().digital_signature();
            if key_encipherment {
                ku.key_encipherment();
            }
            b.append_extension(ku.build()?)?;
            let mut eku = ExtendedKeyUsage::new();
            if matches!(spec.profile, Profile::Server { .. }) {
                eku.server_auth();
            } else {
                eku.client_auth();
            }
            b.append_extension(eku.build()?)?;
        }
    }

    if !spec.sans.is_empty() {
        let mut san = SubjectAlternativeName::new();
        for s in &spec.sans {
            match s {
                San::Dns(d) => san.dns(d),
                San::Ip(ip) => san.ip(&ip.to_string()),
                San::Uri(u) => san.uri(u),
            };
        }
        let ext = san.build(&b.x509v3_context(issuer, None))?;
        b.append_extension(ext)?;
    }
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(issuer, None))?;
    b.append_extension(ski)?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&b.x509v3_context(issuer, None))?;
    b.append_extension(aki)?;

    b.sign(signing_key, digest())?;
    Ok(b.build())
}
