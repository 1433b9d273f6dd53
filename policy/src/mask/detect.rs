//! The detector safety net: finds personal identifiers in free text and masks them.
//!
//! Applied to every clear string of a field planned with `scan = true`, so the common case
//! must cost almost nothing: [`scrub`] first makes one byte pass looking for an `@` or a run
//! of at least 11 digits (single spaces or dashes between digits allowed) and returns the
//! input borrowed when there is none. Only then are the detectors run.
//!
//! | identifier | recognised | masked as |
//! |---|---|---|
//! | mainland mobile | 11 digits `1[3-9]…`, compact or `3-4-4` with spaces/dashes, optional `86`/`+86` prefix | middle four digits starred: `138****5678`, `138-****-5678`, `+86 138 **** 5678` |
//! | resident ID (GB 11643) | 17 digits + digit/`X`, compact, `6-8-4` or `6-4-4-4`, valid check digit and birth date | first 3 and the check character kept: `110**************X` |
//! | bank card | 13–19 digits starting with 2–6 or 9, compact or groups of 4 (last group 1–4) with single spaces/dashes, valid Luhn | first 6 and last 4 digits kept: `411111******1111` |
//! | e-mail | ASCII `local@domain.tld` | first character of the local part and the domain kept: `z***@example.com` |
//!
//! Digits are masked in place (separators and length are kept). A number is only taken
//! whole: a run of digits embedded in a longer run (`0138123456789`), or the integer or
//! fraction part of a decimal (`13812345678.50`), is not an identifier; a number next to a
//! decimal still is (`tel 13812345678 3.5`). Letters and CJK characters next to a number do
//! not prevent detection (`请联系13812345678处理`).
//!
//! The resident ID keeps its check character but not the 17th digit, which encodes the
//! holder's sex. Full-width digits (`１３８…`) are not detected.

use std::borrow::Cow;

/// Luhn check of a string of ASCII digits (at least two; no separators).
///
/// ```
/// use sluice_policy::mask::detect::luhn_valid;
/// assert!(luhn_valid("4111111111111111"));
/// assert!(!luhn_valid("4111111111111112"));
/// assert!(!luhn_valid("4111 1111 1111 1111"));
/// ```
pub fn luhn_valid(digits: &str) -> bool {
    let b = digits.as_bytes();
    b.len() >= 2 && b.iter().all(u8::is_ascii_digit) && luhn_bytes(b.iter().copied())
}

/// Luhn over digit bytes (callers guarantee ASCII digits).
fn luhn_bytes(digits: impl DoubleEndedIterator<Item = u8>) -> bool {
    let mut sum = 0u32;
    for (i, c) in digits.rev().enumerate() {
        let mut d = u32::from(c - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    // (`is_multiple_of` needs Rust 1.87; the workspace supports 1.85.)
    matches!(sum % 10, 0)
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// Whether `id` is a valid 18-character resident identity number (GB 11643-1999): 17 ASCII
/// digits and a check character (digit or `X`/`x`) matching the weighted mod-11 checksum,
/// a non-zero first digit, and a birth date (characters 7–14) that exists and lies in
/// 1900–2099.
///
/// ```
/// use sluice_policy::mask::detect::resident_id_valid;
/// assert!(resident_id_valid("11010519491231002X"));
/// assert!(resident_id_valid("11010519491231002x"));
/// assert!(!resident_id_valid("110105194912310021")); // wrong check digit
/// assert!(!resident_id_valid("11010519491331002X")); // month 13
/// ```
pub fn resident_id_valid(id: &str) -> bool {
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) || b[0] == b'0' {
        return false;
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(c, w)| u32::from(c - b'0') * w)
        .sum();
    let expected = ID_CHECK[(sum % 11) as usize];
    if b[17].to_ascii_uppercase() != expected {
        return false;
    }
    let num = |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |a, c| a * 10 + u32::from(c - b'0'));
    let (year, month, day) = (num(6..10), num(10..12), num(12..14));
    if !(1900..=2099).contains(&year) {
        return false;
    }
    let Ok(month) = time::Month::try_from(month as u8) else {
        return false;
    };
    time::Date::from_calendar_date(year as i32, month, day as u8).is_ok()
}

/// Masks the identifiers in `text` (see the [module docs](self)); borrows when nothing was
/// found.
///
/// ```
/// use sluice_policy::mask::detect::scrub;
/// assert_eq!(scrub("请联系13812345678处理"), "请联系138****5678处理");
/// assert_eq!(scrub("mail zhang.san@example.com"), "mail z***@example.com");
/// assert!(matches!(scrub("hydrant 17, Huangpu"), std::borrow::Cow::Borrowed(_)));
/// ```
pub fn scrub(text: &str) -> Cow<'_, str> {
    scrub_counted(text).0
}

