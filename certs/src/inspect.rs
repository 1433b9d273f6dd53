//! Human-readable certificate descriptions and expiry helpers.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::Id;
use openssl::x509::{X509ExtendedKeyUsage, X509KeyUsage, X509NameRef, X509Ref, X509};

use crate::error::{CertError, Result};
use crate::identity;
use crate::util;

/// Describes every certificate in a PEM text (a single certificate or a chain) for humans:
/// subject, issuer, serial, validity, key, SANs, key usage, EKU, SHA-256 fingerprint, and the
/// sluice identity it carries (or why it carries none).
pub fn inspect(pem: &str) -> Result<String> {
    let certs =
        X509::stack_from_pem(pem.as_bytes()).map_err(|e| CertError::NotACertificate(e.to_string()))?;
    if certs.is_empty() {
        return Err(CertError::NotACertificate("no PEM certificate found".to_string()));
    }
    let mut out = String::new();
    for (i, cert) in certs.iter().enumerate() {
        if certs.len() > 1 {
            let _ = writeln!(out, "certificate #{} of {}", i + 1, certs.len());
        }
        describe(cert, &mut out)?;
        if i + 1 < certs.len() {
            out.push('\n');
        }
    }
    Ok(out)
}

fn describe(cert: &X509Ref, out: &mut String) -> Result<()> {
    let now = util::now_unix();
    let nb = util::asn1_to_unix(cert.not_before())?;
    let na = util::asn1_to_unix(cert.not_after())?;
    let status = if now < nb {
        "not yet valid".to_string()
    } else if now > na {
        "EXPIRED".to_string()
    } else {
        format!("valid, {} days left", (na - now) / util::DAY_SECS)
    };
    let _ = writeln!(out, "subject:      {}", render_name(cert.subject_name()));
    let _ = writeln!(out, "issuer:       {}", render_name(cert.issuer_name()));
    let _ = writeln!(out, "serial:       {}", util::serial_hex(cert.serial_number())?);
    let _ = writeln!(out, "not before:   {}", util::rfc3339(nb));
    let _ = writeln!(out, "not after:    {} ({status})", util::rfc3339(na));
    let _ = writeln!(out, "key:          {}", describe_key(cert));
    let sans = render_sans(cert);
    let _ = writeln!(
        out,
        "SANs:         {}",
        if sans.is_empty() {
            "(none)".to_string()
        } else {
            sans.join(", ")
        }
    );
    let _ = writeln!(out, "CA:           {}", if is_ca(cert) { "yes" } else { "no" });
    let _ = writeln!(out, "key usage:    {}", render_key_usage(cert));
    let _ = writeln!(out, "ext. usage:   {}", render_eku(cert));
    let _ = writeln!(
        out,
        "sha256:       {}",
        hex::encode(cert.digest(MessageDigest::sha256())?)
    );
    let ident = match identity::identity_of(cert) {
        Ok(id) => id.uri(),
        Err(e) => format!("none: {e}"),
    };
    let _ = writeln!(out, "sluice id:    {ident}");
    Ok(())
}

/// Whole days until the (first) certificate in `pem` expires; negative once expired.
/// Meant for metrics such as `sluice_cert_days_to_expiry`.
pub fn days_to_expiry(pem: &str) -> Result<i64> {
    let cert = X509::from_pem(pem.as_bytes()).map_err(|e| CertError::NotACertificate(e.to_string()))?;
    let na = util::asn1_to_unix(cert.not_after())?;
    Ok((na - util::now_unix()).div_euclid(util::DAY_SECS))
}

