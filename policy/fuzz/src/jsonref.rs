//! A small, strict, non-streaming JSON reader used as the fuzz oracle.
//!
//! Written from RFC 8259 and the masker's documented shape rules, independently of the masker's
//! own scanner. It keeps what the comparison needs and `serde_json::Value` loses: duplicate
//! member names and their order, and the exact text of numbers.

/// A JSON value: objects keep duplicate names in order, numbers keep their text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum J {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written.
    Num(String),
    /// A string, decoded.
    Str(String),
    /// An array.
    Arr(Vec<J>),
    /// An object, members in input order, duplicates kept.
    Obj(Vec<(String, J)>),
}

/// Why the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bad {
    /// Byte offset.
    pub at: usize,
    /// What was wrong.
    pub msg: &'static str,
}

/// Nesting bound of the reader itself (far above the masker's, only to bound recursion).
const LIMIT: usize = 1000;

/// A cursor over a document.
pub struct Reader<'a> {
    /// The document.
    pub d: &'a [u8],
    /// The current offset.
    pub i: usize,
    /// Deepest composite nesting seen from the document root (the root composite is 1).
    pub max_depth: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `d`.
    pub fn new(d: &'a [u8]) -> Self {
        Self {
            d,
            i: 0,
            max_depth: 0,
        }
    }

    /// An error at the current offset.
    pub fn bad(&self, msg: &'static str) -> Bad {
        Bad { at: self.i, msg }
    }

    /// The byte at the cursor.
    pub fn peek(&self) -> Option<u8> {
        self.d.get(self.i).copied()
    }

    /// Whether the cursor is at the end.
    pub fn at_end(&self) -> bool {
        self.i >= self.d.len()
    }

    /// Skips JSON whitespace.
    pub fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Consumes `b` or fails.
    pub fn expect(&mut self, b: u8, msg: &'static str) -> Result<(), Bad> {
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.bad(msg))
        }
    }

    /// Reads one value at the cursor (no surrounding whitespace). `depth`: the nesting depth
    /// of the enclosing composite (0 at the root).
    pub fn value(&mut self, depth: usize) -> Result<J, Bad> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(J::Str),
            Some(b't') => self.lit(b"true", J::Bool(true)),
            Some(b'f') => self.lit(b"false", J::Bool(false)),
            Some(b'n') => self.lit(b"null", J::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(J::Num),
            Some(_) => Err(self.bad("expected a value")),
            None => Err(self.bad("end of input")),
        }
    }

    fn enter(&mut self, depth: usize) -> Result<(), Bad> {
        self.max_depth = self.max_depth.max(depth);
        if depth > LIMIT {
            return Err(self.bad("too deep for the reference reader"));
        }
        Ok(())
    }

    /// Reads an object at `{`; `depth` is its own depth.
    pub fn object(&mut self, depth: usize) -> Result<J, Bad> {
        self.enter(depth)?;
        self.expect(b'{', "expected `{`")?;
        let mut members = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(J::Obj(members));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.bad("expected a member name"));
            }
            let k = self.string()?;
            self.ws();
            self.expect(b':', "expected `:`")?;
            self.ws();
            let v = self.value(depth)?;
            members.push((k, v));
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(J::Obj(members));
                }
                _ => return Err(self.bad("expected `,` or `}`")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<J, Bad> {
        self.enter(depth)?;
        self.expect(b'[', "expected `[`")?;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(J::Arr(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(J::Arr(items));
                }
                _ => return Err(self.bad("expected `,` or `]`")),
            }
        }
    }

    fn lit(&mut self, word: &'static [u8], v: J) -> Result<J, Bad> {
        if self.d[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.bad("invalid literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let s = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - s
    }

    fn number(&mut self) -> Result<String, Bad> {
        let s = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.bad("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(self.bad("invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.bad("invalid number"));
            }
        }
        Ok(String::from_utf8_lossy(&self.d[s..self.i]).into_owned())
    }

    fn hex4(&mut self) -> Result<u32, Bad> {
        let mut v = 0;
        for _ in 0..4 {
            let c = self.peek().ok_or(self.bad("end of input in \\u escape"))?;
            let h = (c as char).to_digit(16).ok_or(self.bad("invalid \\u escape"))?;
            v = v * 16 + h;
            self.i += 1;
        }
        Ok(v)
    }

    /// Reads a string at `"`, decoded.
    pub fn string(&mut self) -> Result<String, Bad> {
        self.expect(b'"', "expected `\"`")?;
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.bad("unterminated string"));
            };
            match b {
                b'"' => {
                    self.i += 1;
                    break;
                }
                b'\\' => {
                    self.i += 1;
                    let e = self.peek().ok_or(self.bad("unterminated escape"))?;
                    self.i += 1;
                    let simple = match e {
                        b'"' => Some('"'),
                        b'\\' => Some('\\'),
                        b'/' => Some('/'),
                        b'b' => Some('\u{8}'),
                        b'f' => Some('\u{c}'),
                        b'n' => Some('\n'),
                        b'r' => Some('\r'),
                        b't' => Some('\t'),
                        b'u' => None,
                        _ => return Err(self.bad("invalid escape")),
                    };
                    let c = match simple {
                        Some(c) => c,
                        None => {
                            let u = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&u) {
                                if !self.d[self.i..].starts_with(b"\\u") {
                                    return Err(self.bad("lone surrogate"));
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.bad("lone surrogate"));
                                }
                                0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                u
                            };
                            char::from_u32(cp).ok_or(self.bad("lone surrogate"))?
                        }
                    };
                    let mut tmp = [0u8; 4];
                    buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
                0..=0x1f => return Err(self.bad("control character in a string")),
                _ => {
                    buf.push(b);
                    self.i += 1;
                }
            }
        }
        String::from_utf8(buf).map_err(|_| self.bad("invalid UTF-8 in a string"))
    }
}

