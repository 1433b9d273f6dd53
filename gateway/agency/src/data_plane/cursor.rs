//! Keyset cursors: the position after a page's last row (the values of the order's columns,
//! the key among them), sealed with AES-256-GCM under a key derived from the gateway's master
//! key. A licensee can neither read a cursor (the key column may be masked for it) nor make
//! or alter one, and a cursor only opens for the licence, dataset and order it was made for.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Seals and opens keyset cursors.
pub struct CursorSeal {
    key: LessSafeKey,
}

impl std::fmt::Debug for CursorSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorSeal")
    }
}

/// Why a cursor was not made.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    /// The random nonce or the cipher failed.
    #[error("cursor could not be sealed")]
    Seal,
}

impl CursorSeal {
    /// The seal of a gateway with `master_key`.
    pub fn new(master_key: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"sluice keyset cursor v1\0");
        h.update(master_key);
        let k = h.finalize();
        // A 32-byte key always makes an AES-256 key.
        #[allow(clippy::expect_used)]
        let unbound = UnboundKey::new(&AES_256_GCM, &k).expect("a 32-byte AES-256 key");
        Self {
            key: LessSafeKey::new(unbound),
        }
    }

    /// The cursor standing for `values`, bound to `context` (licence, dataset, order).
    pub fn seal(&self, context: &str, values: &[Option<String>]) -> Result<String, CursorError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| CursorError::Seal)?;
        let mut data = serde_json::to_vec(values).map_err(|_| CursorError::Seal)?;
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .map_err(|_| CursorError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// The values of a cursor made by [`CursorSeal::seal`] for the same `context`; `None` for
    /// anything else.
    pub fn open(&self, context: &str, cursor: &str) -> Option<Vec<Option<String>>> {
        let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut data)
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_cursor_opens_only_unaltered_for_its_context_and_hides_its_values() {
        let seal = CursorSeal::new(b"master");
        let values = vec![Some("31010119900101123X".to_owned()), None];
        let c = seal.seal("lic|reg|id.asc", &values).unwrap();
        assert_eq!(seal.open("lic|reg|id.asc", &c), Some(values));
        assert!(!c.contains("3101"), "{c}");
        assert_ne!(
            seal.seal("lic|reg|id.asc", &[None]).unwrap(),
            seal.seal("lic|reg|id.asc", &[None]).unwrap()
        );
        assert_eq!(seal.open("other|reg|id.asc", &c), None, "another licence");
        assert_eq!(
            CursorSeal::new(b"other").open("lic|reg|id.asc", &c),
            None,
            "another gateway key"
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&c).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(
            seal.open("lic|reg|id.asc", &URL_SAFE_NO_PAD.encode(raw)),
            None,
            "altered"
        );
        assert_eq!(seal.open("lic|reg|id.asc", "short"), None);
        assert_eq!(seal.open("lic|reg|id.asc", "!!!"), None);
    }
}
