//! The row-filter harness: parsing arbitrary text, and printing structured filters.
//!
//! Text mode (first byte even): the rest, as UTF-8, goes to [`RowFilter::parse`]. It must not
//! panic; an error's offset lies in the text; a filter that parses has at least one
//! condition, field names of the grammar's form and one value for `=`/`!=`; printing it
//! (`Display`) gives text that parses back to an equal filter and prints the same again; the
//! serde form round-trips; a record without the fields matches nothing.
//!
//! Structured mode (first byte odd): a filter built with `arbitrary` (field names of the
//! grammar's form, keywords included; any string values) must print to text that parses back
//! to exactly that filter.

use arbitrary::Unstructured;
use sluice_policy::rowfilter::{Condition, Op, RowFilter};

/// Runs the check for one fuzz input.
pub fn check_bytes(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            check_text(text);
        }
    } else {
        let mut u = Unstructured::new(rest);
        if let Ok(f) = structured(&mut u) {
            check_printed(&f);
        }
    }
}

fn is_ident(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && !b[0].is_ascii_digit() && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// The checks on arbitrary text.
pub fn check_text(text: &str) {
    let f = match RowFilter::parse(text) {
        Ok(f) => f,
        Err(e) => {
            assert!(
                e.at <= text.len(),
                "error offset {} past the end of {text:?}",
                e.at
            );
            return;
        }
    };
    assert!(!f.conditions.is_empty(), "{text:?} parsed to no condition");
    for c in &f.conditions {
        assert!(is_ident(&c.field), "{text:?}: field {:?} is not a name", c.field);
        match c.op {
            Op::Eq | Op::Ne => assert_eq!(c.values.len(), 1, "{text:?}"),
            Op::In => assert!(!c.values.is_empty(), "{text:?}"),
        }
    }
    assert_eq!(
        f.fields().collect::<Vec<_>>(),
        f.conditions.iter().map(|c| c.field.as_str()).collect::<Vec<_>>()
    );
    assert!(
        !f.matches(|_| None),
        "{text:?}: a record without the fields matched"
    );
    check_printed(&f);
    let json = serde_json::to_string(&f).expect("a filter serialises");
    let back: RowFilter = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{text:?}: serde form {json} does not read back: {e}"));
    assert_eq!(back, f, "{text:?}: serde round trip");
}

/// Printing `f` gives text that parses back to `f` and prints the same.
pub fn check_printed(f: &RowFilter) {
    let printed = f.to_string();
    let back = RowFilter::parse(&printed)
        .unwrap_or_else(|e| panic!("{f:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(&back, f, "{f:?} printed as {printed:?} parses to {back:?}");
    assert_eq!(back.to_string(), printed, "printing is not a fixpoint");
}

const KEYWORDS: &[&str] = &["and", "AND", "in", "In", "or", "not", "_", "a1", "district"];

fn ident(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    if u.ratio(1, 3)? {
        return Ok((*u.choose(KEYWORDS)?).to_owned());
    }
    const FIRST: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_";
    const REST: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789";
    let mut s = String::new();
    s.push(char::from(*u.choose(FIRST)?));
    for _ in 0..u.int_in_range(0..=8)? {
        s.push(char::from(*u.choose(REST)?));
    }
    Ok(s)
}

fn structured(u: &mut Unstructured<'_>) -> arbitrary::Result<RowFilter> {
    let n = u.int_in_range(1..=4)?;
    let mut conditions = Vec::new();
    for _ in 0..n {
        let field = ident(u)?;
        let op = *u.choose(&[Op::Eq, Op::Ne, Op::In])?;
        let k = if op == Op::In { u.int_in_range(1..=3)? } else { 1 };
        let mut values = Vec::new();
        for _ in 0..k {
            values.push(u.arbitrary::<String>()?);
        }
        conditions.push(Condition { field, op, values });
    }
    Ok(RowFilter { conditions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/rowfilter_parse");
        for e in std::fs::read_dir(dir).unwrap() {
            check_bytes(&std::fs::read(e.unwrap().path()).unwrap());
        }
    }

    #[test]
    fn examples() {
        for t in [
            "district in ('Huangpu', 'Jing''an') and status = 'ok'",
            "a = 1e5 and b != -0.5",
            "and = 'x' AND in IN ('')",
            "",
            "a = ",
            "a in ()",
        ] {
            check_text(t);
        }
        check_printed(&RowFilter {
            conditions: vec![Condition {
                field: "in".into(),
                op: Op::In,
                values: vec!["'".into(), "a'' and b = 'c".into(), "\n".into()],
            }],
        });
    }
}