/// Whether `t` is exactly one JSON number.
pub fn is_number(t: &str) -> bool {
    let mut r = Reader::new(t.as_bytes());
    matches!(r.value(0), Ok(J::Num(_))) && r.at_end()
}

/// Reads a whole document holding one value (whitespace around it allowed).
pub fn parse_doc(d: &[u8]) -> Result<J, Bad> {
    let mut r = Reader::new(d);
    r.ws();
    let v = r.value(0)?;
    r.ws();
    if !r.at_end() {
        return Err(r.bad("trailing bytes"));
    }
    Ok(v)
}

/// Appends `s` as a canonical JSON string: quotes, `\"`, `\\`, the short escapes for
/// `\n \r \t \b \f`, `\u00xx` (lower-case hex) for other control characters, the rest as is.
pub fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The compact canonical text of a value (no whitespace, canonical strings, numbers as written).
pub fn compact(v: &J) -> String {
    let mut s = String::new();
    compact_into(v, &mut s);
    s
}

fn compact_into(v: &J, out: &mut String) {
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Num(t) => out.push_str(t),
        J::Str(s) => write_str(s, out),
        J::Arr(a) => {
            out.push('[');
            for (n, x) in a.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                compact_into(x, out);
            }
            out.push(']');
        }
        J::Obj(o) => {
            out.push('{');
            for (n, (k, x)) in o.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_str(k, out);
                out.push(':');
                compact_into(x, out);
            }
            out.push('}');
        }
    }
}

/// Every string leaf, member name and number text in a value.
pub fn leaves(v: &J, out: &mut Vec<String>) {
    match v {
        J::Null | J::Bool(_) => {}
        J::Num(t) | J::Str(t) => out.push(t.clone()),
        J::Arr(a) => a.iter().for_each(|x| leaves(x, out)),
        J::Obj(o) => o.iter().for_each(|(k, x)| {
            out.push(k.clone());
            leaves(x, out);
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_rejects() {
        let v = parse_doc(br#" {"a":1,"a":[true,null,-0.5e+3],"\u00e9\ud83d\ude00":"x\ny"} "#).unwrap();
        assert_eq!(
            v,
            J::Obj(vec![
                ("a".into(), J::Num("1".into())),
                (
                    "a".into(),
                    J::Arr(vec![J::Bool(true), J::Null, J::Num("-0.5e+3".into())])
                ),
                ("é😀".into(), J::Str("x\ny".into())),
            ])
        );
        assert_eq!(
            compact(&v),
            "{\"a\":1,\"a\":[true,null,-0.5e+3],\"é😀\":\"x\\ny\"}"
        );
        for bad in [
            &b"01"[..],
            b"1.",
            b"-",
            b"1e",
            b"\"\\ud800\"",
            b"\"\\udc00\"",
            b"\"\x01\"",
            b"\"\xff\"",
            b"[1,]",
            b"{\"a\" 1}",
            b"tru",
            b"[] []",
            b"\"\\x\"",
        ] {
            assert!(parse_doc(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(is_number("12.5e3") && !is_number("12.") && !is_number("1 "));
    }
}
