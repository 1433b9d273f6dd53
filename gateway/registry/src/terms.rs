//! The short text forms of a grant's terms that people type, on the command line
//! (`sluice admin grant --field …`) and in the console's grant form: a field rule
//! `name=rule[:key=value,…]` and a date `YYYY-MM-DD` or RFC 3339. Both become the JSON the
//! admin API takes.

use serde_json::{Map, Value};

/// Why a typed term could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TermsError {
    /// A field rule is malformed.
    #[error("{0:?}: expected name=rule[:key=value,…]")]
    Field(String),
    /// A date is malformed.
    #[error("{0:?}: expected RFC 3339 or YYYY-MM-DD")]
    Date(String),
}

/// Reads `name=rule[:key=value,…]`, e.g. `mobile=partial:first=3,last=4`, into the field name
/// and its masking rule's JSON (numbers stay numbers).
pub fn parse_field(s: &str) -> Result<(String, Value), TermsError> {
    let bad = || TermsError::Field(s.into());
    let (name, rest) = s.split_once('=').ok_or_else(bad)?;
    let (rule, args) = rest.split_once(':').unwrap_or((rest, ""));
    let (name, rule) = (name.trim(), rule.trim());
    if name.is_empty() || rule.is_empty() {
        return Err(bad());
    }
    let mut obj = Map::new();
    obj.insert("rule".into(), Value::String(rule.into()));
    for kv in args.split(',').filter(|kv| !kv.trim().is_empty()) {
        let (k, v) = kv.split_once('=').ok_or_else(bad)?;
        let v = serde_json::from_str::<serde_json::Number>(v.trim())
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(v.trim().into()));
        obj.insert(k.trim().into(), v);
    }
    Ok((name.into(), Value::Object(obj)))
}

/// Reads `YYYY-MM-DD` (midnight UTC) or an RFC 3339 time; answers it as RFC 3339.
pub fn parse_date(s: &str) -> Result<String, TermsError> {
    let s = s.trim();
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    time::OffsetDateTime::parse(&full, &time::format_description::well_known::Rfc3339)
        .map_err(|_| TermsError::Date(s.into()))?;
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_rules_read_as_the_api_takes_them() {
        let (name, rule) = parse_field("mobile=partial:first=3,last=4").unwrap();
        assert_eq!(name, "mobile");
        assert_eq!(
            rule,
            serde_json::json!({"rule": "partial", "first": 3, "last": 4})
        );
        assert_eq!(
            parse_field("name=clear").unwrap().1,
            serde_json::json!({"rule": "clear"})
        );
        for bad in ["mobile", "=clear", "mobile=", "mobile=partial:first"] {
            assert_eq!(parse_field(bad), Err(TermsError::Field(bad.into())), "{bad}");
        }
    }

    #[test]
    fn dates_are_days_or_rfc3339() {
        assert_eq!(parse_date("2027-01-31").unwrap(), "2027-01-31T00:00:00Z");
        assert_eq!(
            parse_date("2027-01-31T08:00:00+08:00").unwrap(),
            "2027-01-31T08:00:00+08:00"
        );
        assert!(parse_date("2027-13-01").is_err());
        assert!(parse_date("tomorrow").is_err());
    }
}
