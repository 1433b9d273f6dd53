//! Fingerprints (数字水印): keyed marks in the numeric fields a catalog declares tolerant, so
//! that a leaked copy names the licensee it was served to.
//!
//! A field with tolerance `t` is written on a lattice of spacing `t` shifted by a keyed dither:
//! HMAC-SHA256, under the licensee's fingerprint key, of the record key and the field name. So a value moves by at most `t/2` (after rounding to `t/100`), the same
//! record gives the same value on every download (averaging downloads gains nothing), and
//! another licensee's copy of the record differs.
//!
//! Tracing reads the values back: for one candidate licensee, a value within a quarter
//! spacing of that licensee's lattice is a match. A value that did not come from that
//! licensee matches with probability exactly 1/2, independently of the other values (the dither
//! is uniform and keyed per record and field), so out of `n` distinct marks the number of
//! matches is Binomial(n, 1/2) under the null hypothesis "not from this licensee", and its upper
//! tail is an exact p-value. A verdict names a licensee only when that p-value, multiplied by
//! the number of candidates (Bonferroni), is at most the threshold.

use super::generalize::Dec;
use super::pseudonym::derive_keyed;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashSet;

type HmacSha256 = Hmac<Sha256>;

/// Domain separation of the key derivation (pseudonym keys use another label).
const DERIVE_LABEL: &[u8] = b"sluice-fingerprint\0";

/// Family-wise threshold under which a verdict names a licensee: the chance that tracing names
/// anyone for data that none of the candidates received.
pub const DEFAULT_ALPHA: f64 = 1e-4;

/// The fingerprint key of one licensee and dataset. `Debug` prints nothing of it; two keys
/// are equal when they were derived from the same secret and identifiers.
#[derive(Clone)]
pub struct FingerprintKey(HmacSha256, [u8; 16]);

impl PartialEq for FingerprintKey {
    fn eq(&self, other: &Self) -> bool {
        self.1 == other.1
    }
}

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FingerprintKey(..)")
    }
}

impl FingerprintKey {
    /// Derives the key of one licensee and dataset from the gateway's master secret: HMAC-SHA256
    /// of the label `"sluice-fingerprint\0"` and the two identifiers, each preceded by its length
    /// as a big-endian `u32` (as [`PseudonymKey::derive`](super::PseudonymKey::derive) does with
    /// its own label).
    pub fn derive(master: &[u8], licensee: &str, dataset: &str) -> Self {
        let keyed = derive_keyed(master, DERIVE_LABEL, licensee, dataset);
        // An identifier for equality that reveals nothing of the key.
        let mut id = [0u8; 16];
        id.copy_from_slice(&keyed.clone().chain_update(b"\0key id").finalize().into_bytes()[..16]);
        Self(keyed, id)
    }

    /// The lattice offset of one record's field in units of `tol`: a keyed draw, uniform in
    /// `0..tol.spacing`. (Dithered quantisation of a keyed bit, with the bit choosing one of two
    /// lattices half a spacing apart, is the same: the sum of a uniform dither and the bit's
    /// half spacing is again uniform.)
    fn offset(&self, tol: &Tolerance, record_key: &[u8], field: &str) -> i128 {
        let mut mac = self.0.clone();
        mac.update(&u32::try_from(record_key.len()).unwrap_or(u32::MAX).to_be_bytes());
        mac.update(record_key);
        mac.update(field.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut word = [0u8; 16];
        word.copy_from_slice(&tag[..16]);
        // A 128-bit draw reduced modulo a spacing below 2^27: the bias is below 2^-100.
        (u128::from_be_bytes(word) % tol.spacing as u128) as i128
    }

    /// `value` (a decimal number's text) moved onto this licensee's lattice for the record and
    /// field: at most half the tolerance away, rounded to a hundredth of it. `None` when the
    /// value is not a number or too large to mark.
    pub fn mark(&self, tol: &Tolerance, record_key: &[u8], field: &str, value: &str) -> Option<String> {
        let v = Dec::parse(value)?.units(tol.unit_exp)?;
        let o = self.offset(tol, record_key, field);
        let r = (v - o).rem_euclid(tol.spacing);
        let marked = if 2 * r > tol.spacing {
            v - r + tol.spacing
        } else {
            v - r
        };
        Some(Dec::units_text(marked, tol.unit_exp))
    }
}

/// How one licensee's copy of a tolerant field is marked: the licensee's key, the field's
/// tolerance and the field holding each record's key. The masker applies it to the field.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// The licensee's fingerprint key for the dataset.
    pub key: FingerprintKey,
    /// How far the field's values may move.
    pub tolerance: Tolerance,
    /// The field whose value identifies the record (its key).
    pub record_key: String,
}

