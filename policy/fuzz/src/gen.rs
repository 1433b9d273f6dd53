//! Structured bodies for `masker_structured`: records built with `arbitrary` from the plan's
//! field names, dropped names and identifier-shaped values, written in any input format with
//! varied whitespace, escapes, quoting, duplicates and nesting, sometimes with one byte changed.
//! Byte-level fuzzing mostly produces bodies the masker rejects early; these reach the
//! emitting paths (member-name hints, canonical copies, masks, the detector, CSV runs).

use crate::jsonref::J;
use crate::masker::{Case, HEADER};
use arbitrary::{Result, Unstructured};
use sluice_policy::stream::InputFormat;

/// Member names: every planned field, dropped ones, near misses and names needing escapes.
const KEYS: &[&str] = &[
    "id",
    "district",
    "lat",
    "lon",
    "last_inspection",
    "adopter_name",
    "adopter_mobile",
    "id_number",
    "age",
    "notes",
    "备注",
    "status",
    "street",
    "secret",
    "i",
    "ids",
    "notes_",
    "adopter_mobil",
    "a_rather_long_field_name_of_forty_bytes!",
    "",
    "k\"q",
    "back\\slash",
    "tab\there",
    "😀",
];

/// String values: identifiers the detector and masks act on, filter values, awkward text.
const STRS: &[&str] = &[
    "decommissioned",
    "in_service",
    "Huangpu",
    "Jing'an",
    "13812345678",
    "+86 138 1234 5678",
    "138-1234-5678",
    "110105194912310025",
    "11010519491231002X",
    "4111 1111 1111 1111",
    "4111111111111111",
    "zhang.san@example.com",
    "call 13812345678, then mail a@b.cn",
    "2024-03-15",
    "2024-03-15T08:30:00+08:00",
    "2024-02-30",
    "31.234567",
    "-121.4745",
    "37",
    "张三丰",
    "",
    " ",
    "\"quoted\"",
    "a,b",
    "line\nbreak",
    "cr\r\nlf",
    "\u{1}\u{1f}",
    "back\\slash",
    "é😀",
    "\u{feff}bom",
];

const NUMS: &[&str] = &[
    "0",
    "-0",
    "1",
    "37",
    "-3",
    "31.234567",
    "121.4745",
    "13812345678",
    "1e400",
    "-0.5E+3",
    "2.5e-3",
    "4111111111111111",
    "110105194912310025",
];

fn key(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1, 10)? {
        u.arbitrary()
    } else {
        Ok((*u.choose(KEYS)?).to_owned())
    }
}

fn string(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1, 6)? {
        u.arbitrary()
    } else {
        Ok((*u.choose(STRS)?).to_owned())
    }
}

fn value(u: &mut Unstructured<'_>, depth: u32) -> Result<J> {
    let n = if depth >= 3 { 5 } else { 7 };
    Ok(match u.choose_index(n)? {
        0 | 1 => J::Str(string(u)?),
        2 => J::Num((*u.choose(NUMS)?).to_owned()),
        3 => J::Bool(u.arbitrary()?),
        4 => J::Null,
        5 => {
            let k = u.int_in_range(0..=3)?;
            J::Arr((0..k).map(|_| value(u, depth + 1)).collect::<Result<_>>()?)
        }
        _ => {
            let k = u.int_in_range(0..=3)?;
            J::Obj(
                (0..k)
                    .map(|_| Ok((key(u)?, value(u, depth + 1)?)))
                    .collect::<Result<_>>()?,
            )
        }
    })
}

fn record(u: &mut Unstructured<'_>) -> Result<Vec<(String, J)>> {
    let k = u.int_in_range(0..=8)?;
    let mut r: Vec<(String, J)> = (0..k)
        .map(|_| Ok((key(u)?, value(u, 1)?)))
        .collect::<Result<_>>()?;
    // Usually a `status` for the row filter to read.
    if u.ratio(2, 3)? {
        let at = u.int_in_range(0..=r.len())?;
        let st = *u.choose(&["ok", "in_service", "decommissioned", "Decommissioned"])?;
        r.insert(at, ("status".to_owned(), J::Str(st.to_owned())));
    }
    Ok(r)
}

/// A JSON writer with arbitrary whitespace and escapes.
struct W<'u, 'a> {
    u: &'u mut Unstructured<'a>,
    out: Vec<u8>,
    /// NDJSON: no line break outside strings between tokens... except where allowed.
    no_newline: bool,
}