/// The (first) common name of a name, or an empty string.
pub(crate) fn common_name(name: &X509NameRef) -> String {
    name.entries_by_nid(Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// `O=sluice, CN=…`.
pub(crate) fn render_name(name: &X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e
                .data()
                .to_string()
                .map(|s| s.to_string())
                .unwrap_or_else(|_| "<binary>".into());
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// SANs as `DNS:…`, `IP:…`, `URI:…`, `email:…`, `other`.
pub(crate) fn render_sans(cert: &X509Ref) -> Vec<String> {
    let Some(names) = cert.subject_alt_names() else {
        return Vec::new();
    };
    names
        .iter()
        .map(|n| {
            if let Some(d) = n.dnsname() {
                format!("DNS:{d}")
            } else if let Some(u) = n.uri() {
                format!("URI:{u}")
            } else if let Some(ip) = n.ipaddress() {
                ip_from_bytes(ip)
                    .map(|ip| format!("IP:{ip}"))
                    .unwrap_or_else(|| "IP:<malformed>".into())
            } else if let Some(e) = n.email() {
                format!("email:{e}")
            } else {
                "other".to_string()
            }
        })
        .collect()
}

/// An IP address from its 4- or 16-byte SAN encoding.
pub(crate) fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        Some(IpAddr::V4(Ipv4Addr::from(v4)))
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        Some(IpAddr::V6(Ipv6Addr::from(v6)))
    } else {
        None
    }
}

fn is_ca(cert: &X509Ref) -> bool {
    cert.key_usage()
        .is_some_and(|ku| ku.contains(X509KeyUsage::KEY_CERT_SIGN))
        || cert.pathlen().is_some()
}

fn describe_key(cert: &X509Ref) -> String {
    let Ok(key) = cert.public_key() else {
        return "unreadable".to_string();
    };
    match key.id() {
        Id::EC => {
            let curve = key
                .ec_key()
                .ok()
                .and_then(|k| k.group().curve_name())
                .and_then(|n| n.short_name().ok())
                .unwrap_or("unknown curve");
            format!("EC {curve}")
        }
        Id::RSA => format!("RSA {} bits", key.bits()),
        other => format!("{other:?}"),
    }
}

fn render_key_usage(cert: &X509Ref) -> String {
    let Some(ku) = cert.key_usage() else {
        return "(unrestricted)".to_string();
    };
    let names = [
        (X509KeyUsage::DIGITAL_SIGNATURE, "digitalSignature"),
        (X509KeyUsage::NON_REPUDIATION, "nonRepudiation"),
        (X509KeyUsage::KEY_ENCIPHERMENT, "keyEncipherment"),
        (X509KeyUsage::DATA_ENCIPHERMENT, "dataEncipherment"),
        (X509KeyUsage::KEY_AGREEMENT, "keyAgreement"),
        (X509KeyUsage::KEY_CERT_SIGN, "keyCertSign"),
        (X509KeyUsage::CRL_SIGN, "cRLSign"),
    ];
    let list: Vec<&str> = names
        .iter()
        .filter(|(f, _)| ku.contains(*f))
        .map(|(_, n)| *n)
        .collect();
    if list.is_empty() {
        "(none)".to_string()
    } else {
        list.join(", ")
    }
}

fn render_eku(cert: &X509Ref) -> String {
    let Some(eku) = cert.extended_key_usage() else {
        return "(unrestricted)".to_string();
    };
    let names = [
        (X509ExtendedKeyUsage::SSL_SERVER, "serverAuth"),
        (X509ExtendedKeyUsage::SSL_CLIENT, "clientAuth"),
        (X509ExtendedKeyUsage::CODE_SIGN, "codeSigning"),
        (X509ExtendedKeyUsage::SMIME, "emailProtection"),
        (X509ExtendedKeyUsage::TIMESTAMP, "timeStamping"),
        (X509ExtendedKeyUsage::OCSP_SIGN, "OCSPSigning"),
        (X509ExtendedKeyUsage::ANYEKU, "anyExtendedKeyUsage"),
    ];
    let list: Vec<&str> = names
        .iter()
        .filter(|(f, _)| eku.contains(*f))
        .map(|(_, n)| *n)
        .collect();
    if list.is_empty() {
        "(none recognised)".to_string()
    } else {
        list.join(", ")
    }
}