/// Like [`scrub`], also returning how many identifiers were masked.
///
/// ```
/// use sluice_policy::mask::detect::scrub_counted;
/// let (out, hits) = scrub_counted("卡号 4111 1111 1111 1111，身份证11010519491231002X");
/// assert_eq!(out, "卡号 4111 11** **** 1111，身份证110**************X");
/// assert_eq!(hits, 2);
/// assert_eq!(scrub_counted("no identifiers").1, 0);
/// ```
pub fn scrub_counted(text: &str) -> (Cow<'_, str>, u32) {
    let bytes = text.as_bytes();
    if !may_contain_identifier(bytes) {
        return (Cow::Borrowed(text), 0);
    }
    let mut edits = Vec::new();
    let mut hits = find_emails(bytes, &mut edits);
    // Numbers are searched outside the e-mail addresses found.
    let masked_view;
    let view: &[u8] = if edits.is_empty() {
        bytes
    } else {
        let mut v = bytes.to_vec();
        for e in &edits {
            v[e.span_start..e.span_end].fill(b'@');
        }
        masked_view = v;
        &masked_view
    };
    hits += find_numbers(view, &mut edits);
    if edits.is_empty() {
        return (Cow::Borrowed(text), 0);
    }
    edits.sort_unstable_by_key(|e| e.start);
    (Cow::Owned(apply(text, &edits)), hits)
}

/// The cheap pre-check: an `@`, or at least 11 digits in a run where single spaces or dashes
/// may separate digits.
fn may_contain_identifier(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = ONES * 0x7f;
    let mut run = 0u32;
    let mut after_sep = false;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let x = <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes);
        // Flags (at least) every byte that is an ASCII digit or `@` (bytes of 0x80 and above
        // are never flagged: they are neither). A word without any is eight bytes that end
        // every run: two non-digits in a row reset the state below.
        let low = x & LOW7;
        let digit = (ONES * (127 + 1 + b'9' as u64) - low) & !x & (low + ONES * (128 - b'0' as u64));
        let at = {
            let y = x ^ (ONES * u64::from(b'@'));
            y.wrapping_sub(ONES) & !y
        };
        if (digit | at) & (ONES * 0x80) == 0 {
            run = 0;
            after_sep = false;
            continue;
        }
        for &c in w {
            if step(c, &mut run, &mut after_sep) {
                return true;
            }
        }
    }
    for &c in words.remainder() {
        if step(c, &mut run, &mut after_sep) {
            return true;
        }
    }
    false
}

/// One byte of [`may_contain_identifier`]; true when the text may hold an identifier.
#[inline]
fn step(c: u8, run: &mut u32, after_sep: &mut bool) -> bool {
    if c.is_ascii_digit() {
        *run += 1;
        if *run >= 11 {
            return true;
        }
        *after_sep = false;
    } else if c == b'@' {
        return true;
    } else if (c == b' ' || c == b'-') && *run > 0 && !*after_sep {
        *after_sep = true;
    } else {
        *run = 0;
        *after_sep = false;
    }
    false
}

#[derive(Debug)]
enum Replace {
    /// Every ASCII digit and `X`/`x` in the range becomes `*`; other bytes stay.
    StarDigits,
    /// The range becomes `***`.
    Stars3,
}

