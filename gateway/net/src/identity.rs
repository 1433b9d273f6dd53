//! Who is calling, read once per connection from the client certificate rustls verified.

use rustls_pki_types::CertificateDer;
use sluice_certs::{identity_from_der, IdentityKind};

/// A party proven by its verified certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The id from `urn:sluice:<kind>:<id>`.
    pub id: String,
    /// SHA-256 fingerprint of the certificate, hex.
    pub fingerprint: String,
    /// Certificate serial, hex.
    pub serial: String,
    /// End of the certificate's validity, unix seconds (`notAfter`).
    pub not_after: i64,
}

/// What the client certificate of a connection says. Both servers use it: the gateway's data
/// plane wants a licensee, the registry an admin or a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// No certificate.
    None,
    /// `urn:sluice:licensee:<id>`.
    Licensee(Peer),
    /// `urn:sluice:gateway:<id>`.
    Gateway(Peer),
    /// `urn:sluice:admin:<name>`.
    Admin(Peer),
    /// A verified certificate without a usable sluice identity; why.
    Invalid {
        /// Why the certificate carries no sluice identity.
        reason: String,
        /// SHA-256 fingerprint, hex, for the audit.
        fingerprint: String,
        /// Serial, hex (empty when the certificate could not be read).
        serial: String,
    },
}

impl PeerIdentity {
    /// Reads the identity from the peer's verified chain (leaf first).
    pub fn from_chain(chain: Option<&[CertificateDer<'_>]>) -> Self {
        let Some(leaf) = chain.and_then(|c| c.first()) else {
            return Self::None;
        };
        match identity_from_der(leaf.as_ref()) {
            Ok(id) => {
                let peer = Peer {
                    id: id.id,
                    fingerprint: id.sha256_fingerprint_hex,
                    serial: id.serial_hex,
                    not_after: id.not_after,
                };
                match id.kind {
                    IdentityKind::Licensee => Self::Licensee(peer),
                    IdentityKind::Gateway => Self::Gateway(peer),
                    IdentityKind::Admin => Self::Admin(peer),
                }
            }
            Err(e) => {
                use sha2::Digest;
                Self::Invalid {
                    reason: e.to_string(),
                    fingerprint: hex::encode(sha2::Sha256::digest(leaf.as_ref())),
                    serial: String::new(),
                }
            }
        }
    }

    /// How the caller is described in refusals and logs.
    pub fn describe(&self) -> String {
        match self {
            Self::None => "no client certificate".into(),
            Self::Admin(p) => format!("admin {}", p.id),
            Self::Gateway(p) => format!("gateway {}", p.id),
            Self::Licensee(p) => format!("licensee {}", p.id),
            Self::Invalid { reason, .. } => {
                format!("a certificate without a sluice identity ({reason})")
            }
        }
    }
}
