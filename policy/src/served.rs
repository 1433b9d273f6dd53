//! Served-record digests: which record keys one response carried, kept in its audit record as
//! a Bloom filter, so that tracing a leak scores only the licensees who received the leaked
//! records.
//!
//! The masker hashes the key of every record it writes ([`ServedKeys::add`]); at the end of the
//! response the hashes become a [`ServedDigest`] sized for a false-positive rate of about 1 %
//! (9.6 bits and 7 probes per record). A false positive only lets an observation of a record
//! the licensee did not receive into its score, where it matches by chance: it weakens the
//! evidence a little and never accuses anyone. The digest is exact about absence: a record that
//! was served is always found.
//!
//! Keys are hashed with XXH3-128, whose output is fixed by its specification, so a digest
//! written by one build is read by any later one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use xxhash_rust::xxh3::xxh3_128;

/// Probes per key.
const PROBES: u64 = 7;
/// Bits per key: `-ln(0.01) / ln(2)^2` for a 1 % false-positive rate, rounded up.
const BITS_PER_KEY: f64 = 9.6;
/// The encoding's version tag.
const TAG: &str = "b1";

/// The key hashes of the records one response wrote, in the order written.
#[derive(Debug, Clone, Default)]
pub struct ServedKeys {
    hashes: Vec<u128>,
}

impl ServedKeys {
    /// Records the key of one written record.
    pub fn add(&mut self, key: &[u8]) {
        self.hashes.push(xxh3_128(key));
    }

    /// The XXH3-128 hashes of the keys recorded so far, in the order written.
    pub fn hashes(&self) -> &[u128] {
        &self.hashes
    }

    /// Keys recorded so far.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether no key was recorded.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The digest of the recorded keys; `None` when there are none.
    pub fn digest(&self) -> Option<ServedDigest> {
        if self.hashes.is_empty() {
            return None;
        }
        let n = self.hashes.len() as u64;
        let bits = ((n as f64 * BITS_PER_KEY).ceil() as u64).max(64).div_ceil(8) * 8;
        let mut d = ServedDigest {
            keys: n,
            bits: vec![0u8; (bits / 8) as usize],
        };
        for h in &self.hashes {
            for i in d.probes(*h) {
                d.bits[(i / 8) as usize] |= 1 << (i % 8);
            }
        }
        Some(d)
    }
}

/// A Bloom filter of the record keys one response served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedDigest {
    keys: u64,
    bits: Vec<u8>,
}

/// Why a digest's text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a served-record digest: {0}")]
pub struct DigestError(&'static str);

impl ServedDigest {
    /// Whether the key may have been served (false positives at about 1 %, no false
    /// negatives).
    pub fn contains(&self, key: &[u8]) -> bool {
        self.probes(xxh3_128(key))
            .all(|i| self.bits[(i / 8) as usize] & (1 << (i % 8)) != 0)
    }

    /// The number of keys the digest holds.
    pub fn keys(&self) -> u64 {
        self.keys
    }

    /// The audit record's text: `b1.<keys>.<filter, base64url>`.
    pub fn encode(&self) -> String {
        format!("{TAG}.{}.{}", self.keys, URL_SAFE_NO_PAD.encode(&self.bits))
    }

    /// Reads [`ServedDigest::encode`]'s text.
    pub fn decode(text: &str) -> Result<Self, DigestError> {
        let mut parts = text.splitn(3, '.');
        if parts.next() != Some(TAG) {
            return Err(DigestError("unknown version"));
        }
        let keys = parts
            .next()
            .and_then(|k| k.parse::<u64>().ok())
            .filter(|k| *k > 0)
            .ok_or(DigestError("bad key count"))?;
        let bits = URL_SAFE_NO_PAD
            .decode(parts.next().ok_or(DigestError("no filter"))?)
            .map_err(|_| DigestError("filter is not base64url"))?;
        if bits.len() < 8 {
            return Err(DigestError("filter too short"));
        }
        Ok(Self { keys, bits })
    }

    /// The bit positions of one key hash (double hashing: `h1 + i·h2`).
    fn probes(&self, h: u128) -> impl Iterator<Item = u64> {
        let m = self.bits.len() as u64 * 8;
        let (h1, h2) = ((h >> 64) as u64, h as u64 | 1);
        (0..PROBES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(keys: impl IntoIterator<Item = String>) -> ServedDigest {
        let mut s = ServedKeys::default();
        for k in keys {
            s.add(k.as_bytes());
        }
        s.digest().unwrap()
    }

    #[test]
    fn served_keys_are_always_found_and_others_rarely() {
        for n in [1usize, 20, 1_000, 50_000] {
            let d = ServedDigest::decode(&digest_of((0..n).map(|i| format!("HY-{i}"))).encode()).unwrap();
            assert_eq!(d.keys(), n as u64);
            assert!((0..n).all(|i| d.contains(format!("HY-{i}").as_bytes())));
            let probes = 20_000;
            let false_hits = (0..probes)
                .filter(|i| d.contains(format!("other-{i}").as_bytes()))
                .count();
            // About 1 % for a filter sized for its keys; a one-key filter has 64 bits.
            let bound = if n == 1 { 0.002 } else { 0.02 };
            assert!(
                (false_hits as f64) < probes as f64 * bound,
                "{n} keys: {false_hits} false hits in {probes}"
            );
        }
    }

    #[test]
    fn the_encoding_is_stable_and_bad_text_is_refused() {
        // Fixed by XXH3's specification: a digest written today reads the same tomorrow.
        let d = digest_of(["HY-1".to_owned(), "HY-2".to_owned()]);
        assert_eq!(d.encode(), "b1.2.AMQqiAAQFSA");
        // XXH3-128 of the empty input, from the specification's reference implementation.
        assert_eq!(xxh3_128(b""), 0x99aa06d3014798d86001c324468d497f);
        for bad in [
            "",
            "b2.1.AAAAAAAAAAA",
            "b1.0.AAAAAAAAAAA",
            "b1.x.AAAA",
            "b1.1.%%%",
            "b1.1.AAAA",
        ] {
            assert!(ServedDigest::decode(bad).is_err(), "{bad:?}");
        }
        assert!(ServedKeys::default().digest().is_none());
    }
}
