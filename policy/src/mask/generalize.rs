//! Generalisation.
//!
//! Numbers are handled as exact decimals (`coef × 10^exp`), parsed from their JSON text, so
//! grid cells and rounding never show binary floating-point noise (`31.23`, not
//! `31.230000000000004`) and never misplace a value that sits exactly on a cell boundary.
//! Every function returns `None` when it cannot apply; the caller then redacts.

use time::{Date, Month};

/// Largest power of ten an `i128` holds.
const MAX_POW10: u32 = 38;

/// An exact decimal `coef × 10^exp`, normalised: no trailing zeros in `coef`; zero has
/// `exp == 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dec {
    coef: i128,
    exp: i32,
}

/// Exponents beyond this are rejected (they only come from hostile or broken input).
const MAX_EXP: i64 = 400;

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

/// The digits of a number as they are read: up to 18 at a time in 64 bits, folded into an
/// `i128` (i128 arithmetic is a library call). `None` once the value exceeds `i128::MAX`,
/// like the per-digit check it replaces (every prefix of the digits is at most the whole).
#[derive(Default)]
struct Digits {
    coef: i128,
    small: u64,
    pending: u32,
}

impl Digits {
    fn push(&mut self, d: u8) -> Option<()> {
        self.small = self.small * 10 + u64::from(d);
        self.pending += 1;
        if self.pending == 18 {
            self.fold()?;
        }
        Some(())
    }

    fn fold(&mut self) -> Option<()> {
        if self.pending > 0 {
            self.coef = self
                .coef
                .checked_mul(pow10(self.pending)?)?
                .checked_add(i128::from(self.small))?;
            self.small = 0;
            self.pending = 0;
        }
        Some(())
    }

    fn value(mut self) -> Option<i128> {
        self.fold()?;
        Some(self.coef)
    }
}

/// A non-zero `coef` without its trailing decimal zeros, and how many were removed (in 64
/// bits when it fits).
fn strip_zeros(coef: i128) -> (i128, u32) {
    let mut n = 0;
    if let Ok(mut c) = i64::try_from(coef) {
        while c % 10 == 0 {
            c /= 10;
            n += 1;
        }
        return (i128::from(c), n);
    }
    let mut c = coef;
    while c % 10 == 0 {
        c /= 10;
        n += 1;
    }
    (c, n)
}

