//! The query harness: a licensee's query string, parsed the way the gateway parses it.
//!
//! The input, as UTF-8, is read as a URL query string (`a=eq.1&select=x,y&order=a.desc`),
//! percent-decoded, and handed to [`ClientQuery::from_pairs`]. It must not panic; a query that
//! parses prints (`to_pairs`) to pairs that parse back to an equal query and print the same
//! again; its bounds hold (filters, `in` items, value lengths); and evaluating it on a record
//! built from its own literals (as strings, numbers, booleans, null) does not panic, with
//! `admits` never letting through what the query alone refuses.

use sluice_policy::query::{admits, ClientQuery, FieldValue, FilterOp, MAX_FILTERS, MAX_IN_ITEMS};

/// Runs the check for one fuzz input.
pub fn check_bytes(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let Ok(q) = ClientQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) else {
        return;
    };
    assert!(q.filters.len() <= MAX_FILTERS);
    for f in &q.filters {
        if let FilterOp::In(items) = &f.op {
            assert!(!items.is_empty() && items.len() <= MAX_IN_ITEMS);
        }
    }
    let printed = q.to_pairs();
    let again = ClientQuery::from_pairs(printed.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .unwrap_or_else(|e| panic!("printed query does not parse: {e}; {printed:?}"));
    assert_eq!(again, q, "print/parse changed the query: {printed:?}");
    assert_eq!(again.to_pairs(), printed);
    // Records whose values are the query's own literals, in every type.
    for f in &q.filters {
        let lit = match &f.op {
            FilterOp::Eq(v)
            | FilterOp::Neq(v)
            | FilterOp::Lt(v)
            | FilterOp::Lte(v)
            | FilterOp::Gt(v)
            | FilterOp::Gte(v)
            | FilterOp::Like(v) => v.clone(),
            FilterOp::In(items) => items[0].clone(),
            FilterOp::IsNull => String::new(),
        };
        for value in [
            FieldValue::String(&lit),
            FieldValue::Number(&lit),
            FieldValue::Bool(lit == "true"),
            FieldValue::Null,
            FieldValue::Composite,
        ] {
            let alone = q.matches(|name| (name == f.column).then_some(value));
            let both = admits(None, &q, |name| (name == f.column).then_some(value));
            assert!(!both || alone, "admits let through what the query refuses");
        }
    }
}