impl Marker {
    /// The marked text of `value` in the record whose key is `record_key`; `None` when the
    /// value is not a number that can be marked.
    pub fn mark(&self, record_key: &[u8], field: &str, value: &str) -> Option<String> {
        self.key.mark(&self.tolerance, record_key, field, value)
    }
}

/// How far a field's values may move: the catalog's `fingerprint = { tolerance = … }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerance {
    /// Values are handled in units of `10^unit_exp`, a hundredth of the tolerance's last digit.
    unit_exp: i32,
    /// The lattice spacing (the tolerance) in units; a multiple of 100.
    spacing: i128,
}

impl Tolerance {
    /// The tolerance written as a decimal (`"0.00001"`, `"1"`, `"0.5"`); `None` unless it is a
    /// positive number with at most six significant digits.
    pub fn parse(text: &str) -> Option<Tolerance> {
        let (coef, exp) = Dec::parse(text)?.parts();
        if coef <= 0 || coef >= 1_000_000 {
            return None;
        }
        Some(Tolerance {
            unit_exp: exp.checked_sub(2)?,
            spacing: coef * 100,
        })
    }
}

/// One value read from a leaked copy: the record's key, the field and the value's text.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The record's key (the dataset's key field), as the copy writes it.
    pub record_key: &'a [u8],
    /// The field's name.
    pub field: &'a str,
    /// The value's text, a decimal number.
    pub value: &'a str,
}

/// How one candidate's marks read in a leaked copy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Distinct marked values read (one per record and field).
    pub marks: u32,
    /// Those that lie on the candidate's lattice.
    pub matches: u32,
    /// P(at least `matches` of `marks`) if the copy did not come from the candidate.
    pub p_value: f64,
}

/// The values of a leaked copy that can carry marks, read once and scored per candidate.
#[derive(Debug)]
pub struct Evidence<'a> {
    /// (record key, field, tolerance, value in the tolerance's units).
    marks: Vec<(&'a [u8], &'a str, Tolerance, i128)>,
}

impl<'a> Evidence<'a> {
    /// Keeps the observations of tolerant fields (`fields`: name and tolerance) whose value is a
    /// number, the first per record and field (a repeated row is one mark, not two).
    pub fn new(
        fields: &[(&str, Tolerance)],
        observations: impl IntoIterator<Item = Observation<'a>>,
    ) -> Self {
        let mut seen = HashSet::new();
        let mut marks = Vec::new();
        for o in observations {
            let Some((_, tol)) = fields.iter().find(|(name, _)| *name == o.field) else {
                continue;
            };
            let Some(v) = Dec::parse(o.value).and_then(|d| d.units(tol.unit_exp)) else {
                continue;
            };
            if seen.insert((o.record_key, o.field)) {
                marks.push((o.record_key, o.field, *tol, v));
            }
        }
        Evidence { marks }
    }

    /// Distinct marked values available.
    pub fn len(&self) -> usize {
        self.marks.len()
    }

    /// Whether no value can carry a mark.
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    /// How the candidate's marks read: a value matches when it lies within a quarter spacing of
    /// the candidate's lattice (half of all positions, so a value that did not come from the
    /// candidate matches with probability 1/2).
    pub fn score(&self, key: &FingerprintKey) -> Score {
        let mut matches = 0u32;
        for (record_key, field, tol, v) in &self.marks {
            let r = (v - key.offset(tol, record_key, field)).rem_euclid(tol.spacing);
            let quarter = tol.spacing / 4;
            if r < quarter || r >= tol.spacing - quarter {
                matches += 1;
            }
        }
        let marks = u32::try_from(self.marks.len()).unwrap_or(u32::MAX);
        Score {
            marks,
            matches,
            p_value: binomial_half_tail(marks, matches),
        }
    }
}

