//! The signed snapshot the registry distributes to gateways: everything a gateway needs to
//! decide (licences, measures, revoked certificate serials) under a monotonically increasing
//! revision, signed with the registry's Ed25519 key.
//!
//! The payload is carried as the exact JSON bytes that were signed, so verification never
//! depends on re-serialisation. A gateway accepts a snapshot only if the signature verifies
//! under a key it trusts and the revision is not older than the one it holds.

use crate::licence::Licence;
use crate::objection::RecordMarks;
use crate::risk::RiskRule;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

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
    pub licences: Vec<Arc<Licence>>,
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
    /// Records suppressed or disputed by decided objections and corrections, by dataset id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub record_marks: BTreeMap<String, RecordMarks>,
    /// Risk rules every gateway evaluates ([`crate::risk`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risk_rules: Vec<RiskRule>,
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
    /// A delta for another revision than the one held.
    #[error("delta from revision {base} to {revision} does not apply to the held revision {held}")]
    WrongBase {
        /// The revision the delta applies to.
        base: u64,
        /// The revision it produces.
        revision: u64,
        /// The revision held.
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

/// Serialises `value` and signs the bytes: (key id, payload, signature), base64.
fn sign_json<T: Serialize>(value: &T, key: &SigningKey) -> Result<(String, String, String), SnapshotError> {
    let bytes = serde_json::to_vec(value).map_err(|e| SnapshotError::Malformed(e.to_string()))?;
    let signature = key.sign(&bytes);
    Ok((
        key_id(&key.verifying_key()),
        STANDARD.encode(&bytes),
        STANDARD.encode(signature.to_bytes()),
    ))
}

/// Verifies `signature` over `payload` under the trusted key named `key_id`; returns the
/// payload's bytes.
fn verified_bytes(
    trusted: &[VerifyingKey],
    key_id_: &str,
    payload: &str,
    signature: &str,
) -> Result<Vec<u8>, SnapshotError> {
    let key = trusted
        .iter()
        .find(|k| key_id(k) == key_id_)
        .ok_or_else(|| SnapshotError::UnknownKey(key_id_.to_owned()))?;
    let bytes = STANDARD
        .decode(payload)
        .map_err(|e| SnapshotError::Malformed(e.to_string()))?;
    let sig = STANDARD
        .decode(signature)
        .map_err(|e| SnapshotError::Malformed(e.to_string()))?;
    let sig = Signature::from_slice(&sig).map_err(|_| SnapshotError::BadSignature)?;
    key.verify(&bytes, &sig)
        .map_err(|_| SnapshotError::BadSignature)?;
    Ok(bytes)
}

impl SignedSnapshot {
    /// Serialises and signs a snapshot.
    pub fn sign(snapshot: &Snapshot, key: &SigningKey) -> Result<Self, SnapshotError> {
        let (key_id, payload, signature) = sign_json(snapshot, key)?;
        Ok(Self {
            key_id,
            payload,
            signature,
        })
    }

    /// Verifies the signature under one of `trusted` keys and that the revision is at least
    /// `held`; returns the snapshot.
    pub fn verify(&self, trusted: &[VerifyingKey], held: u64) -> Result<Snapshot, SnapshotError> {
        let bytes = verified_bytes(trusted, &self.key_id, &self.payload, &self.signature)?;
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

/// What changed from snapshot revision `base` to `revision`: every licence granted or changed
/// after `base` (whole; licences are never removed), and the other parts of a snapshot whole
/// (they are small). Applied to the snapshot at exactly `base`, it gives the snapshot at
/// `revision`; the registry sends one instead of a whole snapshot to a gateway that holds
/// `base`, so a change costs a few kilobytes per gateway however many licences there are.
/// Its JSON cannot be taken for a [`Snapshot`] nor the reverse (unknown fields are refused,
/// `base` is required).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Delta {
    /// The revision it applies to.
    pub base: u64,
    /// The revision it produces.
    pub revision: u64,
    /// When the registry issued it (unix seconds).
    pub issued_at: i64,
    /// Licences granted or changed after `base`, by id.
    pub licences: Vec<Licence>,
    /// As in [`Snapshot::closed_datasets`].
    pub closed_datasets: Vec<String>,
    /// As in [`Snapshot::all_conditional_closed`].
    pub all_conditional_closed: bool,
    /// As in [`Snapshot::restricted_licensees`].
    pub restricted_licensees: BTreeMap<String, String>,
    /// As in [`Snapshot::revoked_serials`].
    pub revoked_serials: Vec<String>,
    /// As in [`Snapshot::record_marks`] (whole).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub record_marks: BTreeMap<String, RecordMarks>,
    /// As in [`Snapshot::risk_rules`] (whole).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risk_rules: Vec<RiskRule>,
}

impl Delta {
    /// The snapshot at `self.revision`, from `held` at `self.base` (else
    /// [`SnapshotError::WrongBase`]). Licences keep the snapshot's order by id.
    pub fn apply(&self, held: &Snapshot) -> Result<Snapshot, SnapshotError> {
        if held.revision != self.base || self.revision <= self.base {
            return Err(SnapshotError::WrongBase {
                base: self.base,
                revision: self.revision,
                held: held.revision,
            });
        }
        let mut changed: Vec<&Licence> = self.licences.iter().collect();
        changed.sort_by(|a, b| a.id.cmp(&b.id));
        // The licences the delta leaves are shared with the held snapshot, not copied.
        let mut licences = Vec::with_capacity(held.licences.len() + changed.len());
        let mut new = changed.into_iter().map(|l| Arc::new(l.clone())).peekable();
        for old in &held.licences {
            while new.peek().is_some_and(|n| n.id < old.id) {
                licences.extend(new.next());
            }
            match new.peek() {
                Some(n) if n.id == old.id => licences.extend(new.next()),
                _ => licences.push(Arc::clone(old)),
            }
        }
        licences.extend(new);
        Ok(Snapshot {
            revision: self.revision,
            issued_at: self.issued_at,
            licences,
            closed_datasets: self.closed_datasets.clone(),
            all_conditional_closed: self.all_conditional_closed,
            restricted_licensees: self.restricted_licensees.clone(),
            revoked_serials: self.revoked_serials.clone(),
            record_marks: self.record_marks.clone(),
            risk_rules: self.risk_rules.clone(),
        })
    }
}

/// A [`Delta`] as it travels: signed like a [`SignedSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedDelta {
    /// Key id of the signing key.
    pub key_id: String,
    /// The delta JSON exactly as signed, base64.
    pub payload: String,
    /// Ed25519 signature over the payload bytes, base64.
    pub signature: String,
}

impl SignedDelta {
    /// Serialises and signs a delta.
    pub fn sign(delta: &Delta, key: &SigningKey) -> Result<Self, SnapshotError> {
        let (key_id, payload, signature) = sign_json(delta, key)?;
        Ok(Self {
            key_id,
            payload,
            signature,
        })
    }

    /// Verifies the signature under one of `trusted` keys and returns the delta, unapplied.
    pub fn verify(&self, trusted: &[VerifyingKey]) -> Result<Delta, SnapshotError> {
        let bytes = verified_bytes(trusted, &self.key_id, &self.payload, &self.signature)?;
        serde_json::from_slice(&bytes).map_err(|e| SnapshotError::Malformed(e.to_string()))
    }

    /// Verifies the signature and applies the delta to `held` (which must be at its base).
    pub fn apply(&self, trusted: &[VerifyingKey], held: &Snapshot) -> Result<Snapshot, SnapshotError> {
        self.verify(trusted)?.apply(held)
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

    fn licence(id: &str, state: &str) -> Licence {
        let status = match state {
            "active" => serde_json::json!({ "state": state }),
            _ => serde_json::json!({ "state": state, "reason": "r" }),
        };
        serde_json::from_value(serde_json::json!({
            "id": id, "licensee": "acme", "dataset": "d", "scenario": "s",
            "fields": { "x": { "rule": "clear" } },
            "valid_from": "2025-01-01T00:00:00Z", "valid_until": "2035-01-01T00:00:00Z",
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_delta_applies_to_its_base_only_and_tampering_is_rejected() {
        let k = key(7);
        let trusted = [k.verifying_key()];
        let held = Snapshot {
            revision: 10,
            licences: vec![licence("b", "active").into(), licence("d", "active").into()],
            closed_datasets: vec!["x".into()],
            ..Snapshot::default()
        };
        let delta = Delta {
            base: 10,
            revision: 12,
            issued_at: 3,
            licences: vec![
                licence("e", "active"),
                licence("a", "active"),
                licence("d", "revoked"),
            ],
            revoked_serials: vec!["ab".into()],
            ..Delta::default()
        };
        let signed = SignedDelta::sign(&delta, &k).unwrap();
        let got = signed.apply(&trusted, &held).unwrap();
        let want = Snapshot {
            revision: 12,
            issued_at: 3,
            licences: vec![
                licence("a", "active").into(),
                licence("b", "active").into(),
                licence("d", "revoked").into(),
                licence("e", "active").into(),
            ],
            revoked_serials: vec!["ab".into()],
            ..Snapshot::default()
        };
        assert!(
            Arc::ptr_eq(&got.licences[1], &held.licences[0]),
            "a licence the delta leaves is shared with the held snapshot, not copied"
        );
        assert_eq!(
            got, want,
            "the closed dataset was reopened, d revoked, a and e added"
        );
        // Another base.
        let other = Snapshot {
            revision: 11,
            ..held.clone()
        };
        assert_eq!(
            signed.apply(&trusted, &other),
            Err(SnapshotError::WrongBase {
                base: 10,
                revision: 12,
                held: 11
            })
        );
        // One byte of the payload changed.
        let mut bytes = STANDARD.decode(&signed.payload).unwrap();
        let pos = bytes.windows(7).position(|w| w == b"revoked").unwrap();
        bytes[pos..pos + 7].copy_from_slice(b"active\"");
        let tampered = SignedDelta {
            payload: STANDARD.encode(&bytes),
            ..signed.clone()
        };
        assert_eq!(tampered.apply(&trusted, &held), Err(SnapshotError::BadSignature));
        // A snapshot is not a delta, nor a delta a snapshot, under the same key.
        let snap = SignedSnapshot::sign(&held, &k).unwrap();
        let as_delta = SignedDelta {
            key_id: snap.key_id.clone(),
            payload: snap.payload.clone(),
            signature: snap.signature.clone(),
        };
        assert!(matches!(
            as_delta.verify(&trusted),
            Err(SnapshotError::Malformed(_))
        ));
        let as_snapshot = SignedSnapshot {
            key_id: signed.key_id.clone(),
            payload: signed.payload.clone(),
            signature: signed.signature.clone(),
        };
        assert!(matches!(
            as_snapshot.verify(&trusted, 0),
            Err(SnapshotError::Malformed(_))
        ));
    }
}
