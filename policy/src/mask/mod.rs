//! Masking functions (脱敏): what a licence may do to one field value before it leaves.
//!
//! Each [`MaskRule`] turns one [`Scalar`] into a [`Masked`] value. The functions are pure and
//! allocation-light; the streaming masker calls them once per masked field per record.
//!
//! Rules fail closed. `null` stays `null` (except under `drop` and `clear`); a value a rule
//! cannot apply to — a date rule on a non-date, a numeric rule on a non-number, anything but
//! `drop`, `null`, `redact` and `pseudonym` on an object or array, `partial` on a boolean —
//! becomes `"***"` ([`REDACTED`]), never the original. Numeric rules accept numbers and strings
//! holding a number (CSV sources give strings) and compute in exact decimal arithmetic.
//!
//! [`detect`] is the safety net for clear text: it finds and masks mobile numbers, resident ID
//! numbers, bank card numbers and e-mail addresses inside strings.

use serde::{Deserialize, Serialize};

pub mod detect;
pub mod fingerprint;
mod generalize;
mod partial;
mod pseudonym;

pub use pseudonym::PseudonymKey;

/// One JSON/CSV value as the masker sees it, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    /// A string, already decoded (escapes resolved).
    Str(&'a str),
    /// A number, as its JSON text (e.g. `-12.5e3`).
    Num(&'a str),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An object or array, as its compact JSON text. Rules that cannot treat a composite
    /// value safely redact it.
    Composite(&'a str),
}

/// The result of masking one value.
#[derive(Debug, Clone, PartialEq)]
pub enum Masked {
    /// Emit the original value unchanged.
    Keep,
    /// Leave the field out of the record.
    Omit,
    /// Emit `null`.
    Null,
    /// Emit a string.
    Str(String),
    /// Emit a number (valid JSON number text).
    Num(String),
}

/// What to do with one field of a licensed dataset. Serialised with a `rule` tag,
/// e.g. `{ rule = "partial", first = 3, last = 4 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum MaskRule {
    /// Emit the value as it is (only for fields that do not require masking).
    Clear,
    /// Leave the field out.
    Drop,
    /// Replace the value with `null`.
    Null,
    /// Replace the value with `"***"`.
    Redact,
    /// Keep the first `first` and last `last` characters (Unicode scalars), star the rest:
    /// `13812345678` with 3/4 → `"138****5678"`, `张三丰` with 1/0 → `"张**"`. Numbers are
    /// masked as their text and emitted as strings.
    ///
    /// A value of at most `first + last` characters is never emitted unchanged: it keeps at
    /// most `first` leading characters but never more than `(len - 1) / 2`, and no trailing
    /// ones (`张` → `"*"`, `张三` with 1/1 → `"**"`, `12345` with 3/4 → `"12***"`).
    Partial {
        /// Characters kept at the start.
        #[serde(default)]
        first: usize,
        /// Characters kept at the end.
        #[serde(default)]
        last: usize,
    },
    /// Keyed pseudonym: HMAC-SHA256 keyed per licensee and dataset, emitted as
    /// `"p_"` + 22 base64url characters (see [`PseudonymKey::pseudonym`]). Strings and numbers
    /// are keyed by their text (a CSV `"42"` and a JSON `42` agree), booleans by
    /// `true`/`false`, objects and arrays by their compact JSON text under a distinct tag.
    Pseudonym,
    /// Age in years → a band of `width` years, e.g. 37 → `"30-39"` (width 10), 37.9 →
    /// `"35-39"` (width 5). Negative ages and a zero width redact.
    AgeBand {
        /// Band width in years.
        width: u32,
    },
    /// Date or datetime string → `"YYYY-MM"`. Accepts `YYYY-MM-DD`, `YYYY-MM`, and a date
    /// followed by `T`/space and a time with an optional offset (RFC 3339 and SQL forms); the
    /// date is taken as written, not converted to UTC. Dates that do not exist redact.
    Month,
    /// Date or datetime string → `"YYYY"` (same inputs as [`MaskRule::Month`]).
    Year,
    /// Coordinate → the south-west corner of a grid cell of `cell` degrees,
    /// `floor(v / cell) × cell`, emitted as a JSON number with the cell's decimals:
    /// `31.2345` → `31.23`, `-121.4745` → `-121.48` (cell 0.01). A non-positive or
    /// non-finite cell redacts.
    Grid {
        /// Cell size in degrees, e.g. `0.01` (about 1 km).
        cell: f64,
    },
    /// Coordinate or number → rounded half away from zero to `places` decimals, emitted as a
    /// JSON number with exactly `places` decimals: `31.235` → `31.24`, `7` → `7.00`.
    Decimals {
        /// Decimal places kept.
        places: u8,
    },
    /// Number → the range of `width` it falls in, as a string. Integer widths give inclusive
    /// integer bounds (1234 with width 1000 → `"1000-1999"`, -5 with width 10 →
    /// `"-10--1"`); fractional widths give a half-open interval with the width's decimals
    /// (1.7 with width 0.5 → `"[1.5,2.0)"`). A non-positive or non-finite width redacts.
    Range {
        /// Range width.
        width: f64,
    },
}

impl MaskRule {
    /// Whether the rule emits the value unchanged.
    pub fn is_clear(&self) -> bool {
        matches!(self, MaskRule::Clear)
    }

    /// Applies the rule to one value. `key` is the pseudonym key of this licensee and dataset.
    /// Fails closed: see the [module docs](self).
    ///
    /// ```
    /// use sluice_policy::mask::{MaskRule, Masked, PseudonymKey, Scalar};
    /// let key = PseudonymKey::derive(b"master", "acme", "hydrants");
    /// let rule = MaskRule::Partial { first: 3, last: 4 };
    /// assert_eq!(rule.apply(Scalar::Str("13812345678"), &key), Masked::Str("138****5678".into()));
    ///
    /// let grid = MaskRule::Grid { cell: 0.01 };
    /// assert_eq!(grid.apply(Scalar::Num("31.2345"), &key), Masked::Num("31.23".into()));
    /// let month = MaskRule::Month.apply(Scalar::Str("2024-03-15T08:30:00+08:00"), &key);
    /// assert_eq!(month, Masked::Str("2024-03".into()));
    /// let band = MaskRule::AgeBand { width: 10 }.apply(Scalar::Str("37"), &key);
    /// assert_eq!(band, Masked::Str("30-39".into()));
    ///
    /// // A rule that cannot apply redacts; null stays null.
    /// assert_eq!(MaskRule::Month.apply(Scalar::Str("soon"), &key), Masked::Str("***".into()));
    /// assert_eq!(MaskRule::Redact.apply(Scalar::Null, &key), Masked::Null);
    /// ```
    pub fn apply(&self, value: Scalar<'_>, key: &PseudonymKey) -> Masked {
        let mut text = String::new();
        match apply_rule(self, value, key, &mut text) {
            Out::Keep => Masked::Keep,
            Out::Omit => Masked::Omit,
            Out::Null => Masked::Null,
            Out::Str => Masked::Str(text),
            Out::Num => Masked::Num(text),
        }
    }

    /// Like [`MaskRule::apply`], writing the text of a string or number result into `text`
    /// (cleared first) instead of allocating: the streaming masker reuses one buffer.
    #[inline]
    pub(crate) fn apply_into(&self, value: Scalar<'_>, key: &PseudonymKey, text: &mut String) -> Out {
        text.clear();
        apply_rule(self, value, key, text)
    }
}

/// The result of [`MaskRule::apply_into`]: [`Masked`] without its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Out {
    /// Emit the original value unchanged.
    Keep,
    /// Leave the field out of the record.
    Omit,
    /// Emit `null`.
    Null,
    /// Emit the text as a string.
    Str,
    /// Emit the text as a number.
    Num,
}

