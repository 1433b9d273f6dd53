//! Row filters: the records a licence may see, e.g. `district = 'Huangpu'`.
//!
//! The grammar is deliberately small so that every connector can push it down safely:
//! `cond (and cond)*`, where `cond` is `field = lit`, `field != lit` or
//! `field in (lit, ...)`, and `lit` is a single-quoted string (`''` escapes a quote) or a number.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A parsed row filter: every condition must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFilter {
    /// The conditions, joined by `and`.
    pub conditions: Vec<Condition>,
}

/// One condition on one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The field name.
    pub field: String,
    /// The comparison.
    pub op: Op,
    /// The literals compared against (one for `=`/`!=`, one or more for `in`).
    pub values: Vec<String>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Equal to the literal.
    Eq,
    /// Not equal to the literal.
    Ne,
    /// Equal to one of the literals.
    In,
}

/// Why a row filter did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("row filter: {msg} at byte {at}")]
pub struct RowFilterError {
    /// What was wrong.
    pub msg: &'static str,
    /// Byte offset in the filter text.
    pub at: usize,
}

impl RowFilter {
    /// Parses a filter.
    ///
    /// ```
    /// use sluice_policy::rowfilter::RowFilter;
    /// let f = RowFilter::parse("district in ('Huangpu', 'Jing''an') and status = 'ok'").unwrap();
    /// assert_eq!(f.conditions.len(), 2);
    /// assert_eq!(f.conditions[0].values[1], "Jing'an");
    /// ```
    pub fn parse(text: &str) -> Result<Self, RowFilterError> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let mut conditions = vec![p.condition()?];
        loop {
            p.ws();
            if p.i == p.s.len() {
                break;
            }
            let w = p.ident()?;
            if !w.eq_ignore_ascii_case("and") {
                return Err(p.err("expected `and`"));
            }
            conditions.push(p.condition()?);
        }
        Ok(Self { conditions })
    }

    /// The fields the filter reads.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.conditions.iter().map(|c| c.field.as_str())
    }

    /// Evaluates the filter; `value_of` gives a field's value as text (string decoded, number as
    /// written), or `None` when the record lacks it. A missing field never matches.
    pub fn matches<'a>(&self, mut value_of: impl FnMut(&str) -> Option<&'a str>) -> bool {
        self.conditions.iter().all(|c| match value_of(&c.field) {
            None => false,
            Some(v) => match c.op {
                Op::Eq | Op::In => c.values.iter().any(|x| x == v),
                Op::Ne => c.values.iter().all(|x| x != v),
            },
        })
    }
}

impl fmt::Display for RowFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, c) in self.conditions.iter().enumerate() {
            if n > 0 {
                f.write_str(" and ")?;
            }
            let lit = |v: &String| format!("'{}'", v.replace('\'', "''"));
            match c.op {
                Op::Eq => write!(f, "{} = {}", c.field, lit(&c.values[0]))?,
                Op::Ne => write!(f, "{} != {}", c.field, lit(&c.values[0]))?,
                Op::In => {
                    let list: Vec<String> = c.values.iter().map(lit).collect();
                    write!(f, "{} in ({})", c.field, list.join(", "))?
                }
            }
        }
        Ok(())
    }
}

impl Serialize for RowFilter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RowFilter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        RowFilter::parse(&text).map_err(serde::de::Error::custom)
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, msg: &'static str) -> RowFilterError {
        RowFilterError { msg, at: self.i }
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn ident(&mut self) -> Result<String, RowFilterError> {
        self.ws();
        let start = self.i;
        while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_') {
            self.i += 1;
        }
        if start == self.i || self.s[start].is_ascii_digit() {
            return Err(RowFilterError {
                msg: "expected a field name",
                at: start,
            });
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn condition(&mut self) -> Result<Condition, RowFilterError> {
        let field = self.ident()?;
        self.ws();
        let op = if self.s[self.i..].starts_with(b"!=") {
            self.i += 2;
            Op::Ne
        } else if self.s[self.i..].starts_with(b"=") {
            self.i += 1;
            Op::Eq
        } else {
            let w = self.ident().map_err(|_| self.err("expected `=`, `!=` or `in`"))?;
            if !w.eq_ignore_ascii_case("in") {
                return Err(self.err("expected `=`, `!=` or `in`"));
            }
            Op::In
        };
        let values = if op == Op::In {
            self.ws();
            self.expect(b'(')?;
            let mut v = vec![self.literal()?];
            loop {
                self.ws();
                if self.eat(b',') {
                    v.push(self.literal()?);
                } else {
                    self.expect(b')')?;
                    break v;
                }
            }
        } else {
            vec![self.literal()?]
        };
        Ok(Condition { field, op, values })
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), RowFilterError> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.err(match b {
                b'(' => "expected `(`",
                _ => "expected `)` or `,`",
            }))
        }
    }

    fn literal(&mut self) -> Result<String, RowFilterError> {
        self.ws();
        if self.eat(b'\'') {
            let mut out = Vec::new();
            loop {
                match self.s.get(self.i) {
                    None => return Err(self.err("unterminated string")),
                    Some(b'\'') if self.s.get(self.i + 1) == Some(&b'\'') => {
                        out.push(b'\'');
                        self.i += 2;
                    }
                    Some(b'\'') => {
                        self.i += 1;
                        return String::from_utf8(out).map_err(|_| self.err("invalid UTF-8"));
                    }
                    Some(&c) => {
                        out.push(c);
                        self.i += 1;
                    }
                }
            }
        }
        let start = self.i;
        while self.i < self.s.len()
            && matches!(self.s[self.i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|_| self.err("invalid UTF-8"))?;
        if text.is_empty() || text.parse::<f64>().is_err() {
            return Err(RowFilterError {
                msg: "expected a quoted string or a number",
                at: start,
            });
        }
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let f = RowFilter::parse("district = 'Huangpu' and status != 'broken'").unwrap();
        let rec = |d: &'static str, s: &'static str| {
            move |k: &str| match k {
                "district" => Some(d),
                "status" => Some(s),
                _ => None,
            }
        };
        assert!(f.matches(rec("Huangpu", "ok")));
        assert!(!f.matches(rec("Xuhui", "ok")));
        assert!(!f.matches(rec("Huangpu", "broken")));
        assert!(!f.matches(|_| None));
    }

    #[test]
    fn round_trips_through_display() {
        let f = RowFilter::parse("a in ('x''y', 'z') and b = 3").unwrap();
        assert_eq!(RowFilter::parse(&f.to_string()).unwrap(), f);
    }

    #[test]
    fn rejects_bad_input_with_position() {
        assert_eq!(RowFilter::parse("district = ").unwrap_err().at, 11);
        assert!(RowFilter::parse("district = 'x' or a = 1").is_err());
        assert!(RowFilter::parse("1a = 1").is_err());
        assert!(RowFilter::parse("a in ('x'").is_err());
        assert!(RowFilter::parse("a = 'x").is_err());
        assert!(RowFilter::parse("").is_err());
    }
}
