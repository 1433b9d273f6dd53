//! Exact decimal measures: [`Decimal`], a signed count of nano-units (10⁻⁹) in an `i128`.
//!
//! Sums are exact: every measure is parsed from its text into whole nano-units (rounded half
//! to even at the ninth decimal, so exact for any value with at most nine decimals) and
//! added as integers, so a sum never depends on the order records arrive in and never
//! drifts like an `f64` running sum would. Magnitudes above [`Decimal::MAX_MEASURE`] (10¹⁸)
//! are not accepted as measures; an `i128` of nano-units then holds the sum of more than
//! 10¹¹ such values before [`Decimal::checked_add`] reports an overflow. The only inexact
//! step is the conversion to `f64` for the JSON answer ([`Decimal::to_f64`], correctly
//! rounded).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Nano-units per unit.
const UNITS_PER_ONE: i128 = 1_000_000_000;
/// Fractional digits kept.
const SCALE_DIGITS: i64 = 9;
/// The largest measure magnitude, in nano-units (10¹⁸ units).
const MAX_MEASURE_UNITS: i128 = 1_000_000_000_000_000_000 * UNITS_PER_ONE;

/// An exact decimal: a whole number of nano-units (10⁻⁹). Ordered and added exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Decimal(i128);

impl Decimal {
    /// Zero.
    pub const ZERO: Self = Self(0);
    /// The largest magnitude [`Decimal::parse`] accepts: 10¹⁸.
    pub const MAX_MEASURE: Self = Self(MAX_MEASURE_UNITS);

    /// The decimal holding `units` nano-units.
    pub const fn from_units(units: i128) -> Self {
        Self(units)
    }

    /// The value in nano-units.
    pub const fn units(self) -> i128 {
        self.0
    }

    /// The whole number `n`.
    pub const fn from_int(n: i64) -> Self {
        Self(n as i128 * UNITS_PER_ONE)
    }

    /// Parses a decimal number as it appears in JSON or CSV (`-12`, `3.25`, `1e3`, `+0.5`,
    /// surrounding ASCII whitespace allowed). Rounds half to even at the ninth decimal.
    /// `None` for anything else (empty, `NaN`, `Infinity`, `1,5`, hex, …) and for
    /// magnitudes above [`Decimal::MAX_MEASURE`].
    pub fn parse(text: &str) -> Option<Self> {
        let s = text.trim_ascii().as_bytes();
        let (negative, s) = match s.split_first() {
            Some((b'-', rest)) => (true, rest),
            Some((b'+', rest)) => (false, rest),
            _ => (false, s),
        };
        let mantissa_end = s.iter().position(|&b| b == b'e' || b == b'E').unwrap_or(s.len());
        let (mantissa, exponent) = s.split_at(mantissa_end);
        let exponent = match exponent.split_first() {
            None => 0,
            Some((_, e)) => parse_exponent(e)?,
        };
        let (int_part, frac_part) = match mantissa.iter().position(|&b| b == b'.') {
            Some(dot) => (&mantissa[..dot], &mantissa[dot + 1..]),
            None => (mantissa, &[][..]),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part.iter().chain(frac_part).all(u8::is_ascii_digit) {
            return None;
        }
        // The significant digits (no leading zeros); value = digits × 10^(exponent − frac_len),
        // so in nano-units the digits shift left by `shift` places.
        let significant = || {
            int_part
                .iter()
                .chain(frac_part)
                .map(|d| d - b'0')
                .skip_while(|&d| d == 0)
        };
        let len = i64::try_from(significant().count()).ok()?;
        if len == 0 {
            return Some(Self::ZERO);
        }
        let shift = exponent - i64::try_from(frac_part.len()).ok()? + SCALE_DIGITS;
        // More than 28 digits left of the nano-unit point is at least 10²⁸ nano-units.
        if len + shift > 28 {
            return None;
        }
        let accumulate =
            |digits: &mut dyn Iterator<Item = u8>| digits.fold(0i128, |m, d| m * 10 + i128::from(d));
        let magnitude = if shift >= 0 {
            accumulate(&mut significant()).checked_mul(10i128.checked_pow(u32::try_from(shift).ok()?)?)?
        } else {
            // Keep the first `len + shift` digits and round half to even on the rest; below
            // zero kept digits, the dropped part starts with an implicit 0 and rounds down.
            let keep = usize::try_from(len + shift).unwrap_or(0);
            let kept = accumulate(&mut significant().take(keep));
            let round_up = len + shift >= 0 && half_even_up(significant().skip(keep), kept % 2 == 1);
            kept + i128::from(round_up)
        };
        if magnitude > MAX_MEASURE_UNITS {
            return None;
        }
        Some(Self(if negative { -magnitude } else { magnitude }))
    }

    /// `self + other`, `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    /// The absolute value (saturating, which only matters for `i128::MIN` nano-units).
    pub fn abs(self) -> Self {
        Self(self.0.saturating_abs())
    }

    /// The nearest `f64` (correctly rounded through the exact decimal text).
    pub fn to_f64(self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }
}

/// Whether dropping `rest` (the digits after the last kept one) rounds up, half to even.
fn half_even_up(mut rest: impl Iterator<Item = u8>, kept_is_odd: bool) -> bool {
    match rest.next() {
        None => false,
        Some(5) => rest.any(|t| t != 0) || kept_is_odd,
        Some(d) => d > 5,
    }
}

/// An exponent's digits after `e`: optional sign, 1 to 6 digits.
fn parse_exponent(e: &[u8]) -> Option<i64> {
    let (negative, digits) = match e.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, e),
    };
    if digits.is_empty() || digits.len() > 6 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    Some(if negative { -n } else { n })
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let m = self.0.unsigned_abs();
        let one = UNITS_PER_ONE.unsigned_abs();
        let (int, frac) = (m / one, m % one);
        if frac == 0 {
            return write!(f, "{sign}{int}");
        }
        let frac = format!("{frac:09}");
        write!(f, "{sign}{int}.{}", frac.trim_end_matches('0'))
    }
}

/// Why a text is not a [`Decimal`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a decimal number of magnitude at most 1e18: {0:?}")]
pub struct DecimalError(pub String);

impl FromStr for Decimal {
    type Err = DecimalError;

    fn from_str(s: &str) -> Result<Self, DecimalError> {
        Self::parse(s).ok_or_else(|| DecimalError(s.chars().take(80).collect()))
    }
}

/// Serialises as the exact decimal text (a JSON string), so nothing is lost.
impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Deserialises from a string or a number (a number through its shortest text).
impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Decimal;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal number (string or number) of magnitude at most 1e18")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Decimal, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Decimal, E> {
                self.visit_str(&v.to_string())
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Decimal, E> {
                self.visit_str(&v.to_string())
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Decimal, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(Visitor)
    }
}
