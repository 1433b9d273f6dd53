//! A small strict RFC 4180 reader used as the fuzz oracle, written from the masker's documented
//! CSV rules: rows end with LF, CRLF or the end of the input; empty lines are skipped; a quote
//! inside an unquoted cell, text after a closing quote, a bare CR and an unterminated quoted
//! cell are errors; every row must be valid UTF-8.

use crate::jsonref::Bad;

/// A cursor over a CSV document.
pub struct CsvReader<'a> {
    d: &'a [u8],
    i: usize,
}

impl<'a> CsvReader<'a> {
    /// A reader at the start of `d`.
    pub fn new(d: &'a [u8]) -> Self {
        Self { d, i: 0 }
    }

    fn bad(&self, msg: &'static str) -> Bad {
        Bad { at: self.i, msg }
    }

    /// The next non-empty row, `None` at the end of the input.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<Vec<String>, Bad>> {
        // Empty lines.
        loop {
            match self.d.get(self.i) {
                None => return None,
                Some(b'\n') => self.i += 1,
                Some(b'\r') => match self.d.get(self.i + 1) {
                    Some(b'\n') => self.i += 2,
                    None => {
                        self.i += 1;
                        return None;
                    }
                    Some(_) => return Some(Err(self.bad("bare CR"))),
                },
                Some(_) => break,
            }
        }
        Some(self.row())
    }

    fn row(&mut self) -> Result<Vec<String>, Bad> {
        let start = self.i;
        let mut cells: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut cell = Vec::new();
            if self.d.get(self.i) == Some(&b'"') {
                self.i += 1;
                loop {
                    match self.d.get(self.i) {
                        None => return Err(self.bad("unterminated quoted cell")),
                        Some(b'"') if self.d.get(self.i + 1) == Some(&b'"') => {
                            cell.push(b'"');
                            self.i += 2;
                        }
                        Some(b'"') => {
                            self.i += 1;
                            break;
                        }
                        Some(&b) => {
                            cell.push(b);
                            self.i += 1;
                        }
                    }
                }
                if !matches!(self.d.get(self.i), None | Some(b',' | b'\n' | b'\r')) {
                    return Err(self.bad("text after a closing quote"));
                }
            } else {
                while let Some(&b) = self.d.get(self.i) {
                    match b {
                        b',' | b'\n' | b'\r' => break,
                        b'"' => return Err(self.bad("quote inside an unquoted cell")),
                        _ => {
                            cell.push(b);
                            self.i += 1;
                        }
                    }
                }
            }
            cells.push(cell);
            match self.d.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'\n') => {
                    self.i += 1;
                    break;
                }
                Some(b'\r') => match self.d.get(self.i + 1) {
                    Some(b'\n') => {
                        self.i += 2;
                        break;
                    }
                    None => {
                        self.i += 1;
                        break;
                    }
                    Some(_) => return Err(self.bad("bare CR")),
                },
                None => break,
                Some(_) => unreachable!("a cell ends at a delimiter"),
            }
        }
        cells
            .into_iter()
            .map(String::from_utf8)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| Bad {
                at: start,
                msg: "invalid UTF-8 in the row",
            })
    }
}

/// Reads a whole document into rows.
pub fn read_all(d: &[u8]) -> Result<Vec<Vec<String>>, Bad> {
    let mut r = CsvReader::new(d);
    let mut rows = Vec::new();
    while let Some(row) = r.next() {
        rows.push(row?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_rejects() {
        let rows = read_all(b"\n\na,\"b,\"\"c\"\"\"\r\n\r\n,x\n\"\"\r").unwrap();
        assert_eq!(
            rows,
            vec![
                vec!["a".to_owned(), "b,\"c\"".to_owned()],
                vec![String::new(), "x".to_owned()],
                vec![String::new()],
            ]
        );
        for bad in [&b"a\"b"[..], b"\"a\"b", b"a\rb", b"\"abc", b"\xff,a"] {
            assert!(read_all(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