#[derive(Debug)]
struct Edit {
    start: usize,
    end: usize,
    how: Replace,
    /// The whole identifier (for e-mails: the address), excluded from further detection.
    span_start: usize,
    span_end: usize,
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut at = 0;
    for e in edits {
        // Edit bounds are positions of ASCII bytes, hence char boundaries.
        out.push_str(text.get(at..e.start).unwrap_or_default());
        match e.how {
            Replace::Stars3 => out.push_str("***"),
            Replace::StarDigits => {
                for c in text.get(e.start..e.end).unwrap_or_default().chars() {
                    out.push(if c.is_ascii_digit() || c == 'X' || c == 'x' {
                        '*'
                    } else {
                        c
                    });
                }
            }
        }
        at = e.end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    out
}

fn is_local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
}

/// Finds e-mail addresses; returns how many.
fn find_emails(b: &[u8], edits: &mut Vec<Edit>) -> u32 {
    let mut hits = 0;
    for at in memchr::memchr_iter(b'@', b) {
        // In `a@b.com@c.com` the second local part is the first domain: masking it too keeps
        // the edits apart and the result stable under a second scrub.
        let mut start = at;
        while start > 0 && is_local_char(b[start - 1]) {
            start -= 1;
        }
        while start < at && b[start] == b'.' {
            start += 1;
        }
        if start == at {
            continue;
        }
        let mut end = at + 1;
        while end < b.len() && is_domain_char(b[end]) {
            end += 1;
        }
        while end > at + 1 && matches!(b[end - 1], b'.' | b'-') {
            end -= 1;
        }
        if !valid_domain(&b[at + 1..end]) {
            continue;
        }
        edits.push(Edit {
            start: start + 1,
            end: at,
            how: Replace::Stars3,
            span_start: start,
            span_end: end,
        });
        hits += 1;
    }
    hits
}

