//! Keyed pseudonyms.
//!
//! A pseudonym is `"p_"` followed by the unpadded base64url encoding of the first 16 bytes of
//! HMAC-SHA256(key, value). The key is derived per licensee and dataset from the gateway's
//! master secret, so one licensee sees stable pseudonyms (joins within the dataset work) while
//! two licensees cannot link theirs.

#[cfg(test)]
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
#[cfg(test)]
use base64::Engine as _;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// SHA-256 block size: HMAC keys are zero-padded (or hashed, when longer) to this length.
const BLOCK: usize = 64;

/// Domain separation of the key derivation.
const DERIVE_LABEL: &[u8] = b"sluice-pseudonym\0";

/// HMAC key for one licensee and dataset.
///
/// Holds the keyed HMAC state (not the raw key bytes); `Debug` prints nothing of it.
#[derive(Clone)]
pub struct PseudonymKey(HmacSha256);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

/// An HMAC-SHA256 instance keyed with `key`, of any length.
///
/// Performs RFC 2104's key preprocessing (hash when longer than a block, then zero-pad) itself
/// so that the infallible block-sized constructor can be used: the result equals
/// `Hmac::new_from_slice(key)`, without an error path that cannot occur.
fn keyed(key: &[u8]) -> HmacSha256 {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    <HmacSha256 as KeyInit>::new(&block.into())
}

/// HMAC-SHA256 keyed with the key of one licensee and dataset for one purpose: HMAC-SHA256,
/// under `master`, of `label` and the two identifiers, each preceded by its length in bytes as
/// a big-endian `u32` (so the encoding is unambiguous whatever the identifiers contain).
pub(super) fn derive_keyed(master: &[u8], label: &[u8], licensee: &str, dataset: &str) -> HmacSha256 {
    let mut mac = keyed(master);
    mac.update(label);
    for part in [licensee.as_bytes(), dataset.as_bytes()] {
        // Identifiers longer than 4 GiB do not exist; saturating keeps this total.
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        mac.update(&len.to_be_bytes());
        mac.update(part);
    }
    let key: [u8; 32] = mac.finalize().into_bytes().into();
    keyed(&key)
}

impl PseudonymKey {
    /// Derives the key of one licensee and dataset from the gateway's master secret.
    ///
    /// The key is HMAC-SHA256(master, message), where the message is the label
    /// `"sluice-pseudonym\0"` followed by the licensee and the dataset identifiers, each
    /// preceded by its length in bytes as a big-endian `u32`. The length prefixes make the
    /// encoding unambiguous whatever the identifiers contain.
    ///
    /// ```
    /// use sluice_policy::mask::PseudonymKey;
    /// let a = PseudonymKey::derive(b"master secret", "acme", "hydrants");
    /// let b = PseudonymKey::derive(b"master secret", "acme", "hydrants");
    /// let c = PseudonymKey::derive(b"master secret", "globex", "hydrants");
    /// assert_eq!(a.pseudonym(b"13812345678"), b.pseudonym(b"13812345678"));
    /// assert_ne!(a.pseudonym(b"13812345678"), c.pseudonym(b"13812345678"));
    /// assert_eq!(format!("{a:?}"), "PseudonymKey(..)");
    /// ```
    pub fn derive(master: &[u8], licensee: &str, dataset: &str) -> Self {
        Self(derive_keyed(master, DERIVE_LABEL, licensee, dataset))
    }

    /// The pseudonym of `bytes`: `"p_"` + base64url (no padding) of the first 16 bytes of
    /// HMAC-SHA256(key, bytes). Always 24 characters.
    ///
    /// ```
    /// use sluice_policy::mask::PseudonymKey;
    /// let key = PseudonymKey::derive(b"master secret", "acme", "hydrants");
    /// let p = key.pseudonym("张三".as_bytes());
    /// assert!(p.starts_with("p_"));
    /// assert_eq!(p.len(), 24);
    /// assert_eq!(p, key.pseudonym("张三".as_bytes()));
    /// ```
    pub fn pseudonym(&self, bytes: &[u8]) -> String {
        self.pseudonym_parts(&[bytes])
    }

    /// The pseudonym of the concatenation of `parts`.
    pub(crate) fn pseudonym_parts(&self, parts: &[&[u8]]) -> String {
        let mut out = String::with_capacity(24);
        self.pseudonym_into(parts, &mut out);
        out
    }

