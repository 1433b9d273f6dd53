//! Issuing and renewing leaf certificates: gateway servers, licensees, admins, gateway clients.

use std::borrow::Borrow;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use openssl::x509::{X509Ref, X509};

use crate::ca::Ca;
use crate::error::{CertError, Result};
use crate::identity::{self, IdentityKind};
use crate::store::IssuedKind;
use crate::template::{self, CertSpec, Profile, San};
use crate::util;

/// Default validity of leaf certificates, in days.
pub const DEFAULT_LEAF_DAYS: u32 = 365;

/// Parameters of a gateway TLS server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueGateway {
    /// DNS names the gateway is reached by (the first one is also the CN).
    pub dns: Vec<String>,
    /// IP addresses the gateway is reached by.
    pub ips: Vec<IpAddr>,
    /// Validity in days (at least 1).
    pub days: u32,
}

/// A freshly issued certificate with its private key.
#[derive(Clone)]
pub struct IssuedCert {
    /// What the certificate is for.
    pub kind: IssuedKind,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM. Handle with care; never log it.
    pub key_pem: String,
    /// Leaf followed by the issuing intermediate, PEM, when the issuer is an intermediate CA.
    pub chain_pem: Option<String>,
    /// Serial number, lower-case hex.
    pub serial_hex: String,
    /// End of validity, unix seconds.
    pub not_after: i64,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("kind", &self.kind)
            .field("serial_hex", &self.serial_hex)
            .field("not_after", &self.not_after)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The files [`IssuedCert::write_to`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFiles {
    /// `<basename>.pem`: the certificate.
    pub cert: PathBuf,
    /// `<basename>.key`: the private key, mode 0600.
    pub key: PathBuf,
    /// `<basename>.chain.pem`: leaf + intermediate, when the issuer is an intermediate.
    pub chain: Option<PathBuf>,
}

impl IssuedCert {
    /// Writes `<basename>.pem`, `<basename>.key` (mode 0600) and, when the issuer is an
    /// intermediate, `<basename>.chain.pem` into `dir` (created if missing). Existing files
    /// are replaced atomically (this is how rotation works); a replaced key file never has
    /// looser permissions than 0600, even for an instant.
    pub fn write_to(&self, dir: impl AsRef<Path>, basename: &str) -> Result<WrittenFiles> {
        let dir = dir.as_ref();
        if basename.is_empty() || basename.contains('/') || basename.starts_with('.') {
            return Err(CertError::InvalidInput(format!(
                "bad file base name {basename:?}"
            )));
        }
        util::create_dir(dir)?;
        let cert = dir.join(format!("{basename}.pem"));
        let key = dir.join(format!("{basename}.key"));
        util::write_atomic(&key, self.key_pem.as_bytes(), 0o600)?;
        util::write_atomic(&cert, self.cert_pem.as_bytes(), 0o644)?;
        let chain = match &self.chain_pem {
            Some(pem) => {
                let p = dir.join(format!("{basename}.chain.pem"));
                util::write_atomic(&p, pem.as_bytes(), 0o644)?;
                Some(p)
            }
            None => None,
        };
        Ok(WrittenFiles { cert, key, chain })
    }
}

/// Issues a gateway TLS server certificate (serverAuth, DNS and IP SANs, no sluice URI).
///
/// Takes the parameters by value or by reference.
pub fn issue_gateway(ca: &Ca, params: impl Borrow<IssueGateway>) -> Result<IssuedCert> {
    let params = params.borrow();
    if params.dns.is_empty() && params.ips.is_empty() {
        return Err(CertError::InvalidInput(
            "a gateway certificate needs at least one --dns or --ip".into(),
        ));
    }
    for d in &params.dns {
        validate_dns(d)?;
    }
    let cn = params
        .dns
        .first()
        .cloned()
        .unwrap_or_else(|| "sluice-gateway".to_string());
    let mut sans: Vec<San> = params.dns.iter().cloned().map(San::Dns).collect();
    sans.extend(params.ips.iter().copied().map(San::Ip));
    let profile = Profile::Server {
        key_encipherment: ca.algorithm().key_encipherment(),
    };
    issue(ca, &cn, params.days, profile, sans, IssuedKind::Gateway, None)
}

/// Issues a licensee client certificate: SAN URI `urn:sluice:licensee:<id>`, clientAuth.
pub fn issue_licensee(ca: &Ca, id: &str, days: u32) -> Result<IssuedCert> {
    issue_identity(ca, IdentityKind::Licensee, id, days)
}

/// Issues an administrator client certificate: SAN URI `urn:sluice:admin:<name>`, clientAuth.
pub fn issue_admin(ca: &Ca, name: &str, days: u32) -> Result<IssuedCert> {
    issue_identity(ca, IdentityKind::Admin, name, days)
}

/// Issues a gateway's client certificate towards the registry: SAN URI
/// `urn:sluice:gateway:<id>`, clientAuth.
pub fn issue_gateway_client(ca: &Ca, gateway_id: &str, days: u32) -> Result<IssuedCert> {
    issue_identity(ca, IdentityKind::Gateway, gateway_id, days)
}

/// Issues a client certificate for any sluice identity kind (the CN is the id, for humans only;
/// the identity is the SAN URI).
pub fn issue_identity(ca: &Ca, kind: IdentityKind, id: &str, days: u32) -> Result<IssuedCert> {
    let uri = kind.uri(id)?;
    let profile = Profile::Client {
        key_encipherment: ca.algorithm().key_encipherment(),
    };
    let issued_kind = match kind {
        IdentityKind::Licensee => IssuedKind::Licensee,
        IdentityKind::Admin => IssuedKind::Admin,
        IdentityKind::Gateway => IssuedKind::GatewayClient,
    };
    issue(
        ca,
        id,
        days,
        profile,
        vec![San::Uri(uri.clone())],
        issued_kind,
        Some(uri),
    )
}

/// Renews a licensee certificate: a new key and a new certificate with the same identity.
/// The existing certificate must carry a licensee identity and have been issued by `ca`.
/// The old certificate stays valid until it expires or is revoked (reason `superseded`).
pub fn renew_licensee(ca: &Ca, existing_cert_pem: &str, days: u32) -> Result<IssuedCert> {
    let issued = renew(ca, existing_cert_pem, days)?;
    if issued.kind != IssuedKind::Licensee {
        return Err(CertError::InvalidInput(format!(
            "not a licensee certificate but {}",
            issued.kind
        )));
    }
    Ok(issued)
}

/// Renews any certificate issued by `ca`: a new key and a new certificate with the same
/// sluice identity, or, for a gateway server certificate, the same DNS and IP names.
pub fn renew(ca: &Ca, existing_cert_pem: &str, days: u32) -> Result<IssuedCert> {
    let old = X509::from_pem(existing_cert_pem.as_bytes())
        .map_err(|e| CertError::NotACertificate(e.to_string()))?;
    if !old.verify(&*ca.certificate().public_key()?)? {
        return Err(CertError::NotIssuedByThisCa(format!(
            "its signature does not verify with the key of {}",
            ca.dir().display()
        )));
    }
    match identity::identity_of(&old) {
        Ok(id) => issue_identity(ca, id.kind, &id.id, days),
        Err(CertError::NoIdentity(_)) => {
            let (dns, ips) = server_names(&old);
            issue_gateway(ca, IssueGateway { dns, ips, days })
        }
        Err(e) => Err(e),
    }
}

fn server_names(cert: &X509Ref) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    if let Some(names) = cert.subject_alt_names() {
        for n in names.iter() {
            if let Some(d) = n.dnsname() {
                dns.push(d.to_string());
            } else if let Some(ip) = n.ipaddress().and_then(crate::inspect::ip_from_bytes) {
                ips.push(ip);
            }
        }
    }
    (dns, ips)
}

fn issue(
    ca: &Ca,
    cn: &str,
    days: u32,
    profile: Profile,
    sans: Vec<San>,
    kind: IssuedKind,
    identity: Option<String>,
) -> Result<IssuedCert> {
    let key = ca.algorithm().generate()?;
    let spec = CertSpec {
        common_name: cn,
        days,
        profile,
        sans,
    };
    let cert = template::sign(&spec, &key, Some(ca.certificate()), ca.key())?;
    ca.record(&cert, kind, identity)?;
    let cert_pem = pem(cert.to_pem()?)?;
    let chain_pem = match ca.chain_for_leaf() {
        Some(intermediate) => Some(format!("{cert_pem}{}", pem(intermediate.to_pem()?)?)),
        None => None,
    };
    let key_pem = pem(key.private_key_to_pem_pkcs8()?)?;
    Ok(IssuedCert {
        kind,
        cert_pem,
        key_pem,
        chain_pem,
        serial_hex: util::serial_hex(cert.serial_number())?,
        not_after: util::asn1_to_unix(cert.not_after())?,
    })
}

fn pem(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| CertError::InvalidInput(e.to_string()))
}

/// Accepts LDH host names (optionally with a leading `*.` wildcard label).
fn validate_dns(name: &str) -> Result<()> {
    let bad = || CertError::InvalidInput(format!("invalid DNS name {name:?}"));
    let rest = name.strip_prefix("*.").unwrap_or(name);
    if rest.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    for label in rest.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        for ok in ["localhost", "gw.agency-a.example", "*.example.org", "a1"] {
            validate_dns(ok).unwrap();
        }
        for bad in ["", "a..b", "-a.b", "a b", "*.", "a_b", "x/y", "*.*.a"] {
            assert!(validate_dns(bad).is_err(), "{bad}");
        }
    }
}
