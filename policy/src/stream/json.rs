//! JSON primitives over one contiguous slice: scanning and validation of tokens and values,
//! escape decoding, canonical string encoding and compact re-encoding of nested values.
//!
//! Every scanner either completes, reports that the slice ended too early ([`PErr::More`]: the
//! driver carries the unit over to the next chunk and retries), or reports invalid input.

use std::borrow::Cow;

/// Deepest nesting accepted inside one record (the record object itself is depth 1).
pub(super) const MAX_DEPTH: usize = 128;

/// Why a scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PErr {
    /// The slice ended inside the unit.
    More,
    /// Invalid input at this index of the slice.
    Bad(usize, &'static str),
}

pub(super) type PResult<T> = Result<T, PErr>;

/// The shape of one scanned value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum VKind {
    /// A string; the range is its body (without quotes). `esc`: it holds escapes.
    Str { esc: bool },
    /// A number (the range is its text).
    Num,
    /// `true`.
    True,
    /// `false`.
    False,
    /// `null`.
    Null,
    /// An object or array (the range is its raw, validated text).
    Composite,
}

#[inline]
pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[inline]
pub(super) fn skip_ws(d: &[u8], mut i: usize) -> usize {
    while i < d.len() && is_ws(d[i]) {
        i += 1;
    }
    i
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Index of the first `"`, `\` or control byte at or after `i`, or `d.len()`.
/// Eight bytes at a time (SWAR): the lowest flagged byte of each test is exact.
#[inline]
pub(super) fn find_special(d: &[u8], mut i: usize) -> usize {
    while i + 8 <= d.len() {
        let Ok(a) = <[u8; 8]>::try_from(&d[i..i + 8]) else {
            break;
        };
        let w = u64::from_le_bytes(a);
        let q = w ^ (ONES * b'"' as u64);
        let bs = w ^ (ONES * b'\\' as u64);
        let m = ((q.wrapping_sub(ONES) & !q)
            | (bs.wrapping_sub(ONES) & !bs)
            | (w.wrapping_sub(ONES * 0x20) & !w))
            & HIGH;
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < d.len() {
        let b = d[i];
        if b == b'"' || b == b'\\' || b < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

#[inline]
fn hex_val(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some((b - b'0') as u32),
        b'a'..=b'f' => Some((b - b'a' + 10) as u32),
        b'A'..=b'F' => Some((b - b'A' + 10) as u32),
        _ => None,
    }
}

fn hex4(d: &[u8], i: usize) -> PResult<u32> {
    let mut v = 0;
    for k in 0..4 {
        let b = *d.get(i + k).ok_or(PErr::More)?;
        v = v * 16 + hex_val(b).ok_or(PErr::Bad(i + k, "invalid \\u escape"))?;
    }
    Ok(v)
}

/// Validates the escape at `d[i] == b'\\'`; returns the index after it.
fn scan_escape(d: &[u8], i: usize) -> PResult<usize> {
    match *d.get(i + 1).ok_or(PErr::More)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(i + 2),
        b'u' => {
            let u = hex4(d, i + 2)?;
            if (0xD800..0xDC00).contains(&u) {
                if *d.get(i + 6).ok_or(PErr::More)? != b'\\' || *d.get(i + 7).ok_or(PErr::More)? != b'u' {
                    return Err(PErr::Bad(i, "lone surrogate in \\u escape"));
                }
                let lo = hex4(d, i + 8)?;
                if !(0xDC00..0xE000).contains(&lo) {
                    return Err(PErr::Bad(i, "lone surrogate in \\u escape"));
                }
                Ok(i + 12)
            } else if (0xDC00..0xE000).contains(&u) {
                Err(PErr::Bad(i, "lone surrogate in \\u escape"))
            } else {
                Ok(i + 6)
            }
        }
        _ => Err(PErr::Bad(i, "invalid escape")),
    }
}

/// Scans a string whose body starts at `i` (after the opening quote). Returns the index after
/// the closing quote and whether the body holds escapes. UTF-8 is validated by the caller.
#[inline(always)]
pub(super) fn scan_str(d: &[u8], mut i: usize) -> PResult<(usize, bool)> {
    let mut esc = false;
    loop {
        i = find_special(d, i);
        match d.get(i) {
            None => return Err(PErr::More),
            Some(b'"') => return Ok((i + 1, esc)),
            Some(b'\\') => {
                esc = true;
                i = scan_escape(d, i)?;
            }
            Some(_) => return Err(PErr::Bad(i, "control character in string")),
        }
    }
}

#[inline]
fn digits(d: &[u8], mut i: usize) -> usize {
    while i < d.len() && d[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// Scans a number starting at `i` (JSON grammar). The number must be followed by a byte of
/// the slice: at the slice end it may continue, so that is [`PErr::More`].
#[inline]
pub(super) fn scan_num(d: &[u8], i: usize) -> PResult<usize> {
    let mut j = i;
    if d.get(j) == Some(&b'-') {
        j += 1;
    }
    match d.get(j) {
        None => return Err(PErr::More),
        Some(b'0') => j += 1,
        Some(b'1'..=b'9') => j = digits(d, j + 1),
        Some(_) => return Err(PErr::Bad(j, "invalid number")),
    }
    match d.get(j) {
        None => return Err(PErr::More),
        Some(b'.') => {
            j += 1;
            match d.get(j) {
                None => return Err(PErr::More),
                Some(b) if b.is_ascii_digit() => j = digits(d, j),
                Some(_) => return Err(PErr::Bad(j, "invalid number")),
            }
        }
        Some(_) => {}
    }
    match d.get(j) {
        None => return Err(PErr::More),
        Some(b'e' | b'E') => {
            j += 1;
            if matches!(d.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            match d.get(j) {
                None => return Err(PErr::More),
                Some(b) if b.is_ascii_digit() => j = digits(d, j),
                Some(_) => return Err(PErr::Bad(j, "invalid number")),
            }
        }
        Some(_) => {}
    }
    if j == d.len() {
        return Err(PErr::More);
    }
    Ok(j)
}

/// Whether `s` is exactly one JSON number.
pub(super) fn is_number(s: &[u8]) -> bool {
    // Append a delimiter so that the scanner can see the end.
    let mut small = [b' '; 64];
    let mut big = Vec::new();
    let t: &[u8] = if s.len() < small.len() {
        small[..s.len()].copy_from_slice(s);
        &small[..=s.len()]
    } else {
        big.reserve(s.len() + 1);
        big.extend_from_slice(s);
        big.push(b' ');
        &big
    };
    scan_num(t, 0) == Ok(s.len())
}

fn scan_lit(d: &[u8], i: usize, lit: &'static [u8]) -> PResult<usize> {
    let avail = &d[i..d.len().min(i + lit.len())];
    if avail != &lit[..avail.len()] {
        return Err(PErr::Bad(i, "invalid literal"));
    }
    if avail.len() < lit.len() {
        return Err(PErr::More);
    }
    Ok(i + lit.len())
}

/// Scans one value starting at `i` (no leading whitespace). Returns its kind, the start and end
/// of its range (string: the body) and the index after it.
#[inline]
pub(super) fn scan_value(d: &[u8], i: usize, depth: usize) -> PResult<(VKind, usize, usize, usize)> {
    match *d.get(i).ok_or(PErr::More)? {
        b'"' => {
            let (end, esc) = scan_str(d, i + 1)?;
            Ok((VKind::Str { esc }, i + 1, end - 1, end))
        }
        b'-' | b'0'..=b'9' => {
            let end = scan_num(d, i)?;
            Ok((VKind::Num, i, end, end))
        }
        b'{' | b'[' => {
            let end = scan_composite(d, i, depth)?;
            Ok((VKind::Composite, i, end, end))
        }
        b't' => {
            let end = scan_lit(d, i, b"true")?;
            Ok((VKind::True, i, end, end))
        }
        b'f' => {
            let end = scan_lit(d, i, b"false")?;
            Ok((VKind::False, i, end, end))
        }
        b'n' => {
            let end = scan_lit(d, i, b"null")?;
            Ok((VKind::Null, i, end, end))
        }
        _ => Err(PErr::Bad(i, "expected a value")),
    }
}

#[inline]
fn byte_at(d: &[u8], i: usize) -> PResult<u8> {
    d.get(i).copied().ok_or(PErr::More)
}

/// Validates an object or array at `d[i]` nested at `depth`; returns the index after it.
pub(super) fn scan_composite(d: &[u8], i: usize, depth: usize) -> PResult<usize> {
    if depth >= MAX_DEPTH {
        return Err(PErr::Bad(i, "nesting too deep"));
    }
    let close = if d[i] == b'{' { b'}' } else { b']' };
    let mut j = skip_ws(d, i + 1);
    if byte_at(d, j)? == close {
        return Ok(j + 1);
    }
    loop {
        if close == b'}' {
            if byte_at(d, j)? != b'"' {
                return Err(PErr::Bad(j, "expected a member name"));
            }
            j = scan_str(d, j + 1)?.0;
            j = skip_ws(d, j);
            if byte_at(d, j)? != b':' {
                return Err(PErr::Bad(j, "expected `:`"));
            }
            j = skip_ws(d, j + 1);
        }
        j = scan_value(d, j, depth + 1)?.3;
        j = skip_ws(d, j);
        match byte_at(d, j)? {
            b',' => j = skip_ws(d, j + 1),
            b if b == close => return Ok(j + 1),
            _ => return Err(PErr::Bad(j, "expected `,` or the end of the object/array")),
        }
    }
}

/// Decodes a validated string body with escapes, appending UTF-8 bytes to `out`.
pub(super) fn decode_str(body: &[u8], out: &mut Vec<u8>) -> PResult<()> {
    let mut i = 0;
    while i < body.len() {
        let Some(k) = memchr::memchr(b'\\', &body[i..]) else {
            out.extend_from_slice(&body[i..]);
            break;
        };
        out.extend_from_slice(&body[i..i + k]);
        i += k;
        let c = *body.get(i + 1).ok_or(PErr::Bad(i, "invalid escape"))?;
        let simple = match c {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            i += 2;
            continue;
        }
        if c != b'u' {
            return Err(PErr::Bad(i, "invalid escape"));
        }
        let u = hex4(body, i + 2)?;
        let (cp, len) = if (0xD800..0xDC00).contains(&u) {
            let lo = hex4(body, i + 8)?;
            (
                0x10000 + ((u - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3ff),
                12,
            )
        } else {
            (u, 6)
        };
        let ch = char::from_u32(cp).ok_or(PErr::Bad(i, "lone surrogate in \\u escape"))?;
        let mut tmp = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
        i += len;
    }
    Ok(())
}

/// Appends `text` as a canonical JSON string (quotes, minimal escapes).
pub(super) fn write_str(text: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    let mut i = 0;
    loop {
        let j = find_special(text, i);
        out.extend_from_slice(&text[i..j]);
        let Some(&b) = text.get(j) else { break };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
        }
        i = j + 1;
    }
    out.push(b'"');
}

/// The string scrubber for `scan` fields: returns the rewritten text and the number of hits.
pub(super) type Scrub<'s> = &'s dyn Fn(&str) -> (Cow<'_, str>, u32);

/// Re-encodes a validated composite value at `d[i]` compactly into `out`: whitespace removed,
/// strings re-encoded canonically. With `scrub`, every string, member name and number at any
/// depth goes through the detectors; a number holding an identifier is written as the
/// scrubbed string, as a scanned number outside a composite is. Returns the index after the
/// value.
pub(super) fn compact(
    d: &[u8],
    i: usize,
    scrub: Option<Scrub<'_>>,
    hits: &mut u64,
    out: &mut Vec<u8>,
) -> PResult<usize> {
    let close = if d[i] == b'{' { b'}' } else { b']' };
    out.push(d[i]);
    let mut j = skip_ws(d, i + 1);
    if byte_at(d, j)? == close {
        out.push(close);
        return Ok(j + 1);
    }
    loop {
        if close == b'}' {
            let (end, esc) = scan_str(d, j + 1)?;
            string(&d[j + 1..end - 1], esc, scrub, hits, out)?;
            j = skip_ws(d, end);
            out.push(b':');
            j = skip_ws(d, j + 1);
        }
        let (kind, s, e, end) = scan_value(d, j, 0)?;
        match kind {
            VKind::Str { esc } => string(&d[s..e], esc, scrub, hits, out)?,
            VKind::Composite => {
                compact(d, j, scrub, hits, out)?;
            }
            VKind::Num if scrub.is_some() => number(&d[s..e], scrub, hits, out)?,
            _ => out.extend_from_slice(&d[s..e]),
        }
        j = skip_ws(d, end);
        match byte_at(d, j)? {
            b',' => {
                out.push(b',');
                j = skip_ws(d, j + 1);
            }
            b if b == close => {
                out.push(close);
                return Ok(j + 1);
            }
            _ => return Err(PErr::Bad(j, "expected `,` or the end of the object/array")),
        }
    }
}

/// Writes one number token; scrubbed when asked, and then a string if it held an identifier.
fn number(token: &[u8], scrub: Option<Scrub<'_>>, hits: &mut u64, out: &mut Vec<u8>) -> PResult<()> {
    if let Some(scrub) = scrub {
        let text = std::str::from_utf8(token).map_err(|_| PErr::Bad(0, "invalid UTF-8"))?;
        let (s, n) = scrub(text);
        *hits += u64::from(n);
        if let Cow::Owned(s) = s {
            write_str(s.as_bytes(), out);
            return Ok(());
        }
    }
    out.extend_from_slice(token);
    Ok(())
}

/// Writes one string (its validated raw body) as canonical JSON, scrubbed when asked.
fn string(
    body: &[u8],
    esc: bool,
    scrub: Option<Scrub<'_>>,
    hits: &mut u64,
    out: &mut Vec<u8>,
) -> PResult<()> {
    let decoded: Cow<'_, [u8]> = if esc {
        let mut v = Vec::with_capacity(body.len());
        decode_str(body, &mut v)?;
        Cow::Owned(v)
    } else {
        Cow::Borrowed(body)
    };
    if let Some(scrub) = scrub {
        let text = std::str::from_utf8(&decoded).map_err(|_| PErr::Bad(0, "invalid UTF-8"))?;
        let (s, n) = scrub(text);
        *hits += u64::from(n);
        if let Cow::Owned(s) = s {
            write_str(s.as_bytes(), out);
            return Ok(());
        }
    }
    if esc {
        write_str(&decoded, out);
    } else {
        out.push(b'"');
        out.extend_from_slice(body);
        out.push(b'"');
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_special_finds_first() {
        let s = b"abcdefghijklmnop\"qrs\\";
        assert_eq!(find_special(s, 0), 16);
        assert_eq!(find_special(b"abcdefg\x01hij\"", 0), 7);
        assert_eq!(find_special("αβγδεζηθικλ\\".as_bytes(), 0), 22);
        assert_eq!(find_special(b"abc", 0), 3);
        for n in 0..20 {
            let mut v = vec![b'x'; n];
            v.push(b'\\');
            v.extend_from_slice(b"\"\"");
            assert_eq!(find_special(&v, 0), n);
        }
    }

    #[test]
    fn numbers() {
        for ok in ["0 ", "-0 ", "12 ", "1.5 ", "-1.5e10 ", "1E+2 ", "1e-2 ", "0.0 "] {
            assert_eq!(scan_num(ok.as_bytes(), 0), Ok(ok.len() - 1), "{ok}");
        }
        for more in ["1", "-", "1.", "1e", "1e+", "12"] {
            assert_eq!(scan_num(more.as_bytes(), 0), Err(PErr::More), "{more}");
        }
        for bad in ["- ", "1. ", "1e ", ".5 ", "+1 ", "1.e3 "] {
            assert!(matches!(scan_num(bad.as_bytes(), 0), Err(PErr::Bad(..))), "{bad}");
        }
        // "01" scans as "0": the caller then rejects the "1".
        assert_eq!(scan_num(b"01 ", 0), Ok(1));
        assert!(is_number(b"-12.5e3"));
        assert!(!is_number(b"12a"));
        assert!(!is_number(b""));
    }

    #[test]
    fn strings_and_escapes() {
        let mut out = Vec::new();
        decode_str(br#"a\"b\\c\/\n\u00e9\ud83d\ude00"#, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a\"b\\c/\né😀");
        assert_eq!(scan_str(br#"ab\ud83d\ude00" "#, 0), Ok((15, true)));
        assert!(matches!(scan_str(br#"\ud83d" "#, 0), Err(PErr::Bad(..))));
        assert!(matches!(scan_str(br#"\ude00" "#, 0), Err(PErr::Bad(..))));
        assert!(matches!(scan_str(br#"\ud83d\u0041" "#, 0), Err(PErr::Bad(..))));
        assert_eq!(scan_str(br#"\ud83d"#, 0), Err(PErr::More));
        assert!(matches!(scan_str(b"a\tb\"", 0), Err(PErr::Bad(1, _))));
        let mut w = Vec::new();
        write_str("a\"\\\n\u{1}é".as_bytes(), &mut w);
        assert_eq!(w, r#""a\"\\\n\u0001é""#.as_bytes());
    }

    #[test]
    fn composites() {
        let d = br#"{ "a" : [1, 2 ,{"b":null}], "c\u0041":"x\"" } "#;
        assert_eq!(scan_composite(d, 0, 1), Ok(d.len() - 1));
        let mut out = Vec::new();
        let mut hits = 0;
        compact(d, 0, None, &mut hits, &mut out).unwrap();
        assert_eq!(out, br#"{"a":[1,2,{"b":null}],"cA":"x\""}"#);
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(
            scan_composite(deep.as_bytes(), 0, 1),
            Err(PErr::Bad(..))
        ));
        assert_eq!(scan_composite(b"[1,", 0, 1), Err(PErr::More));
        assert!(matches!(scan_composite(b"[1,]", 0, 1), Err(PErr::Bad(..))));
        assert!(matches!(scan_composite(b"{\"a\" 1}", 0, 1), Err(PErr::Bad(..))));
    }
}