impl W<'_, '_> {
    fn ws(&mut self) -> Result<()> {
        if self.u.ratio(3, 4)? {
            return Ok(());
        }
        let choices: &[&str] = if self.no_newline {
            &[" ", "\t", "  "]
        } else {
            &[" ", "\n", "\t", "\r\n", "\n  "]
        };
        let w = *self.u.choose(choices)?;
        self.out.extend_from_slice(w.as_bytes());
        Ok(())
    }

    fn str(&mut self, s: &str) -> Result<()> {
        self.out.push(b'"');
        let escape_all = self.u.ratio(1, 8)?;
        for c in s.chars() {
            let esc = escape_all || self.u.ratio(1, 20)?;
            match c {
                '"' => self.out.extend_from_slice(b"\\\""),
                '\\' => self.out.extend_from_slice(b"\\\\"),
                c if (c as u32) < 0x20 || esc => {
                    let short = match c {
                        '\n' => Some("\\n"),
                        '\r' => Some("\\r"),
                        '\t' => Some("\\t"),
                        '\u{8}' => Some("\\b"),
                        '\u{c}' => Some("\\f"),
                        '/' => Some("\\/"),
                        _ => None,
                    };
                    match short {
                        Some(s) if self.u.arbitrary()? => self.out.extend_from_slice(s.as_bytes()),
                        _ => {
                            let upper: bool = self.u.arbitrary()?;
                            let mut buf = [0u16; 2];
                            for unit in c.encode_utf16(&mut buf) {
                                let t = if upper {
                                    format!("\\u{unit:04X}")
                                } else {
                                    format!("\\u{unit:04x}")
                                };
                                self.out.extend_from_slice(t.as_bytes());
                            }
                        }
                    }
                }
                c => {
                    let mut tmp = [0u8; 4];
                    self.out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
            }
        }
        self.out.push(b'"');
        Ok(())
    }

    fn value(&mut self, v: &J) -> Result<()> {
        match v {
            J::Null => self.out.extend_from_slice(b"null"),
            J::Bool(b) => self.out.extend_from_slice(if *b { b"true" } else { b"false" }),
            J::Num(t) => self.out.extend_from_slice(t.as_bytes()),
            J::Str(s) => self.str(s)?,
            J::Arr(a) => {
                self.out.push(b'[');
                for (n, x) in a.iter().enumerate() {
                    if n > 0 {
                        self.out.push(b',');
                    }
                    self.ws()?;
                    self.value(x)?;
                    self.ws()?;
                }
                self.out.push(b']');
            }
            J::Obj(o) => self.object(o)?,
        }
        Ok(())
    }

    fn object(&mut self, o: &[(String, J)]) -> Result<()> {
        self.out.push(b'{');
        self.ws()?;
        for (n, (k, x)) in o.iter().enumerate() {
            if n > 0 {
                self.out.push(b',');
                self.ws()?;
            }
            self.str(k)?;
            self.ws()?;
            self.out.push(b':');
            self.ws()?;
            self.value(x)?;
            self.ws()?;
        }
        self.out.push(b'}');
        Ok(())
    }

    fn records(&mut self, recs: &[Vec<(String, J)>]) -> Result<()> {
        self.out.push(b'[');
        self.ws()?;
        for (n, r) in recs.iter().enumerate() {
            if n > 0 {
                self.out.push(b',');
                self.ws()?;
            }
            self.object(r)?;
            self.ws()?;
        }
        self.out.push(b']');
        Ok(())
    }

    /// A member that is not on the path (skipped by the masker), maybe named like one.
    fn decoy(&mut self, names: &[&str]) -> Result<()> {
        let k = if self.u.ratio(1, 4)? {
            (*self.u.choose(names)?).to_owned()
        } else {
            key(self.u)?
        };
        let v = if self.u.arbitrary()? {
            J::Arr(vec![J::Obj(record(self.u)?)])
        } else {
            value(self.u, 1)?
        };
        self.str(&k)?;
        self.out.push(b':');
        self.ws()?;
        self.value(&v)?;
        self.out.push(b',');
        self.ws()
    }
}

/// A CSV cell, quoted when needed or by choice.
fn cell(u: &mut Unstructured<'_>, s: &str, out: &mut Vec<u8>) -> Result<()> {
    if s.contains([',', '"', '\r', '\n']) || u.ratio(1, 6)? {
        out.push(b'"');
        out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
    Ok(())
}

fn csv(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let cols = u.int_in_range(1..=7)?;
    let mut header: Vec<String> = (0..cols).map(|_| key(u)).collect::<Result<_>>()?;
    if u.ratio(2, 3)? {
        let at = u.choose_index(header.len())?;
        header[at] = "status".to_owned();
    }
    let crlf: bool = u.arbitrary()?;
    let nl: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let mut out = Vec::new();
    if u.ratio(1, 8)? {
        out.extend_from_slice("\u{feff}".as_bytes());
    }
    let rows = u.int_in_range(0..=6)?;
    let mut lines: Vec<Vec<String>> = vec![header];
    for _ in 0..rows {
        lines.push((0..cols).map(|_| string(u)).collect::<Result<_>>()?);
    }
    for (n, line) in lines.iter().enumerate() {
        for (k, c) in line.iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            cell(u, c, &mut out)?;
        }
        let last = n + 1 == lines.len();
        if !last || u.arbitrary()? {
            out.extend_from_slice(nl);
        }
        if !last && u.ratio(1, 10)? {
            out.extend_from_slice(nl);
        }
    }
    Ok(out)
}

/// Builds one case and body from fuzz bytes.
pub fn case(data: &[u8], csv_input: bool) -> Result<(Case, Vec<u8>)> {
    let mut u = Unstructured::new(data);
    let header: [u8; HEADER] = u.arbitrary()?;
    let (case, _) = Case::decode(&header, csv_input).ok_or(arbitrary::Error::NotEnoughData)?;
    let mut body = if case.input == InputFormat::Csv {
        csv(&mut u)?
    } else {
        let n = u.int_in_range(0..=6)?;
        let recs: Vec<Vec<(String, J)>> = (0..n).map(|_| record(&mut u)).collect::<Result<_>>()?;
        let ndjson = case.input == InputFormat::Ndjson;
        let mut w = W {
            u: &mut u,
            out: Vec::new(),
            no_newline: ndjson,
        };
        match &case.input {
            InputFormat::JsonArray => {
                w.ws()?;
                w.records(&recs)?;
                w.ws()?;
            }
            InputFormat::JsonAt(path) => {
                let names: Vec<&str> = path.iter().map(String::as_str).collect();
                w.out.push(b'{');
                w.ws()?;
                for (d, name) in names.iter().enumerate() {
                    for _ in 0..w.u.int_in_range(0..=2)? {
                        w.decoy(&names)?;
                    }
                    w.str(name)?;
                    w.out.push(b':');
                    w.ws()?;
                    if d + 1 == names.len() {
                        w.records(&recs)?;
                    } else {
                        w.out.push(b'{');
                        w.ws()?;
                    }
                }
                for _ in 0..names.len() {
                    if w.u.arbitrary()? {
                        w.out.push(b',');
                        let dk = (*w.u.choose(&names)?).to_owned();
                        w.str(&dk)?;
                        w.out.push(b':');
                        let v = value(w.u, 1)?;
                        w.value(&v)?;
                    }
                    w.ws()?;
                    w.out.push(b'}');
                }
                w.ws()?;
            }
            InputFormat::Ndjson => {
                for r in &recs {
                    if w.u.ratio(1, 8)? {
                        w.out.extend_from_slice(b"\n");
                    }
                    w.ws()?;
                    w.object(r)?;
                    w.ws()?;
                    let end: &[u8] = if w.u.arbitrary()? { b"\n" } else { b"\r\n" };
                    w.out.extend_from_slice(end);
                }
            }
            InputFormat::Csv | InputFormat::Rows => unreachable!(),
        }
        w.out
    };
    // Sometimes (never once the fuzz bytes ran out) one byte changed, inserted or removed: errors close to valid input.
    if !body.is_empty() && !u.is_empty() && u.ratio(1, 6)? {
        let at = u.choose_index(body.len())?;
        match u.choose_index(3)? {
            0 => body[at] = u.arbitrary()?,
            1 => body.insert(at, u.arbitrary()?),
            _ => {
                body.remove(at);
            }
        }
    }
    Ok((case, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masker::{check, plan, run_chunks};

    /// The generator mostly yields bodies the masker accepts with records, and every one
    /// passes the checks.
    #[test]
    fn generated_cases_pass_and_mostly_emit() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let (mut total, mut emitted) = (0, 0);
        for n in 0..600 {
            let data: Vec<u8> = (0..600)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect();
            let Ok((case, body)) = case(&data, n % 5 == 4) else {
                continue;
            };
            check(&case, &body);
            total += 1;
            let r = run_chunks(&plan(case.filter), &case, [&body[..]]);
            if r.res.is_ok_and(|s| s.records_out > 0) {
                emitted += 1;
            }
        }
        assert!(total > 500, "{total}");
        assert!(
            emitted * 3 > total,
            "only {emitted} of {total} cases emitted records"
        );
    }
}
