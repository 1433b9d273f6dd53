//! The licensee's identity, read once per connection from its verified client certificate.

use rustls_pki_types::CertificateDer;
use sluice_certs::{identity_from_der, IdentityKind};

/// What the client certificate of a connection says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// No certificate (public listener).
    None,
    /// A verified certificate carrying a licensee identity.
    Licensee(Licensee),
    /// A verified certificate without a usable licensee identity; why.
    Invalid {
        /// Why the certificate carries no licensee identity.
        reason: String,
        /// Fingerprint and serial, for the audit.
        fingerprint: String,
        /// Serial, hex.
        serial: String,
    },
}

/// A licensee as proven by its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Licensee {
    /// Licensee id from `urn:sluice:licensee:<id>`.
    pub id: String,
    /// SHA-256 fingerprint of the certificate, hex.
    pub fingerprint: String,
    /// Certificate serial, hex.
    pub serial: String,
}

/// Reads the identity from the peer's certificate chain (leaf first), as verified by rustls.
pub fn peer_identity(chain: Option<&[CertificateDer<'_>]>) -> PeerIdentity {
    let Some(leaf) = chain.and_then(|c| c.first()) else {
        return PeerIdentity::None;
    };
    match identity_from_der(leaf.as_ref()) {
        Ok(id) if id.kind == IdentityKind::Licensee => PeerIdentity::Licensee(Licensee {
            id: id.id,
            fingerprint: id.sha256_fingerprint_hex,
            serial: id.serial_hex,
        }),
        Ok(id) => PeerIdentity::Invalid {
            reason: format!("certificate identifies a {:?}, not a licensee", id.kind),
            fingerprint: id.sha256_fingerprint_hex,
            serial: id.serial_hex,
        },
        Err(e) => {
            use sha2::Digest;
            PeerIdentity::Invalid {
                reason: e.to_string(),
                fingerprint: hex::encode(sha2::Sha256::digest(leaf.as_ref())),
                serial: String::new(),
            }
        }
    }
}