/// What tracing concludes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// The candidate at this index, with its p-value multiplied by the number of candidates.
    Named { candidate: usize, p_value: f64 },
    /// No candidate's marks are strong enough.
    CannotTell,
}

/// Names the candidate whose marks read best (the first of equals) when its p-value,
/// multiplied by the number of candidates, is at most `alpha`. Every candidate that passes
/// the same test is implicated as well (colluders mixing their copies): the scores show them.
/// Whoever is named, the chance that an innocent candidate passes is at most `alpha`.
pub fn verdict(scores: &[Score], alpha: f64) -> Verdict {
    let n = scores.len() as f64;
    let best = scores
        .iter()
        .enumerate()
        .fold(None, |best: Option<(usize, f64)>, (i, s)| match best {
            Some((_, p)) if s.p_value >= p => best,
            _ => Some((i, s.p_value)),
        });
    match best {
        Some((candidate, p)) if p * n <= alpha => Verdict::Named {
            candidate,
            p_value: (p * n).min(1.0),
        },
        _ => Verdict::CannotTell,
    }
}

/// P(X ≥ k) for X ~ Binomial(n, 1/2), summed in log space (exact to floating-point rounding,
/// down to the smallest positive `f64`).
pub fn binomial_half_tail(n: u32, k: u32) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    let ln2 = std::f64::consts::LN_2;
    // ln C(n, k), then each next term from the one before: C(n, i+1) = C(n, i) (n-i)/(i+1).
    let mut ln_c: f64 = (1..=k)
        .map(|j| f64::from(n - k + j).ln() - f64::from(j).ln())
        .sum();
    let mut terms = Vec::with_capacity((n - k + 1) as usize);
    for i in k..=n {
        terms.push(ln_c - f64::from(n) * ln2);
        if i < n {
            ln_c += f64::from(n - i).ln() - f64::from(i + 1).ln();
        }
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
    (max + sum.ln()).exp().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(t: &str) -> Tolerance {
        Tolerance::parse(t).unwrap()
    }

    #[test]
    fn tolerances_parse_to_units_and_spacing() {
        assert_eq!(
            tol("0.00001"),
            Tolerance {
                unit_exp: -7,
                spacing: 100
            }
        );
        assert_eq!(
            tol("1"),
            Tolerance {
                unit_exp: -2,
                spacing: 100
            }
        );
        assert_eq!(
            tol("0.5"),
            Tolerance {
                unit_exp: -3,
                spacing: 500
            }
        );
        for bad in ["0", "-1", "x", "1234567", ""] {
            assert_eq!(Tolerance::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn marks_stay_within_half_the_tolerance_and_are_deterministic() {
        let a = FingerprintKey::derive(b"master", "acme", "hydrants");
        let b = FingerprintKey::derive(b"master", "globex", "hydrants");
        let t = tol("0.00001");
        let mut differ = 0;
        for i in 0..500 {
            let key = format!("HY-{i}");
            let value = format!("31.{:06}", (i * 7919) % 1_000_000);
            let ma = a.mark(&t, key.as_bytes(), "lat", &value).unwrap();
            assert_eq!(
                ma,
                a.mark(&t, key.as_bytes(), "lat", &value).unwrap(),
                "same download twice"
            );
            let moved = (ma.parse::<f64>().unwrap() - value.parse::<f64>().unwrap()).abs();
            assert!(moved <= 0.000005 + 1e-12, "{value} -> {ma}");
            assert_eq!(ma.split('.').nth(1).map(str::len), Some(7), "{ma}");
            if ma != b.mark(&t, key.as_bytes(), "lat", &value).unwrap() {
                differ += 1;
            }
        }
        assert!(differ > 450, "another licensee's copy differs: {differ} of 500");
        // The dither is keyed per record and per field: one value lands in many places.
        let places: HashSet<String> = (0..100)
            .flat_map(|i| {
                let k = format!("HY-{i}");
                ["lat", "lon"].map(|f| a.mark(&t, k.as_bytes(), f, "31.000000").unwrap())
            })
            .collect();
        // 200 draws of 100 possible places: ~87 distinct expected; one dither per field gives 2.
        assert!(places.len() > 60, "{} distinct of 200", places.len());
        assert_eq!(a.mark(&t, b"k", "lat", "not a number"), None);
        assert_eq!(
            a.mark(&tol("1"), b"k", "reading", "-12"),
            a.mark(&tol("1"), b"k", "reading", "-12.00")
        );
    }

    #[test]
    fn the_binomial_tail_is_exact_on_small_cases() {
        assert_eq!(binomial_half_tail(10, 0), 1.0);
        assert_eq!(binomial_half_tail(10, 11), 0.0);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.max(1e-300);
        assert!(close(binomial_half_tail(10, 10), 1.0 / 1024.0));
        assert!(close(binomial_half_tail(10, 8), 56.0 / 1024.0));
        assert!(close(binomial_half_tail(10, 5), 638.0 / 1024.0));
        assert!(close(binomial_half_tail(1, 1), 0.5));
        assert!(close(binomial_half_tail(40, 40), 0.5f64.powi(40)));
        let p = binomial_half_tail(2000, 2000);
        assert!(p > 0.0 || 0.5f64.powi(2000) == 0.0);
    }

    #[test]
    fn the_licensee_served_is_named_and_others_are_not() {
        let t = tol("0.00001");
        let keys: Vec<FingerprintKey> = (0..10)
            .map(|i| FingerprintKey::derive(b"master", &format!("lic{i}"), "hydrants"))
            .collect();
        let rows: Vec<(String, String, String)> = (0..20)
            .map(|i| {
                (
                    format!("HY-{i}"),
                    format!("31.{:06}", i * 4999),
                    format!("121.{:06}", i * 7001),
                )
            })
            .collect();
        let leaked: Vec<(String, String, String)> = rows
            .iter()
            .map(|(k, lat, lon)| {
                (
                    k.clone(),
                    keys[3].mark(&t, k.as_bytes(), "lat", lat).unwrap(),
                    keys[3].mark(&t, k.as_bytes(), "lon", lon).unwrap(),
                )
            })
            .collect();
        let observe = |rows: &'_ [(String, String, String)]| -> Vec<(Vec<u8>, &'static str, String)> {
            rows.iter()
                .flat_map(|(k, lat, lon)| {
                    [
                        (k.as_bytes().to_vec(), "lat", lat.clone()),
                        (k.as_bytes().to_vec(), "lon", lon.clone()),
                    ]
                })
                .collect()
        };
        let fields = [("lat", t), ("lon", t)];
        let verdict_of = |obs: &[(Vec<u8>, &'static str, String)]| {
            let ev = Evidence::new(
                &fields,
                obs.iter().map(|(k, f, v)| Observation {
                    record_key: k,
                    field: f,
                    value: v,
                }),
            );
            let scores: Vec<Score> = keys.iter().map(|k| ev.score(k)).collect();
            (ev.len(), verdict(&scores, DEFAULT_ALPHA))
        };
        let obs = observe(&leaked);
        let (n, v) = verdict_of(&obs);
        assert_eq!(n, 40);
        assert!(matches!(v, Verdict::Named { candidate: 3, .. }), "{v:?}");
        // The same rows twice are the same 40 marks.
        let twice: Vec<_> = obs.iter().chain(&obs).cloned().collect();
        assert_eq!(verdict_of(&twice).0, 40);
        // The unmarked originals name nobody.
        assert_eq!(verdict_of(&observe(&rows)).1, Verdict::CannotTell);
        // Nor does a copy rounded past the marks (4 decimals where marks sit in the 7th).
        let rounded: Vec<_> = leaked
            .iter()
            .map(|(k, lat, lon)| {
                (
                    k.clone(),
                    lat[..lat.len() - 3].to_owned(),
                    lon[..lon.len() - 3].to_owned(),
                )
            })
            .collect();
        assert!(!matches!(verdict_of(&observe(&rounded)).1, Verdict::Named { candidate: c, .. } if c != 3));
    }
}