    /// Appends the pseudonym of the concatenation of `parts` to `out`.
    #[inline]
    pub(crate) fn pseudonym_into(&self, parts: &[&[u8]], out: &mut String) {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        let tag = mac.finalize().into_bytes();
        let mut head = [0u8; 16];
        head.copy_from_slice(&tag[..16]);
        let mut p = [0u8; 24];
        p[..2].copy_from_slice(b"p_");
        p[2..].copy_from_slice(&encode16(&head));
        // Base64url is ASCII.
        out.push_str(std::str::from_utf8(&p).unwrap_or_default());
    }
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url of 16 bytes (22 characters), as `URL_SAFE_NO_PAD` encodes them.
#[inline]
fn encode16(b: &[u8; 16]) -> [u8; 22] {
    let mut t = [0u8; 22];
    let sym = |v: u32| B64URL[(v & 63) as usize];
    for g in 0..5 {
        let v = u32::from(b[3 * g]) << 16 | u32::from(b[3 * g + 1]) << 8 | u32::from(b[3 * g + 2]);
        t[4 * g] = sym(v >> 18);
        t[4 * g + 1] = sym(v >> 12);
        t[4 * g + 2] = sym(v >> 6);
        t[4 * g + 3] = sym(v);
    }
    let v = u32::from(b[15]);
    t[20] = sym(v >> 2);
    t[21] = sym(v << 4);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap();
        mac.update(msg);
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn keyed_matches_new_from_slice_for_all_key_lengths() {
        for len in [0usize, 1, 16, 32, 63, 64, 65, 100, 200] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut mac = keyed(&key);
            mac.update(b"message");
            assert_eq!(
                mac.finalize().into_bytes().to_vec(),
                reference(&key, b"message"),
                "len {len}"
            );
        }
    }

    #[test]
    fn rfc4231_test_case_2() {
        // Key "Jefe", data "what do ya want for nothing?".
        let mut mac = keyed(b"Jefe");
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn derive_follows_the_documented_encoding() {
        let master = b"master";
        let mut msg = b"sluice-pseudonym\0".to_vec();
        msg.extend_from_slice(&4u32.to_be_bytes());
        msg.extend_from_slice(b"acme");
        msg.extend_from_slice(&8u32.to_be_bytes());
        msg.extend_from_slice(b"hydrants");
        let key = reference(master, &msg);
        let expected_tag = reference(&key, b"value");
        let expected = format!("p_{}", URL_SAFE_NO_PAD.encode(&expected_tag[..16]));
        assert_eq!(
            PseudonymKey::derive(master, "acme", "hydrants").pseudonym(b"value"),
            expected
        );
    }

    #[test]
    fn encoding_is_unambiguous() {
        let a = PseudonymKey::derive(b"m", "ab", "c");
        let b = PseudonymKey::derive(b"m", "a", "bc");
        let c = PseudonymKey::derive(b"m", "a\0", "c");
        let d = PseudonymKey::derive(b"m", "a", "\0c");
        let ps: Vec<String> = [a, b, c, d].iter().map(|k| k.pseudonym(b"x")).collect();
        for i in 0..ps.len() {
            for j in i + 1..ps.len() {
                assert_ne!(ps[i], ps[j]);
            }
        }
    }

    #[test]
    fn stable_per_key_and_unlinkable_across_keys() {
        let k1 = PseudonymKey::derive(b"master", "acme", "hydrants");
        let k1b = PseudonymKey::derive(b"master", "acme", "hydrants");
        let k2 = PseudonymKey::derive(b"master", "globex", "hydrants");
        let k3 = PseudonymKey::derive(b"master", "acme", "parking");
        let k4 = PseudonymKey::derive(b"other master", "acme", "hydrants");
        let v = b"110105194912310025";
        let p = k1.pseudonym(v);
        assert_eq!(p, k1b.pseudonym(v));
        assert_ne!(p, k2.pseudonym(v));
        assert_ne!(p, k3.pseudonym(v));
        assert_ne!(p, k4.pseudonym(v));
        assert_ne!(p, k1.pseudonym(b"110105194912310026"));
        assert_eq!(p.len(), 24);
        assert!(p[2..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(k1.pseudonym_parts(&[b"ab", b"c"]), k1.pseudonym(b"abc"));
    }

    #[test]
    fn encode16_matches_base64() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for n in 0..2000 {
            let mut b = [0u8; 16];
            for v in &mut b {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = x as u8;
            }
            if n == 0 {
                b = [0xff; 16];
            } else if n == 1 {
                b = [0; 16];
            }
            assert_eq!(encode16(&b).to_vec(), URL_SAFE_NO_PAD.encode(b).into_bytes());
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let k = PseudonymKey::derive(b"very secret master", "acme", "hydrants");
        assert_eq!(format!("{k:?}"), "PseudonymKey(..)");
        assert_eq!(format!("{k:#?}"), "PseudonymKey(..)");
    }
}
