//! RFC 4180 CSV rows over one contiguous slice, and CSV cell output.
//!
//! Strict: a quote inside an unquoted cell, text after a closing quote, a bare CR and an
//! unterminated quoted cell are errors. Rows end with LF or CRLF (or the end of the input).
//! Hand-written rather than csv-core because csv-core accepts all of these leniently, and the
//! masker must refuse what it cannot classify.

use super::json::{PErr, PResult};

/// One cell: its decoded text is `buf[start..end]` when `in_buf`, else `input[start..end]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cell {
    /// The cell was quoted (it may hold commas, quotes, CR or LF).
    pub quoted: bool,
    pub in_buf: bool,
    pub start: usize,
    pub end: usize,
}

/// A scanned row.
pub(super) enum Row {
    /// An empty line (skipped); the index after it.
    Blank(usize),
    /// A row of cells; the index after its terminator.
    Cells(usize),
}

/// Scans the row starting at `i`. Cells go to `cells`; cells with doubled quotes are unescaped
/// into `buf`. `fin`: the slice ends the input, so its end ends the row.
pub(super) fn row(d: &[u8], i: usize, fin: bool, cells: &mut Vec<Cell>, buf: &mut Vec<u8>) -> PResult<Row> {
    cells.clear();
    buf.clear();
    // Blank lines.
    match d.get(i) {
        Some(b'\n') => return Ok(Row::Blank(i + 1)),
        Some(b'\r') => {
            return match d.get(i + 1) {
                Some(b'\n') => Ok(Row::Blank(i + 2)),
                Some(_) => Err(PErr::Bad(i, "bare CR")),
                None if fin => Ok(Row::Blank(i + 1)),
                None => Err(PErr::More),
            }
        }
        _ => {}
    }
    let mut j = i;
    loop {
        // One cell starting at j.
        if d.get(j) == Some(&b'"') {
            let start = j + 1;
            let mut k = start;
            let mut doubled = false;
            loop {
                let Some(q) = memchr::memchr(b'"', &d[k..]) else {
                    return Err(if fin {
                        PErr::Bad(start - 1, "unterminated quoted cell")
                    } else {
                        PErr::More
                    });
                };
                let q = k + q;
                match d.get(q + 1) {
                    Some(b'"') => {
                        doubled = true;
                        k = q + 2;
                    }
                    None if !fin => return Err(PErr::More),
                    _ => {
                        if doubled {
                            let bstart = buf.len();
                            let mut s = start;
                            while let Some(p) = memchr::memchr(b'"', &d[s..q]) {
                                buf.extend_from_slice(&d[s..s + p + 1]);
                                s += p + 2;
                            }
                            buf.extend_from_slice(&d[s..q]);
                            cells.push(Cell {
                                quoted: true,
                                in_buf: true,
                                start: bstart,
                                end: buf.len(),
                            });
                        } else {
                            cells.push(Cell {
                                quoted: true,
                                in_buf: false,
                                start,
                                end: q,
                            });
                        }
                        j = q + 1;
                        break;
                    }
                }
            }
            match d.get(j) {
                Some(b',' | b'\n' | b'\r') | None => {}
                Some(_) => return Err(PErr::Bad(j, "text after a closing quote")),
            }
        } else {
            let start = j;
            j = find_special(d, j);
            if d.get(j) == Some(&b'"') {
                return Err(PErr::Bad(j, "quote inside an unquoted cell"));
            }
            cells.push(Cell {
                quoted: false,
                in_buf: false,
                start,
                end: j,
            });
        }
        // After the cell.
        match d.get(j) {
            Some(b',') => j += 1,
            Some(b'\n') => return Ok(Row::Cells(j + 1)),
            Some(b'\r') => match d.get(j + 1) {
                Some(b'\n') => return Ok(Row::Cells(j + 2)),
                Some(_) => return Err(PErr::Bad(j, "bare CR")),
                None if fin => return Ok(Row::Cells(j + 1)),
                None => return Err(PErr::More),
            },
            Some(_) => return Err(PErr::Bad(j, "invalid CSV")),
            None if fin => return Ok(Row::Cells(j)),
            None => return Err(PErr::More),
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

#[inline]
fn has_byte(w: u64, b: u8) -> u64 {
    let x = w ^ (ONES * b as u64);
    x.wrapping_sub(ONES) & !x
}

/// Index of the first `,`, `"`, CR or LF at or after `i`, or `d.len()`. Eight bytes at a time
/// (SWAR): the lowest flagged byte of each test is exact.
#[inline]
pub(super) fn find_special(d: &[u8], mut i: usize) -> usize {
    while i + 8 <= d.len() {
        let Ok(a) = <[u8; 8]>::try_from(&d[i..i + 8]) else {
            break;
        };
        let w = u64::from_le_bytes(a);
        let m = (has_byte(w, b',') | has_byte(w, b'"') | has_byte(w, b'\n') | has_byte(w, b'\r')) & HIGH;
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < d.len() && !matches!(d[i], b',' | b'\n' | b'\r' | b'"') {
        i += 1;
    }
    i
}

/// Appends one CSV cell, quoted when it holds a comma, quote, CR or LF (or when `force`).
#[inline]
pub(super) fn write_cell(text: &[u8], force: bool, out: &mut Vec<u8>) {
    if !force && find_special(text, 0) == text.len() {
        out.extend_from_slice(text);
        return;
    }
    out.push(b'"');
    let mut s = 0;
    while let Some(p) = memchr::memchr(b'"', &text[s..]) {
        out.extend_from_slice(&text[s..s + p + 1]);
        out.push(b'"');
        s += p + 1;
    }
    out.extend_from_slice(&text[s..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(d: &[u8], fin: bool) -> Result<Vec<String>, PErr> {
        let mut c = Vec::new();
        let mut b = Vec::new();
        match row(d, 0, fin, &mut c, &mut b)? {
            Row::Blank(_) => Ok(vec![]),
            Row::Cells(_) => Ok(c
                .iter()
                .map(|c| {
                    let s = if c.in_buf {
                        &b[c.start..c.end]
                    } else {
                        &d[c.start..c.end]
                    };
                    String::from_utf8(s.to_vec()).unwrap()
                })
                .collect()),
        }
    }

    #[test]
    fn rows() {
        assert_eq!(cells(b"a,b,c\n", false).unwrap(), ["a", "b", "c"]);
        assert_eq!(cells(b"a,,\r\n", false).unwrap(), ["a", "", ""]);
        assert_eq!(
            cells(b"\"a,\"\"b\"\"\n\",x\n", false).unwrap(),
            ["a,\"b\"\n", "x"]
        );
        assert_eq!(cells(b"\"\",x", true).unwrap(), ["", "x"]);
        assert_eq!(cells(b"a,b", false), Err(PErr::More));
        assert_eq!(cells(b"\"a", false), Err(PErr::More));
        assert_eq!(cells(b"\"a\"", false), Err(PErr::More));
        assert!(matches!(cells(b"\"a", true), Err(PErr::Bad(..))));
        assert!(matches!(cells(b"a\"b\n", true), Err(PErr::Bad(..))));
        assert!(matches!(cells(b"\"a\"b\n", true), Err(PErr::Bad(..))));
        assert!(matches!(cells(b"a\rb\n", true), Err(PErr::Bad(..))));
    }

    #[test]
    fn cells_out() {
        let mut o = Vec::new();
        write_cell(b"plain", false, &mut o);
        o.push(b'|');
        write_cell(b"a,\"b\"", false, &mut o);
        o.push(b'|');
        write_cell(b"", true, &mut o);
        assert_eq!(o, b"plain|\"a,\"\"b\"\"\"|\"\"");
    }
}