/// The text of [`MaskRule::Redact`] and of every rule that cannot apply to a value.
pub const REDACTED: &str = "***";

/// Prefix of the canonical bytes of a composite value in a pseudonym, so that the object
/// `{"a":1}` and the string `"{\"a\":1}"` get different pseudonyms.
const COMPOSITE_TAG: &[u8] = b"\0json\0";

/// Applies `rule`; a string or number result is appended to `text` (empty on entry).
fn apply_rule(rule: &MaskRule, value: Scalar<'_>, key: &PseudonymKey, text: &mut String) -> Out {
    match rule {
        MaskRule::Clear => return Out::Keep,
        MaskRule::Drop => return Out::Omit,
        _ => {}
    }
    if value == Scalar::Null {
        return Out::Null;
    }
    // `None`: the rule cannot apply; fail closed, never the original.
    let out = match rule {
        MaskRule::Clear => Some(Out::Keep),
        MaskRule::Drop => Some(Out::Omit),
        MaskRule::Null => Some(Out::Null),
        MaskRule::Redact => None,
        MaskRule::Partial { first, last } => match value {
            Scalar::Str(s) | Scalar::Num(s) => {
                partial::partial_into(s, *first, *last, text);
                Some(Out::Str)
            }
            Scalar::Bool(_) | Scalar::Null | Scalar::Composite(_) => None,
        },
        MaskRule::Pseudonym => {
            match value {
                // Strings and numbers hash their text, so a CSV "42" and a JSON 42 agree.
                Scalar::Str(s) | Scalar::Num(s) => key.pseudonym_into(&[s.as_bytes()], text),
                Scalar::Bool(b) => key.pseudonym_into(&[if b { b"true" } else { b"false" }], text),
                Scalar::Composite(s) => key.pseudonym_into(&[COMPOSITE_TAG, s.as_bytes()], text),
                Scalar::Null => return Out::Null,
            }
            Some(Out::Str)
        }
        MaskRule::AgeBand { width } => number(value)
            .and_then(|v| generalize::age_band(v, *width))
            .map(|s| owned(text, s, Out::Str)),
        // A valid date starts with its four year and two month digits: copied as they are.
        MaskRule::Month => date(value).and_then(|ym| ym.get(..7)).map(|t| {
            text.push_str(t);
            Out::Str
        }),
        MaskRule::Year => date(value).and_then(|ym| ym.get(..4)).map(|t| {
            text.push_str(t);
            Out::Str
        }),
        MaskRule::Grid { cell } => number(value)
            .and_then(|v| generalize::grid(v, *cell))
            .map(|s| owned(text, s, Out::Num)),
        MaskRule::Decimals { places } => number(value)
            .and_then(|v| generalize::decimals(v, *places))
            .map(|s| owned(text, s, Out::Num)),
        MaskRule::Range { width } => number(value)
            .and_then(|v| generalize::range(v, *width))
            .map(|s| owned(text, s, Out::Str)),
    };
    out.unwrap_or_else(|| {
        text.clear();
        text.push_str(REDACTED);
        Out::Str
    })
}