/// At least two labels of letters, digits and inner hyphens; the last starts with a letter
/// and has at least two characters.
fn valid_domain(d: &[u8]) -> bool {
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in d.split(|c| *c == b'.') {
        if label.is_empty() || label.len() > 63 || label[0] == b'-' || label[label.len() - 1] == b'-' {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2 && last.len() >= 2 && last[0].is_ascii_alphabetic()
}

/// A maximal run of ASCII digits, `start..end`, optionally followed by an `X`/`x` check
/// character (`x` is then true and the X sits at `end`).
#[derive(Debug, Clone, Copy)]
struct Group {
    start: usize,
    end: usize,
    x: bool,
}

impl Group {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// Finds phone, ID and card numbers in `b` (e-mail addresses blanked out); returns how many.
fn find_numbers(b: &[u8], edits: &mut Vec<Edit>) -> u32 {
    let mut hits = 0;
    let mut groups: Vec<Group> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // One loose run: digit groups separated by single spaces or dashes.
        groups.clear();
        loop {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            // An X closes a resident ID (17 digits, or 3 in the spaced forms) even when a
            // letter follows; after other digit runs only when it stands alone.
            let x = matches!(b.get(i), Some(b'X' | b'x'))
                && (matches!(i - start, 17 | 3) || !b.get(i + 1).is_some_and(|c| c.is_ascii_alphanumeric()));
            groups.push(Group { start, end: i, x });
            if x {
                i += 1;
                break;
            }
            if matches!(b.get(i), Some(b' ' | b'-')) && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                i += 1;
            } else {
                break;
            }
        }
        // Only a group that is itself part of a decimal is exempt: the fraction after a point
        // that opens the run, the integer before a point that closes it. The rest of the run
        // is still searched (`tel 13812345678 3.5`, `v1.2 110105194912310021`).
        let (lo, hi) = decimal_parts(b, &groups);
        let groups = &groups[lo..hi];
        let mut g = 0;
        while g < groups.len() {
            match match_at(b, &groups[g..], edits) {
                Some(n) => {
                    hits += 1;
                    g += n;
                }
                None => g += 1,
            }
        }
    }
    hits
}

/// The groups of the run that are not part of a decimal number, as `lo..hi`: the first
/// group is dropped when it is a fraction (`3.13812345678`), the last when it is an integer
/// part (`13812345678.5`).
fn decimal_parts(b: &[u8], groups: &[Group]) -> (usize, usize) {
    let (Some(first), Some(last)) = (groups.first(), groups.last()) else {
        return (0, 0);
    };
    let before = first.start >= 2 && b[first.start - 1] == b'.' && b[first.start - 2].is_ascii_digit();
    let after =
        !last.x && b.get(last.end) == Some(&b'.') && b.get(last.end + 1).is_some_and(u8::is_ascii_digit);
    let lo = usize::from(before);
    let hi = groups.len() - usize::from(after);
    (lo, hi.max(lo))
}

/// Digits (and a trailing X) of consecutive groups.
fn chars_of(b: &[u8], gs: &[Group], with_x: bool) -> String {
    let mut s = String::with_capacity(20);
    for g in gs {
        s.extend(b[g.start..g.end].iter().map(|c| char::from(*c)));
    }
    if with_x && gs.last().is_some_and(|g| g.x) {
        s.push('X');
    }
    s
}

/// Byte range covering digits `from..to` (indices into the concatenated digits of `gs`).
fn digit_span(gs: &[Group], from: usize, to: usize) -> (usize, usize) {
    let mut idx = 0;
    let (mut start, mut end) = (0, 0);
    for g in gs {
        for pos in g.start..g.end {
            if idx == from {
                start = pos;
            }
            if idx + 1 == to {
                end = pos + 1;
            }
            idx += 1;
        }
    }
    (start, end)
}

/// Records that digits `from..to` of `used` are starred; returns the groups consumed.
fn star_digits(edits: &mut Vec<Edit>, used: &[Group], from: usize, to: usize) -> Option<usize> {
    let (start, end) = digit_span(used, from, to);
    let span_start = used.first().map_or(start, |g| g.start);
    let span_end = used.last().map_or(end, |g| g.end);
    edits.push(Edit {
        start,
        end,
        how: Replace::StarDigits,
        span_start,
        span_end,
    });
    Some(used.len())
}

/// Payment cards start with 2–6 (Mastercard 2-series, Amex/JCB, Visa, Mastercard,
/// UnionPay/Discover) or 9 (older domestic debit cards). Excluding 1, 7 and 8 keeps
/// millisecond timestamps (`17…`) and the like from being taken for cards.
fn is_card_prefix(d: &[u8]) -> bool {
    matches!(d.first(), Some(b'2'..=b'6' | b'9'))
}

fn is_mobile(d: &[u8]) -> bool {
    d.len() == 11 && d[0] == b'1' && (b'3'..=b'9').contains(&d[1])
}

/// Tries the patterns at the first group of `gs`; pushes the edit and returns the number of
/// groups consumed.
fn match_at(b: &[u8], gs: &[Group], edits: &mut Vec<Edit>) -> Option<usize> {
    let lens: Vec<usize> = gs.iter().take(5).map(Group::len).collect();
    let g0 = gs[0];
    let digits0 = &b[g0.start..g0.end];

    // Resident ID: compact, 6-8-4 or 6-4-4-4.
    // (groups used, whether the last group's X is the check character)
    let no_x = |gs: &[Group]| gs.iter().all(|g| !g.x);
    let id_shape = match lens.as_slice() {
        [18, ..] => Some((1, false)),
        [17, ..] if g0.x => Some((1, true)),
        [6, 8, 4, ..] if no_x(&gs[..2]) => Some((3, false)),
        [6, 8, 3, ..] if no_x(&gs[..2]) && gs[2].x => Some((3, true)),
        [6, 4, 4, 4, ..] if no_x(&gs[..3]) => Some((4, false)),
        [6, 4, 4, 3, ..] if no_x(&gs[..3]) && gs[3].x => Some((4, true)),
        _ => None,
    };
    if let Some((n, with_x)) = id_shape {
        let used = &gs[..n];
        if resident_id_valid(&chars_of(b, used, with_x)) {
            // Keep the first 3 digits and the check character; star digits 4–17.
            return star_digits(edits, used, 3, 17);
        }
    }

    // Mobile: compact 11, compact 86 + 11, or 3-4-4.
    if is_mobile(digits0) {
        return star_digits(edits, &gs[..1], 3, 7);
    }
    if g0.len() == 13 && digits0.starts_with(b"86") && is_mobile(&digits0[2..]) {
        return star_digits(edits, &gs[..1], 5, 9);
    }
    if let [3, 4, 4, ..] = lens.as_slice() {
        if !gs[0].x && !gs[1].x && is_mobile(chars_of(b, &gs[..3], false).as_bytes()) {
            return star_digits(edits, &gs[..3], 3, 7);
        }
    }

    // Bank card: compact 13–19, or groups of 4 with a last group of 1–4.
    if !is_card_prefix(digits0) {
        return None;
    }
    if (13..=19).contains(&g0.len()) && luhn_bytes(digits0.iter().copied()) {
        let n = g0.len();
        return star_digits(edits, &gs[..1], 6, n - 4);
    }
    let fours = gs.iter().take_while(|g| g.len() == 4 && !g.x).count();
    let max_groups = (fours + 1).min(gs.len());
    for n in (2..=max_groups).rev() {
        let used = &gs[..n];
        let total: usize = used.iter().map(Group::len).sum();
        if (13..=19).contains(&total) && used.iter().all(|g| (1..=4).contains(&g.len())) {
            let digits = chars_of(b, used, false);
            if luhn_bytes(digits.bytes()) {
                return star_digits(edits, used, 6, total - 4);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends the GB 11643 check character to 17 digits.
    fn with_check(id17: &str) -> String {
        let sum: u32 = id17
            .bytes()
            .zip(ID_WEIGHTS)
            .map(|(c, w)| u32::from(c - b'0') * w)
            .sum();
        format!("{id17}{}", char::from(ID_CHECK[(sum % 11) as usize]))
    }

    /// Appends the Luhn check digit.
    fn with_luhn(prefix: &str) -> String {
        (0..10)
            .map(|d| format!("{prefix}{d}"))
            .find(|s| luhn_valid(s))
            .unwrap()
    }

    fn wrong_check(id: &str) -> String {
        let last = id.as_bytes()[17];
        let other = ID_CHECK
            .iter()
            .find(|c| **c != last.to_ascii_uppercase())
            .unwrap();
        format!("{}{}", &id[..17], char::from(*other))
    }

    /// Issue 11, item 2: a number next to a decimal is still an identifier; only a number that
    /// is itself part of a decimal is exempt.
    #[test]
    fn identifiers_next_to_a_decimal_are_masked() {
        for (text, want) in [
            ("tel 13800138000 3.5", "tel 138****8000 3.5"),
            ("3.5 13800138000", "3.5 138****8000"),
            ("联系13800138000-2.5米处", "联系138****8000-2.5米处"),
            ("v1.2 11010519491231002X", "v1.2 110**************X"),
            ("1.5 13800138000 2.5", "1.5 138****8000 2.5"),
        ] {
            assert_eq!(scrub(text), want, "{text}");
        }
        // The integer or fraction part of a decimal is not an identifier.
        for text in [
            "13800138000.50",
            "3.13800138000",
            "0.5 1.13800138000",
            "13800138000.5 x",
        ] {
            assert_eq!(scrub(text), text, "{text}");
        }
    }

    #[test]
    fn resident_id_check_digit() {
        assert!(resident_id_valid("11010519491231002X"));
        assert_eq!(with_check("11010519491231002"), "11010519491231002X");
        for id17 in [
            "44030019900307123",
            "31010119851120001",
            "51010720000229444",
            "65010220991231999",
        ] {
            let id = with_check(id17);
            assert!(resident_id_valid(&id), "{id}");
            assert!(!resident_id_valid(&wrong_check(&id)), "{id}");
        }
        assert!(!resident_id_valid("11010519491231002"));
        assert!(!resident_id_valid("11010519491231002X1"));
        assert!(!resident_id_valid("1101051949123100２X"));
        assert!(!resident_id_valid(""));
        // Check digit right, but the birth date does not exist or is implausible.
        for id17 in [
            "11010519490230002",
            "11010518991231002",
            "11010521001231002",
            "11010519491200002",
        ] {
            assert!(!resident_id_valid(&with_check(id17)), "{id17}");
        }
        // Leading zero.
        assert!(!resident_id_valid(&with_check("01010519491231002")));
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("5500005555555559"));
        assert!(luhn_valid("378282246310005"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("0"));
        assert!(!luhn_valid("41111111111111a1"));
        let unionpay = with_luhn("622202123456789012");
        assert_eq!(unionpay.len(), 19);
        assert!(luhn_valid(&unionpay));
    }

    #[test]
    fn fast_path_borrows() {
        for s in [
            "",
            "hydrant 17, Huangpu district",
            "上海市黄浦区中山东一路12号",
            "2024-01-01 12:30:00",
            "order 1234567890",
            "1234-5678-90",
        ] {
            let (out, hits) = scrub_counted(s);
            assert!(matches!(out, Cow::Borrowed(_)), "{s}");
            assert_eq!(hits, 0);
        }
        // The word-at-a-time pre-check agrees with the plain byte loop.
        let reference = |b: &[u8]| {
            let (mut run, mut after_sep) = (0, false);
            b.iter().any(|&c| step(c, &mut run, &mut after_sep))
        };
        let alphabet = b"0123456789 -@a/:.\x7f\xc3\xa9";
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in 0..60 {
            for _ in 0..300 {
                let v: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // Mostly digits and separators, so that runs form.
                        alphabet[(x % if x & 0x100 == 0 { 12 } else { alphabet.len() as u64 }) as usize]
                    })
                    .collect();
                assert_eq!(may_contain_identifier(&v), reference(&v), "{v:?}");
            }
        }
        for b in 0..=255u8 {
            let mut v = vec![b'x'; 9];
            v[3] = b;
            assert_eq!(may_contain_identifier(&v), b == b'@', "{b}");
        }
        assert!(may_contain_identifier(b"abcdefgh138123456789"));
        assert!(may_contain_identifier(b"abcdefg 13812345678 tail"));
        assert!(!may_contain_identifier(b"1234567890"));
        assert!(may_contain_identifier(b"12345678901"));
        assert!(may_contain_identifier(b"138 1234 5678"));
        assert!(!may_contain_identifier(b"138  1234 5678"));
        assert!(may_contain_identifier(b"x@y"));
    }

    #[test]
    fn slow_path_without_findings_still_borrows() {
        for s in [
            "id 12345678901234567890123",
            "a@b",
            "user@localhost",
            "128 1234 5679 000",
        ] {
            let (out, hits) = scrub_counted(s);
            assert_eq!(hits, 0, "{s}");
            assert!(matches!(out, Cow::Borrowed(_)), "{s}");
        }
    }

    #[test]
    fn phones() {
        assert_eq!(scrub("请联系13812345678处理"), "请联系138****5678处理");
        assert_eq!(scrub("13812345678"), "138****5678");
        assert_eq!(scrub("tel:19912345678."), "tel:199****5678.");
        assert_eq!(scrub("138-1234-5678"), "138-****-5678");
        assert_eq!(scrub("电话 138 1234 5678 谢谢"), "电话 138 **** 5678 谢谢");
        assert_eq!(scrub("+86 13812345678"), "+86 138****5678");
        assert_eq!(scrub("+86-138-1234-5678"), "+86-138-****-5678");
        assert_eq!(scrub("8613812345678"), "86138****5678");
        assert_eq!(scrub("+8613812345678"), "+86138****5678");
        assert_eq!(scrub_counted("13812345678、13987654321").1, 2);
        assert_eq!(scrub("13812345678 13987654321"), "138****5678 139****4321");
        assert_eq!(scrub("13812345678/15912345678"), "138****5678/159****5678");
    }

    #[test]
    fn digits_inside_longer_runs_are_not_phones() {
        for s in [
            "订单号013812345678",
            "订单号138123456789",
            "流水 20240313812345678901",
            "金额13812345678.50元",
            "ratio 0.13812345678",
            "12812345678", // second digit 2: not a mobile prefix
            "10812345678",
        ] {
            assert_eq!(scrub(s), s, "{s}");
        }
    }

    #[test]
    fn resident_ids() {
        assert_eq!(
            scrub("身份证号11010519491231002X。"),
            "身份证号110**************X。"
        );
        assert_eq!(scrub("11010519491231002x"), "110**************x");
        assert_eq!(scrub("ID:11010519491231002Xabc"), "ID:110**************Xabc");
        let id = with_check("44030019900307123");
        let (out, hits) = scrub_counted(&id);
        assert_eq!(hits, 1);
        assert_eq!(out, format!("440**************{}", &id[17..]));
        assert!(!out.contains("19900307"));
        assert_eq!(scrub("110105 19491231 002X"), "110*** ******** ***X");
        assert_eq!(scrub("110105-1949-1231-002X"), "110***-****-****-***X");
        // A wrong check digit is not an ID (and, not being Luhn-valid, not a card either).
        let bad = wrong_check("11010519491231002X");
        let bad = if luhn_valid(&bad) {
            wrong_check(&format!("{}1", &bad[..17]))
        } else {
            bad
        };
        assert!(!resident_id_valid(&bad) && !luhn_valid(&bad));
        assert_eq!(scrub(&bad), bad);
    }

    #[test]
    fn cards() {
        assert_eq!(scrub("card 4111111111111111 ok"), "card 411111******1111 ok");
        assert_eq!(scrub("4111 1111 1111 1111"), "4111 11** **** 1111");
        assert_eq!(scrub("4111-1111-1111-1111"), "4111-11**-****-1111");
        assert_eq!(scrub("4111111111111112"), "4111111111111112");
        let unionpay = with_luhn("622202123456789012");
        assert_eq!(
            scrub(&format!("银行卡{unionpay}")),
            format!("银行卡622202*********{}", &unionpay[15..])
        );
        let spaced = format!(
            "{} {} {} {} {}",
            &unionpay[..4],
            &unionpay[4..8],
            &unionpay[8..12],
            &unionpay[12..16],
            &unionpay[16..]
        );
        let (out, hits) = scrub_counted(&spaced);
        assert_eq!(hits, 1);
        assert_eq!(
            out,
            format!("6222 02** **** ***{} {}", &unionpay[15..16], &unionpay[16..])
        );
        let thirteen = with_luhn("422222222222");
        assert_eq!(scrub(&thirteen), format!("422222***{}", &thirteen[9..]));
        // Millisecond timestamps are not cards, even when Luhn-valid.
        let ts = with_luhn("171000000000");
        assert_eq!(scrub(&ts), ts);
        // A card followed by an extra group: the card is masked, the extra group stays.
        assert_eq!(scrub("4111 1111 1111 1111 2222"), "4111 11** **** 1111 2222");
    }

    #[test]
    fn emails() {
        assert_eq!(scrub("zhang.san@example.com"), "z***@example.com");
        assert_eq!(
            scrub("联系邮箱：li@mail.example.cn。"),
            "联系邮箱：l***@mail.example.cn。"
        );
        assert_eq!(scrub("a@b.co"), "a***@b.co");
        assert_eq!(scrub("13812345678@163.com"), "1***@163.com");
        assert_eq!(scrub("x <.dot.first@example.org>"), "x <.d***@example.org>");
        assert_eq!(scrub_counted("a@x.org, b@y.org").1, 2);
        assert_eq!(scrub("a@b.com@c.com"), "a***@b***@c.com");
        assert_eq!(scrub("a@0.XX@X.Xa"), "a***@0***@X.Xa");
        for s in [
            "@example.com",
            "me@",
            "me@localhost",
            "me@-x.com",
            "me@x.1",
            "100@2",
        ] {
            assert_eq!(scrub(s), s, "{s}");
        }
    }

    #[test]
    fn mixed_and_counted() {
        let id = "11010519491231002X";
        let text = format!("姓名张三，电话13812345678，身份证{id}，卡4111111111111111，邮箱zs@example.com");
        let (out, hits) = scrub_counted(&text);
        assert_eq!(hits, 4);
        assert_eq!(
            out,
            "姓名张三，电话138****5678，身份证110**************X，卡411111******1111，邮箱z***@example.com"
        );
        // Idempotent.
        assert_eq!(scrub(&out), out);
    }

    #[test]
    fn no_panics_on_edge_inputs() {
        for s in [
            "1",
            "X",
            "x@",
            "@",
            "@@@",
            "1-",
            "-1",
            "1 ",
            " 1",
            "12345678901X",
            "1234567890123456X",
            "123456 12345678 123X",
            "1-2-3-4-5-6-7-8-9-0-1-2",
            "😀13812345678😀",
            "1234 1234 1234 1",
        ] {
            let _ = scrub_counted(s);
        }
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        /// Text around an identifier: no ASCII digits, no '.', no '@' (a neighbouring digit or
        /// decimal point legitimately changes what the identifier is).
        fn context() -> impl Strategy<Value = String> {
            proptest::string::string_regex("[a-zA-Z 请联系处理，。:\\-_（）]{0,12}").unwrap()
        }

        fn id17() -> impl Strategy<Value = String> {
            (
                1u32..=9,
                0u32..100_000,
                1900u32..=2099,
                1u32..=12,
                1u32..=28,
                0u32..1000,
            )
                .prop_map(|(a, region, y, m, d, seq)| format!("{a}{region:05}{y:04}{m:02}{d:02}{seq:03}"))
        }

        proptest! {
            #[test]
            fn never_panics_and_is_idempotent(s in "[0-9 \\-xX@.a-z张]{0,60}") {
                let (once, hits) = scrub_counted(&s);
                let (twice, again) = scrub_counted(&once);
                prop_assert_eq!(&twice, &once);
                prop_assert_eq!(again, 0);
                prop_assert_eq!(hits == 0, matches!(once, Cow::Borrowed(_)));
            }

            #[test]
            fn mobiles_are_masked(
                pre in context(), post in context(), p in 3u8..=9, rest in 0u64..1_000_000_000,
            ) {
                let phone = format!("1{p}{rest:09}");
                let text = format!("{pre}{phone}{post}");
                let (out, hits) = scrub_counted(&text);
                prop_assert!(!out.contains(&phone), "{} → {}", text, out);
                let masked = format!("{}****{}", &phone[..3], &phone[7..]);
                prop_assert!(out.contains(&masked), "{} → {}", text, out);
                prop_assert!(hits >= 1);
            }

            #[test]
            fn resident_ids_are_masked(
                pre in context(), post in context(), id in id17(), lower in any::<bool>(),
            ) {
                let sum: u32 = id.bytes().zip(ID_WEIGHTS).map(|(c, w)| u32::from(c - b'0') * w).sum();
                let check = char::from(ID_CHECK[(sum % 11) as usize]);
                let check = if lower { check.to_ascii_lowercase() } else { check };
                let id = format!("{id}{check}");
                prop_assert!(resident_id_valid(&id));
                let text = format!("{pre}{id}{post}");
                let out = scrub(&text);
                prop_assert!(!out.contains(&id[3..17]), "{} → {}", text, out);
            }

            #[test]
            fn cards_are_masked(pre in context(), post in context(), body in "[2-69][0-9]{11,17}") {
                let card = (0..10).map(|d| format!("{body}{d}")).find(|c| luhn_valid(c)).unwrap();
                let text = format!("{pre}{card}{post}");
                let out = scrub(&text);
                prop_assert!(!out.contains(&card), "{} → {}", text, out);
                // 18 digits may form a resident ID, 13 an 86-prefixed mobile: masked more.
                prop_assert!(out.matches('*').count() >= card.len() - 10, "{} → {}", text, out);
            }

            #[test]
            fn emails_are_masked(
                pre in context(), local in "[a-z0-9._]{1,10}", domain in "[a-z0-9]{1,8}\\.(com|cn|org)",
            ) {
                let local = local.trim_start_matches('.');
                prop_assume!(!local.is_empty());
                let email = format!("{local}@{domain}");
                let text = format!("{pre}{email} ");
                let out = scrub(&text);
                prop_assert!(out.contains(&format!("***@{domain}")), "{} → {}", text, out);
                prop_assert!(local.len() == 1 || !out.contains(&email));
            }
        }
    }
}