impl Dec {
    /// Parses a decimal number: optional sign, digits, optional fraction, optional exponent.
    /// Surrounding ASCII whitespace is ignored (CSV cells); a leading `+` is accepted.
    /// Rejects `NaN`, `inf`, hex, empty fractions and more than 38 significant digits.
    pub(crate) fn parse(text: &str) -> Option<Dec> {
        let b = text.trim_matches(|c: char| c.is_ascii_whitespace()).as_bytes();
        let mut i = 0;
        let neg = match b.first() {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let mut coef = Digits::default();
        let mut exp: i64 = 0;
        let mut int_digits = 0usize;
        while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
            coef.push(d - b'0')?;
            int_digits += 1;
            i += 1;
        }
        if int_digits == 0 {
            return None;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            let mut frac_digits = 0usize;
            while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
                coef.push(d - b'0')?;
                exp -= 1;
                frac_digits += 1;
                i += 1;
            }
            if frac_digits == 0 {
                return None;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            let eneg = match b.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let mut e: i64 = 0;
            let mut edigits = 0usize;
            while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
                e = (e * 10 + i64::from(d - b'0')).min(i64::from(i32::MAX));
                edigits += 1;
                i += 1;
            }
            if edigits == 0 {
                return None;
            }
            exp += if eneg { -e } else { e };
        }
        if i != b.len() {
            return None;
        }
        let coef = coef.value()?;
        if coef == 0 {
            return Some(Dec { coef: 0, exp: 0 });
        }
        let (coef, stripped) = strip_zeros(coef);
        exp += i64::from(stripped);
        if !(-MAX_EXP..=MAX_EXP).contains(&exp) {
            return None;
        }
        let exp = i32::try_from(exp).ok()?;
        Some(Dec {
            coef: if neg { -coef } else { coef },
            exp,
        })
    }

    /// The exact decimal of a finite positive `f64` as Rust prints it (shortest round-trip),
    /// so a configured `0.01` is the decimal 0.01.
    pub(crate) fn from_positive_f64(v: f64) -> Option<Dec> {
        if !v.is_finite() || v <= 0.0 {
            return None;
        }
        Dec::parse(&v.to_string())
    }

    fn from_u32(v: u32) -> Dec {
        Dec::normalised(i128::from(v), 0)
    }

    fn normalised(coef: i128, exp: i32) -> Dec {
        if coef == 0 {
            return Dec { coef: 0, exp: 0 };
        }
        let (coef, stripped) = strip_zeros(coef);
        Dec {
            coef,
            exp: exp.saturating_add(i32::try_from(stripped).unwrap_or(i32::MAX)),
        }
    }

    /// `self / 10^exp` rounded half away from zero to an integer; `None` on overflow.
    pub(crate) fn units(self, exp: i32) -> Option<i128> {
        let d = Dec {
            coef: self.coef,
            exp: self.exp.checked_sub(exp)?,
        }
        .round(0);
        d.coef.checked_mul(pow10(u32::try_from(d.exp).ok()?)?)
    }

    /// The text of `units × 10^exp`, with `-exp` decimals when `exp` is negative.
    pub(crate) fn units_text(units: i128, exp: i32) -> String {
        Dec::normalised(units, exp).fixed(exp.min(0).unsigned_abs())
    }

    /// The coefficient and exponent (`coef × 10^exp`, no trailing zeros in `coef`).
    pub(crate) fn parts(self) -> (i128, i32) {
        (self.coef, self.exp)
    }

    fn is_negative(self) -> bool {
        self.coef < 0
    }

    /// Digits after the decimal point needed to write the value exactly.
    fn scale(self) -> u32 {
        self.exp.min(0).unsigned_abs()
    }

    /// `floor(self / step)` for a positive `step`; `None` on overflow.
    fn floor_div(self, step: Dec) -> Option<i128> {
        if step.coef <= 0 {
            return None;
        }
        let e = self.exp.min(step.exp);
        let a = self.coef.checked_mul(pow10((self.exp - e).unsigned_abs())?)?;
        let c = step.coef.checked_mul(pow10((step.exp - e).unsigned_abs())?)?;
        Some(a.div_euclid(c))
    }

    /// `n × self`.
    fn times(self, n: i128) -> Option<Dec> {
        Some(Dec::normalised(self.coef.checked_mul(n)?, self.exp))
    }

    /// Rounded half away from zero to `places` decimals.
    fn round(self, places: u32) -> Dec {
        let target = -i64::from(places);
        if i64::from(self.exp) >= target {
            return self;
        }
        let k = target - i64::from(self.exp);
        let Some(p) = u32::try_from(k).ok().filter(|k| *k <= MAX_POW10).and_then(pow10) else {
            // |coef| < 1.8e38 < 0.5 × 10^39: rounds to zero.
            return Dec { coef: 0, exp: 0 };
        };
        // In 64 bits when both fit (coordinates and readings do): i128 division is a
        // library call.
        let (mut q, half_or_more) = match (i64::try_from(self.coef), i64::try_from(p)) {
            (Ok(c), Ok(p)) => (i128::from(c / p), (c % p).unsigned_abs() * 2 >= p.unsigned_abs()),
            _ => (
                self.coef / p,
                (self.coef % p).unsigned_abs() * 2 >= p.unsigned_abs(),
            ),
        };
        if half_or_more {
            q += self.coef.signum();
        }
        // exp = -places; places ≤ 255 fits i32.
        Dec::normalised(q, i32::try_from(target).unwrap_or(i32::MIN))
    }

    /// Writes the value with exactly `decimals` digits after the point (≥ its own scale;
    /// more are zero-filled). Negative zero is written as zero.
    fn fixed(self, decimals: u32) -> String {
        let abs = self.coef.unsigned_abs();
        let mut digits = match u64::try_from(abs) {
            Ok(v) => v.to_string(),
            Err(_) => abs.to_string(),
        };
        let mut out = String::with_capacity(digits.len() + decimals as usize + 3);
        if self.coef < 0 {
            out.push('-');
        }
        if self.exp >= 0 {
            if self.coef != 0 {
                digits.extend(std::iter::repeat_n('0', self.exp.unsigned_abs() as usize));
            }
            out.push_str(&digits);
            if decimals > 0 {
                out.push('.');
                out.extend(std::iter::repeat_n('0', decimals as usize));
            }
        } else {
            let k = self.exp.unsigned_abs() as usize;
            if digits.len() <= k {
                let pad = k + 1 - digits.len();
                digits.insert_str(0, &"0".repeat(pad));
            }
            let (int, frac) = digits.split_at(digits.len() - k);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
            out.extend(std::iter::repeat_n('0', (decimals as usize).saturating_sub(k)));
        }
        out
    }
}