/// Puts an owned result into `text`.
fn owned(text: &mut String, s: String, out: Out) -> Out {
    *text = s;
    out
}

/// A number, or a string holding one (CSV sources give strings).
fn number(value: Scalar<'_>) -> Option<generalize::Dec> {
    match value {
        Scalar::Num(s) | Scalar::Str(s) => generalize::Dec::parse(s),
        Scalar::Bool(_) | Scalar::Null | Scalar::Composite(_) => None,
    }
}

/// The date text (trimmed) when `value` is a date `year_month` accepts.
fn date(value: Scalar<'_>) -> Option<&str> {
    match value {
        Scalar::Str(s) => {
            generalize::year_month(s).map(|_| s.trim_matches(|c: char| c.is_ascii_whitespace()))
        }
        Scalar::Num(_) | Scalar::Bool(_) | Scalar::Null | Scalar::Composite(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PseudonymKey {
        PseudonymKey::derive(b"master", "acme", "hydrants")
    }

    fn apply(rule: MaskRule, v: Scalar<'_>) -> Masked {
        rule.apply(v, &key())
    }

    fn s(t: &str) -> Masked {
        Masked::Str(t.to_owned())
    }

    fn n(t: &str) -> Masked {
        Masked::Num(t.to_owned())
    }

    fn all_rules() -> Vec<MaskRule> {
        vec![
            MaskRule::Clear,
            MaskRule::Drop,
            MaskRule::Null,
            MaskRule::Redact,
            MaskRule::Partial { first: 1, last: 1 },
            MaskRule::Pseudonym,
            MaskRule::AgeBand { width: 10 },
            MaskRule::Month,
            MaskRule::Year,
            MaskRule::Grid { cell: 0.01 },
            MaskRule::Decimals { places: 2 },
            MaskRule::Range { width: 1000.0 },
        ]
    }

    #[test]
    fn simple_rules() {
        let v = Scalar::Str("张三");
        assert_eq!(apply(MaskRule::Clear, v), Masked::Keep);
        assert_eq!(apply(MaskRule::Drop, v), Masked::Omit);
        assert_eq!(apply(MaskRule::Null, v), Masked::Null);
        assert_eq!(apply(MaskRule::Redact, v), s("***"));
        assert_eq!(apply(MaskRule::Redact, Scalar::Num("12")), s("***"));
        assert_eq!(apply(MaskRule::Redact, Scalar::Bool(true)), s("***"));
        assert_eq!(apply(MaskRule::Redact, Scalar::Composite("[1,2]")), s("***"));
        assert_eq!(apply(MaskRule::Null, Scalar::Composite("{}")), Masked::Null);
        assert_eq!(apply(MaskRule::Drop, Scalar::Composite("{}")), Masked::Omit);
        assert!(MaskRule::Clear.is_clear());
        assert!(!MaskRule::Redact.is_clear());
    }

    #[test]
    fn null_input() {
        for rule in all_rules() {
            let expected = match rule {
                MaskRule::Clear => Masked::Keep,
                MaskRule::Drop => Masked::Omit,
                _ => Masked::Null,
            };
            assert_eq!(apply(rule.clone(), Scalar::Null), expected, "{rule:?}");
        }
    }

    #[test]
    fn partial() {
        let p = |first, last| MaskRule::Partial { first, last };
        assert_eq!(apply(p(3, 4), Scalar::Str("13812345678")), s("138****5678"));
        assert_eq!(apply(p(1, 0), Scalar::Str("张三丰")), s("张**"));
        assert_eq!(apply(p(1, 0), Scalar::Str("张")), s("*"));
        assert_eq!(apply(p(3, 4), Scalar::Num("13812345678")), s("138****5678"));
        assert_eq!(apply(p(1, 1), Scalar::Num("-1.5e3")), s("-****3"));
        assert_eq!(apply(p(1, 1), Scalar::Bool(true)), s("***"));
        assert_eq!(apply(p(1, 1), Scalar::Composite(r#"{"a":"b"}"#)), s("***"));
    }

    #[test]
    fn pseudonym() {
        let k = key();
        let other = PseudonymKey::derive(b"master", "globex", "hydrants");
        let p = MaskRule::Pseudonym;
        let a = p.apply(Scalar::Str("110105194912310025"), &k);
        assert_eq!(a, p.apply(Scalar::Str("110105194912310025"), &k));
        assert_ne!(a, p.apply(Scalar::Str("110105194912310025"), &other));
        assert_eq!(a, s(&k.pseudonym(b"110105194912310025")));
        let Masked::Str(text) = &a else { panic!("{a:?}") };
        assert!(text.starts_with("p_") && text.len() == 24);
        // A CSV string and a JSON number with the same text agree.
        assert_eq!(p.apply(Scalar::Num("42"), &k), p.apply(Scalar::Str("42"), &k));
        assert_eq!(p.apply(Scalar::Bool(true), &k), s(&k.pseudonym(b"true")));
        // A composite differs from the string of the same text.
        assert_ne!(
            p.apply(Scalar::Composite("[1]"), &k),
            p.apply(Scalar::Str("[1]"), &k)
        );
        assert_eq!(
            p.apply(Scalar::Composite("[1]"), &k),
            p.apply(Scalar::Composite("[1]"), &k)
        );
    }

    #[test]
    fn age_band() {
        let r = MaskRule::AgeBand { width: 10 };
        assert_eq!(apply(r.clone(), Scalar::Num("37")), s("30-39"));
        assert_eq!(apply(r.clone(), Scalar::Str("37")), s("30-39"));
        assert_eq!(apply(r.clone(), Scalar::Str(" 40 ")), s("40-49"));
        assert_eq!(apply(r.clone(), Scalar::Num("3.7e1")), s("30-39"));
        assert_eq!(
            apply(MaskRule::AgeBand { width: 5 }, Scalar::Num("37")),
            s("35-39")
        );
        assert_eq!(apply(r.clone(), Scalar::Num("-3")), s("***"));
        assert_eq!(apply(r.clone(), Scalar::Str("thirty")), s("***"));
        assert_eq!(apply(r.clone(), Scalar::Bool(false)), s("***"));
        assert_eq!(apply(MaskRule::AgeBand { width: 0 }, Scalar::Num("37")), s("***"));
    }

    #[test]
    fn month_and_year() {
        for (v, month, year) in [
            ("2024-03-15", "2024-03", "2024"),
            ("2024-03-15T08:30:00+08:00", "2024-03", "2024"),
            ("1999-12-31T23:59:59.999Z", "1999-12", "1999"),
            ("2024-03-15 08:30:00", "2024-03", "2024"),
        ] {
            assert_eq!(apply(MaskRule::Month, Scalar::Str(v)), s(month), "{v}");
            assert_eq!(apply(MaskRule::Year, Scalar::Str(v)), s(year), "{v}");
        }
        for v in [
            Scalar::Str("not a date"),
            Scalar::Str("2023-02-29"),
            Scalar::Str("15/03/2024"),
            Scalar::Num("20240315"),
            Scalar::Bool(true),
            Scalar::Composite(r#"{"d":"2024-03-15"}"#),
        ] {
            assert_eq!(apply(MaskRule::Month, v), s("***"), "{v:?}");
            assert_eq!(apply(MaskRule::Year, v), s("***"), "{v:?}");
        }
    }

    #[test]
    fn grid_decimals_range() {
        let g = MaskRule::Grid { cell: 0.01 };
        assert_eq!(apply(g.clone(), Scalar::Num("31.2345")), n("31.23"));
        assert_eq!(apply(g.clone(), Scalar::Num("31.23")), n("31.23"));
        assert_eq!(apply(g.clone(), Scalar::Str("121.4745")), n("121.47"));
        assert_eq!(apply(g.clone(), Scalar::Num("-121.4745")), n("-121.48"));
        assert_eq!(apply(g.clone(), Scalar::Str("north")), s("***"));
        assert_eq!(apply(g.clone(), Scalar::Composite("[31.2,121.4]")), s("***"));
        assert_eq!(apply(MaskRule::Grid { cell: -1.0 }, Scalar::Num("3")), s("***"));
        assert_eq!(
            apply(MaskRule::Grid { cell: f64::NAN }, Scalar::Num("3")),
            s("***")
        );

        let d = MaskRule::Decimals { places: 2 };
        assert_eq!(apply(d.clone(), Scalar::Num("31.2345")), n("31.23"));
        assert_eq!(apply(d.clone(), Scalar::Num("31.235")), n("31.24"));
        assert_eq!(apply(d.clone(), Scalar::Str("7")), n("7.00"));
        assert_eq!(apply(d.clone(), Scalar::Num("-1.5e3")), n("-1500.00"));
        assert_eq!(
            apply(MaskRule::Decimals { places: 0 }, Scalar::Num("2.5")),
            n("3")
        );
        assert_eq!(apply(d.clone(), Scalar::Bool(true)), s("***"));

        let r = MaskRule::Range { width: 1000.0 };
        assert_eq!(apply(r.clone(), Scalar::Num("1234")), s("1000-1999"));
        assert_eq!(apply(r.clone(), Scalar::Str("1234.5")), s("1000-1999"));
        assert_eq!(apply(r.clone(), Scalar::Num("-1.5e3")), s("-2000--1001"));
        assert_eq!(
            apply(MaskRule::Range { width: 0.5 }, Scalar::Num("1.7")),
            s("[1.5,2.0)")
        );
        assert_eq!(apply(r.clone(), Scalar::Str("n/a")), s("***"));
        assert_eq!(apply(MaskRule::Range { width: 0.0 }, Scalar::Num("1")), s("***"));
    }

    #[test]
    fn never_the_original_value() {
        let values = [
            Scalar::Str("13812345678"),
            Scalar::Str("张"),
            Scalar::Str("2024-03-15"),
            Scalar::Str("31.2345"),
            Scalar::Num("37"),
            Scalar::Num("-1.5e3"),
            Scalar::Bool(true),
            Scalar::Composite(r#"{"phone":"13812345678"}"#),
        ];
        for rule in all_rules().into_iter().filter(|r| !r.is_clear()) {
            for v in values {
                let out = apply(rule.clone(), v);
                assert_ne!(out, Masked::Keep, "{rule:?} {v:?}");
                let text = match v {
                    Scalar::Str(t) | Scalar::Num(t) | Scalar::Composite(t) => t,
                    Scalar::Bool(_) | Scalar::Null => "true",
                };
                if let Masked::Str(o) = &out {
                    assert!(o != text || text.len() <= 2, "{rule:?} {v:?} → {o}");
                }
            }
        }
    }

    #[test]
    fn month_and_year_are_the_parsed_values_zero_padded() {
        for y in [0u16, 1, 9, 10, 99, 100, 999, 1000, 2024, 9999] {
            for m in 1u8..=12 {
                for v in [format!("{y:04}-{m:02}"), format!(" {y:04}-{m:02}-01T00:00:00Z\n")] {
                    assert_eq!(generalize::year_month(&v), Some((y, m)), "{v:?}");
                    let month = apply(MaskRule::Month, Scalar::Str(&v));
                    assert_eq!(month, s(&format!("{y:04}-{m:02}")), "{v:?}");
                    assert_eq!(
                        apply(MaskRule::Year, Scalar::Str(&v)),
                        s(&format!("{y:04}")),
                        "{v:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn apply_into_matches_apply() {
        let k = key();
        let mut text = String::from("stale");
        let values = [
            Scalar::Str("13812345678"),
            Scalar::Str("张三丰"),
            Scalar::Str("2024-03-15"),
            Scalar::Str("31.2345"),
            Scalar::Num("37"),
            Scalar::Num("-1.5e3"),
            Scalar::Bool(true),
            Scalar::Null,
            Scalar::Composite(r#"{"phone":"13812345678"}"#),
        ];
        for rule in all_rules() {
            for v in values {
                let expected = rule.apply(v, &k);
                let got = match rule.apply_into(v, &k, &mut text) {
                    Out::Keep => Masked::Keep,
                    Out::Omit => Masked::Omit,
                    Out::Null => Masked::Null,
                    Out::Str => Masked::Str(text.clone()),
                    Out::Num => Masked::Num(text.clone()),
                };
                assert_eq!(got, expected, "{rule:?} {v:?}");
            }
        }
    }

    #[test]
    fn rules_deserialise_from_config() {
        let r: MaskRule = serde_json::from_str(r#"{"rule":"partial","first":3,"last":4}"#).unwrap();
        assert_eq!(r, MaskRule::Partial { first: 3, last: 4 });
        let r: MaskRule = serde_json::from_str(r#"{"rule":"grid","cell":0.01}"#).unwrap();
        assert_eq!(apply(r, Scalar::Num("31.2345")), n("31.23"));
    }
}
