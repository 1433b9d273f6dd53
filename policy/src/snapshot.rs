//! The signed snapshot the registry distributes to gateways: everything a gateway needs to
//! decide (licences, measures, revoked certificate serials) under a monotonically increasing
//! revision, signed with the registry's Ed25519 key.
//!
//! The payload is carried as the exact JSON bytes that were signed, so verification never
//! depends on re-serialisation. A gateway accepts a snapshot only if the signature verifies
//! under a key it trusts and the revision is not older than the one it holds.

use crate::licence::Licence;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a gateway needs from the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Monotonically increasing revision: the number of the last registry change that altered
    /// what this snapshot carries (changes to anything else leave it).
    pub revision: u64,
    /// When the registry issued this snapshot (unix seconds).
    pub issued_at: i64,
    /// All licences, in every state (suspended and revoked ones included, so refusals are precise).
    pub licences: Vec<Licence>,
    /// Datasets closed by the emergency switch.
    #[serde(default)]
    pub closed_datasets: Vec<String>,
    /// All conditional data closed at once.
    #[serde(default)]
    pub all_conditional_closed: bool,
    /// Licensees whose access a violation measure closed, with the reason.
    #[serde(default)]
    pub restricted_licensees: BTreeMap<String, String>,
    /// Revoked certificate serials (lower-case hex), enforced before a new CRL is published.
    #[serde(default)]
    pub revoked_serials: Vec<String>,
}

/// A snapshot as it travels: the signed JSON bytes, the signature and the signer's key id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedSnapshot {
    /// Key id: the first 16 hex characters of SHA-256 over the public key.
    pub key_id: String,
    /// The snapshot JSON exactly as signed, base64.
    pub payload: String,
    /// Ed25519 signature over the payload bytes, base64.
    pub signature: String,
}

/// Why a snapshot was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Not valid base64 or JSON.
    #[error("malformed snapshot: {0}")]
    Malformed(String),
    /// Signed by a key the gateway does not trust.
    #[error("snapshot signed by unknown key {0}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("snapshot signature does not verify")]
    BadSignature,
    /// Older than the snapshot already held.
    #[error("snapshot revision {got} is older than {held}")]
    Stale {
        /// Revision received.
        got: u64,
        /// Revision held.
        held: u64,
    },
}

/// A trusted key that is not a base64 Ed25519 public key; why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadKey(pub String);

/// Parses a base64 Ed25519 public key (a registry's snapshot key, as configured at gateways).
pub fn parse_public_key(b64: &str) -> Result<VerifyingKey, BadKey> {
    let bytes = STANDARD.decode(b64.trim()).map_err(|e| BadKey(e.to_string()))?;
    let arr: [u8; 32] = bytes.try_into().map_err(|_| BadKey("not 32 bytes".into()))?;
    VerifyingKey::from_bytes(&arr).map_err(|e| BadKey(e.to_string()))
}

/// The key id of a public key.
pub fn key_id(key: &VerifyingKey) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl SignedSnapshot {
    /// Serialises and signs a snapshot.
    pub fn sign(snapshot: &Snapshot, key: &SigningKey) -> Result<Self, SnapshotError> {
        let bytes = serde_json::to_vec(snapshot).map_err(|e| SnapshotError::Malformed(e.to_string()))?;
        let signature = key.sign(&bytes);
        Ok(Self {
            key_id: key_id(&key.verifying_key()),
            payload: STANDARD.encode(&bytes),
            signature: STANDARD.encode(signature.to_bytes()),
        })
    }

    /// Verifies the signature under one of `trusted` keys and that the revision is at least
    /// `held`; returns the snapshot.
    pub fn verify(&self, trusted: &[VerifyingKey], held: u64) -> Result<Snapshot, SnapshotError> {
        let key = trusted
            .iter()
            .find(|k| key_id(k) == self.key_id)
            .ok_or_else(|| SnapshotError::UnknownKey(self.key_id.clone()))?;
        let bytes = STANDARD
            .decode(&self.payload)
            .map_err(|e| SnapshotError::Malformed(e.to_string()))?;
        let sig = STANDARD
            .decode(&self.signature)
            .map_err(|e| SnapshotError::Malformed(e.to_string()))?;
        let sig = Signature::from_slice(&sig).map_err(|_| SnapshotError::BadSignature)?;
        key.verify(&bytes, &sig)
            .map_err(|_| SnapshotError::BadSignature)?;
        let snapshot: Snapshot =
            serde_json::from_slice(&bytes).map_err(|e| SnapshotError::Malformed(e.to_string()))?;
        if snapshot.revision < held {
            return Err(SnapshotError::Stale {
                got: snapshot.revision,
                held,
            });
        }
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn signed_snapshots_verify_and_tampering_is_rejected() {
        let k = key(7);
        let snap = Snapshot {
            revision: 5,
            issued_at: 1,
            revoked_serials: vec!["ab".into()],
            ..Snapshot::default()
        };
        let signed = SignedSnapshot::sign(&snap, &k).unwrap();
        let trusted = [k.verifying_key()];
        assert_eq!(signed.verify(&trusted, 4).unwrap(), snap);
        assert_eq!(
            signed.verify(&trusted, 6),
            Err(SnapshotError::Stale { got: 5, held: 6 })
        );
        // Change one byte of the payload.
        let mut bytes = STANDARD.decode(&signed.payload).unwrap();
        let pos = bytes.iter().position(|&b| b == b'5').unwrap();
        bytes[pos] = b'9';
        let tampered = SignedSnapshot {
            payload: STANDARD.encode(&bytes),
            ..signed.clone()
        };
        assert_eq!(tampered.verify(&trusted, 0), Err(SnapshotError::BadSignature));
        // Another key is not trusted.
        assert!(matches!(
            signed.verify(&[key(8).verifying_key()], 0),
            Err(SnapshotError::UnknownKey(_))
        ));
    }
}