/// Age → band of `width` years: 37 with width 10 → `"30-39"`. Negative ages fail.
pub(crate) fn age_band(v: Dec, width: u32) -> Option<String> {
    if width == 0 || v.is_negative() {
        return None;
    }
    integer_band(v, Dec::from_u32(width))
}

/// `"lo-hi"` with both bounds inclusive integers, for an integer `step`.
fn integer_band(v: Dec, step: Dec) -> Option<String> {
    let n = v.floor_div(step)?;
    let lo = step.times(n)?;
    let hi = step.times(n.checked_add(1)?)?;
    let lo = lo.coef.checked_mul(pow10(lo.exp.try_into().ok()?)?)?;
    let hi = hi
        .coef
        .checked_mul(pow10(hi.exp.try_into().ok()?)?)?
        .checked_sub(1)?;
    Some(format!("{lo}-{hi}"))
}

/// Number → the range of `width` it falls in. Integer widths give inclusive integer bounds
/// (`1234`, width 1000 → `"1000-1999"`; `-5`, width 10 → `"-10--1"`). Fractional widths give
/// a half-open interval with the width's decimals (`1.7`, width 0.5 → `"[1.5,2.0)"`).
pub(crate) fn range(v: Dec, width: f64) -> Option<String> {
    let step = Dec::from_positive_f64(width)?;
    if step.exp >= 0 {
        return integer_band(v, step);
    }
    let n = v.floor_div(step)?;
    let lo = step.times(n)?;
    let hi = step.times(n.checked_add(1)?)?;
    let d = step.scale();
    Some(format!("[{},{})", lo.fixed(d), hi.fixed(d)))
}

/// Coordinate → the lower (south-west) corner of its cell: `floor(v / cell) × cell`, written
/// with the cell's decimals (`31.2345`, cell 0.01 → `31.23`; `-121.4745` → `-121.48`).
pub(crate) fn grid(v: Dec, cell: f64) -> Option<String> {
    let step = Dec::from_positive_f64(cell)?;
    let lo = step.times(v.floor_div(step)?)?;
    Some(lo.fixed(step.scale()))
}

/// Number rounded half away from zero to `places` decimals, written with exactly `places`
/// decimals (`31.2345`, 2 → `31.23`; `2.5`, 0 → `3`; `7`, 2 → `7.00`). Values of 10^40 or more
/// fail (they would need absurdly long output and come from broken input).
pub(crate) fn decimals(v: Dec, places: u8) -> Option<String> {
    let r = v.round(u32::from(places));
    let int_digits = r.coef.unsigned_abs().checked_ilog10().unwrap_or(0) as i64 + 1 + i64::from(r.exp);
    if int_digits > 40 {
        return None;
    }
    Some(r.fixed(u32::from(places)))
}

/// Year and month of a date `YYYY-MM-DD`, a month `YYYY-MM`, or a datetime `YYYY-MM-DD`
/// followed by `T`, `t` or a space and a time `HH:MM[:SS[.fff…]]` with an optional offset
/// (`Z`, `z`, `±HH:MM`, `±HHMM`) — RFC 3339 and the common SQL form. The date is taken as
/// written (not converted to UTC). The date must exist (no 2023-02-29).
pub(crate) fn year_month(s: &str) -> Option<(u16, u8)> {
    let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let b = s.as_bytes();
    if b.len() < 7 || b[4] != b'-' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let m = Month::try_from(u8::try_from(month).ok()?).ok()?;
    let year16 = u16::try_from(year).ok()?;
    if b.len() == 7 {
        return Some((year16, m as u8));
    }
    if b.len() < 10 || b[7] != b'-' {
        return None;
    }
    let day = digits(&b[8..10])?;
    Date::from_calendar_date(i32::from(year16), m, u8::try_from(day).ok()?).ok()?;
    let rest = &b[10..];
    if rest.is_empty() || (matches!(rest[0], b'T' | b't' | b' ') && is_time(&rest[1..])) {
        Some((year16, m as u8))
    } else {
        None
    }
}

/// All ASCII digits → their value.
fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
}

/// `HH:MM[:SS[.f+]][Z|z|±HH:MM|±HHMM]`.
fn is_time(b: &[u8]) -> bool {
    let two = |at: usize, max: u32| b.get(at..at + 2).and_then(digits).is_some_and(|v| v <= max);
    if !(two(0, 23) && b.get(2) == Some(&b':') && two(3, 59)) {
        return false;
    }
    let mut i = 5;
    if b.get(i) == Some(&b':') {
        // 60: leap second.
        if !two(i + 1, 60) {
            return false;
        }
        i += 3;
        if b.get(i) == Some(&b'.') {
            let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return false;
            }
            i += 1 + n;
        }
    }
    match b.get(i) {
        None => true,
        Some(b'Z' | b'z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            let off = &b[i + 1..];
            let long = off.len() == 5 && off[2] == b':' && two(i + 1, 23) && two(i + 4, 59);
            let short = off.len() == 4 && two(i + 1, 23) && two(i + 3, 59);
            long || short
        }
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parse, rounding and writing of before the 64-bit fast paths, digit by digit in
    /// i128: the oracle the fast paths must match.
    mod reference {
        pub fn parse(text: &str) -> Option<(i128, i64)> {
            let b = text.as_bytes();
            let mut i = 0;
            let neg = b.first() == Some(&b'-');
            if neg {
                i += 1;
            }
            let (mut coef, mut exp) = (0i128, 0i64);
            while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
                coef = coef.checked_mul(10)?.checked_add(i128::from(d - b'0'))?;
                i += 1;
            }
            if b.get(i) == Some(&b'.') {
                i += 1;
                while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
                    coef = coef.checked_mul(10)?.checked_add(i128::from(d - b'0'))?;
                    exp -= 1;
                    i += 1;
                }
            }
            if coef == 0 {
                return Some((0, 0));
            }
            while coef % 10 == 0 {
                coef /= 10;
                exp += 1;
            }
            Some((if neg { -coef } else { coef }, exp))
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_paths_match_the_i128_arithmetic(
            neg in proptest::bool::ANY,
            int in "[0-9]{1,30}",
            frac in proptest::option::of("[0-9]{1,30}"),
            places in 0u8..12,
        ) {
            let text = format!("{}{int}{}", if neg { "-" } else { "" }, frac.map(|f| format!(".{f}")).unwrap_or_default());
            let fast = Dec::parse(&text);
            let slow = reference::parse(&text);
            proptest::prop_assert_eq!(fast.map(|d| (d.coef, i64::from(d.exp))), slow);
            if let Some(d) = fast {
                // Rounding through the i128 path: the same value scaled out of 64 bits.
                if let Some(coef) = d.coef.checked_mul(10i128.pow(19)) {
                    let wide = Dec { coef, exp: d.exp - 19 };
                    let r = wide.round(u32::from(places));
                    proptest::prop_assert_eq!(d.round(u32::from(places)), Dec::normalised(r.coef, r.exp));
                }
                let written = decimals(d, places);
                // (Written values of more than 38 digits do not parse back, by design.)
                if let Some(w) = written.as_ref().filter(|w| reference::parse(w).is_some()) {
                    let back = Dec::parse(w).map(|b| (b.coef, b.exp));
                    proptest::prop_assert_eq!(back, Some(d.round(u32::from(places))).map(|r| (r.coef, r.exp)));
                }
            }
        }
    }

    fn d(s: &str) -> Dec {
        Dec::parse(s).unwrap()
    }

    #[test]
    fn parses_json_and_csv_numbers() {
        assert_eq!(d("0"), Dec { coef: 0, exp: 0 });
        assert_eq!(d("-0.000"), Dec { coef: 0, exp: 0 });
        assert_eq!(d("0e-999"), Dec { coef: 0, exp: 0 });
        assert_eq!(d("-1.5e3"), Dec { coef: -15, exp: 2 });
        assert_eq!(d("31.2300"), Dec { coef: 3123, exp: -2 });
        assert_eq!(d(" +42 "), Dec { coef: 42, exp: 0 });
        assert_eq!(d("1E+2"), Dec { coef: 1, exp: 2 });
        for bad in [
            "",
            "-",
            "abc",
            "1.",
            ".5",
            "1e",
            "1e+",
            "0x10",
            "NaN",
            "inf",
            "1,5",
            "12a",
            "--1",
            "1e99999",
            "123456789012345678901234567890123456789012",
        ] {
            assert_eq!(Dec::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn f64_cells_are_exact_decimals() {
        assert_eq!(Dec::from_positive_f64(0.01), Some(Dec { coef: 1, exp: -2 }));
        assert_eq!(Dec::from_positive_f64(0.05), Some(Dec { coef: 5, exp: -2 }));
        assert_eq!(Dec::from_positive_f64(1000.0), Some(Dec { coef: 1, exp: 3 }));
        assert_eq!(Dec::from_positive_f64(1e-7), Some(Dec { coef: 1, exp: -7 }));
        assert_eq!(Dec::from_positive_f64(0.0), None);
        assert_eq!(Dec::from_positive_f64(-1.0), None);
        assert_eq!(Dec::from_positive_f64(f64::NAN), None);
        assert_eq!(Dec::from_positive_f64(f64::INFINITY), None);
    }

    #[test]
    fn grid_has_no_float_noise_and_floors() {
        assert_eq!(grid(d("31.2345"), 0.01).as_deref(), Some("31.23"));
        assert_eq!(grid(d("31.23"), 0.01).as_deref(), Some("31.23"));
        assert_eq!(grid(d("31.239999"), 0.01).as_deref(), Some("31.23"));
        assert_eq!(grid(d("121.4745"), 0.001).as_deref(), Some("121.474"));
        assert_eq!(grid(d("-121.4745"), 0.01).as_deref(), Some("-121.48"));
        assert_eq!(grid(d("-0.001"), 0.01).as_deref(), Some("-0.01"));
        assert_eq!(grid(d("0.001"), 0.01).as_deref(), Some("0.00"));
        assert_eq!(grid(d("31"), 0.01).as_deref(), Some("31.00"));
        assert_eq!(grid(d("31.27"), 0.05).as_deref(), Some("31.25"));
        assert_eq!(grid(d("31.27"), 0.25).as_deref(), Some("31.25"));
        assert_eq!(grid(d("3.127e1"), 0.1).as_deref(), Some("31.2"));
        assert_eq!(grid(d("1234"), 10.0).as_deref(), Some("1230"));
        assert_eq!(grid(d("31.2"), 0.0), None);
        assert_eq!(grid(d("1e-300"), 0.01), None);
        // Brute force against naive decimal expectation on 0.01 cells.
        for i in -20000i64..20000 {
            let text = format!("{}.{:03}", i / 1000, (i % 1000).abs());
            let text = if i < 0 && i / 1000 == 0 {
                format!("-{text}")
            } else {
                text
            };
            let v: f64 = text.parse().unwrap();
            let expected = (i as f64 / 10.0).floor() as i64; // in hundredths
            let out = grid(d(&text), 0.01).unwrap();
            let got: f64 = out.parse().unwrap();
            assert!((got * 100.0 - expected as f64).abs() < 1e-6, "{text} → {out}");
            assert!(got <= v + 1e-12 && v < got + 0.01 + 1e-12, "{text} → {out}");
            assert_eq!(out.split('.').nth(1).map(str::len), Some(2), "{out}");
        }
    }

    #[test]
    fn decimals_round_half_away_from_zero() {
        assert_eq!(decimals(d("31.2345"), 2).as_deref(), Some("31.23"));
        assert_eq!(decimals(d("31.235"), 2).as_deref(), Some("31.24"));
        assert_eq!(decimals(d("-31.235"), 2).as_deref(), Some("-31.24"));
        assert_eq!(decimals(d("2.5"), 0).as_deref(), Some("3"));
        assert_eq!(decimals(d("-2.5"), 0).as_deref(), Some("-3"));
        assert_eq!(decimals(d("1.005"), 2).as_deref(), Some("1.01"));
        assert_eq!(decimals(d("0.999"), 2).as_deref(), Some("1.00"));
        assert_eq!(decimals(d("-0.001"), 2).as_deref(), Some("0.00"));
        assert_eq!(decimals(d("7"), 2).as_deref(), Some("7.00"));
        assert_eq!(decimals(d("-1.5e3"), 1).as_deref(), Some("-1500.0"));
        assert_eq!(decimals(d("1.5e-50"), 3).as_deref(), Some("0.000"));
        assert_eq!(
            decimals(d("0.5e-38"), 38).as_deref(),
            Some(format!("0.{}1", "0".repeat(37)).as_str())
        );
        assert_eq!(
            decimals(d("1e39"), 0).as_deref(),
            Some(format!("1{}", "0".repeat(39)).as_str())
        );
        assert_eq!(decimals(d("1e40"), 0), None);
        assert_eq!(decimals(d("123.456"), 255).map(|s| s.len()), Some(4 + 255));
    }

    #[test]
    fn ranges_and_bands() {
        assert_eq!(range(d("1234"), 1000.0).as_deref(), Some("1000-1999"));
        assert_eq!(range(d("1000"), 1000.0).as_deref(), Some("1000-1999"));
        assert_eq!(range(d("999.99"), 1000.0).as_deref(), Some("0-999"));
        assert_eq!(range(d("-5"), 10.0).as_deref(), Some("-10--1"));
        assert_eq!(range(d("37"), 5.0).as_deref(), Some("35-39"));
        assert_eq!(range(d("1.7"), 0.5).as_deref(), Some("[1.5,2.0)"));
        assert_eq!(range(d("-0.1"), 0.25).as_deref(), Some("[-0.25,0.00)"));
        assert_eq!(range(d("1.7"), 0.0), None);
        assert_eq!(range(d("1.7"), f64::NAN), None);
        assert_eq!(age_band(d("37"), 10).as_deref(), Some("30-39"));
        assert_eq!(age_band(d("30"), 10).as_deref(), Some("30-39"));
        assert_eq!(age_band(d("0"), 10).as_deref(), Some("0-9"));
        assert_eq!(age_band(d("37.9"), 5).as_deref(), Some("35-39"));
        assert_eq!(age_band(d("105"), 10).as_deref(), Some("100-109"));
        assert_eq!(age_band(d("37"), 1).as_deref(), Some("37-37"));
        assert_eq!(age_band(d("-1"), 10), None);
        assert_eq!(age_band(d("37"), 0), None);
        assert_eq!(age_band(d("1e39"), 10), None);
    }

    #[test]
    fn dates() {
        assert_eq!(year_month("2024-03-15"), Some((2024, 3)));
        assert_eq!(year_month("2024-02-29"), Some((2024, 2)));
        assert_eq!(year_month("2024-03"), Some((2024, 3)));
        assert_eq!(year_month("2024-03-15T08:30:00Z"), Some((2024, 3)));
        assert_eq!(year_month("2024-03-15t08:30:00.123456+08:00"), Some((2024, 3)));
        assert_eq!(year_month("2024-12-31T23:59:60-05:00"), Some((2024, 12)));
        assert_eq!(year_month("2024-03-15 08:30:00"), Some((2024, 3)));
        assert_eq!(year_month("2024-03-15 08:30"), Some((2024, 3)));
        assert_eq!(year_month("2024-03-15T08:30:00+0800"), Some((2024, 3)));
        for bad in [
            "",
            "2024",
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-3-15",
            "24-03-15",
            "2024/03/15",
            "2024-03-15X",
            "2024-03-15T25:00:00Z",
            "2024-03-15T08:30:00+8",
            "2024-03-15T08:30:00.Z",
            "2024-03-15T08:30:00Zjunk",
            "张三丰的生日",
            "２０２４-03-15",
            "2024-03-1５",
        ] {
            assert_eq!(year_month(bad), None, "{bad:?}");
        }
    }
}
