//! The records route's untrusted inputs: the path and the query string.
//!
//! Input: the bytes up to the first `\n` are the path, the rest the query string (both taken
//! as UTF-8, lossily, as hyper hands the gateway a valid URI's parts).
//!
//! Asserts: routing and parsing never panic; a route is only `/v1/catalog` or
//! `/v1/datasets/<valid id>/records`; a parsed query keeps its limit within 1..=max_limit,
//! never passes a reserved parameter through to the source, holds no empty field name, and
//! its next-page link is a valid header whose cursor round-trips to the next offset (and
//! there is none past the last offset); a refusal is a `bad-request`.

use sluice_agency::config::Limits;
use sluice_agency::data_plane::route::{self, cursor_of, offset_of, NextPage, Route};
use sluice_agency::data_plane::RecordsQuery;
use sluice_policy::id::is_valid_id;
use sluice_policy::problem_code::ProblemCode;

/// Parameters the gateway reads itself and never hands to a source.
const RESERVED: &[&str] = &["limit", "offset", "cursor", "format", "fields"];

/// Runs every check on one input.
pub fn check_bytes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (path, query) = text.split_once('\n').unwrap_or((&text, ""));
    check_route(path);
    check_query(query);
}

fn check_route(path: &str) {
    let Ok(uri) = http::Uri::builder().path_and_query(format!("/{}", path.trim_start_matches('/'))).build() else {
        return;
    };
    let req = http::Request::get(uri).header("host", "gateway").body(()).unwrap();
    match route::route(&req) {
        Ok(Route::Catalog) => assert_eq!(req.uri().path(), "/v1/catalog"),
        Ok(Route::OpenApi) => assert_eq!(req.uri().path(), "/v1/openapi.json"),
        Ok(Route::Aggregate(id)) => {
            assert!(is_valid_id(&id), "routed to invalid dataset id {id:?}");
            assert_eq!(req.uri().path(), format!("/v1/datasets/{id}/aggregate"));
        }
        Ok(Route::Records(id)) => {
            assert!(is_valid_id(&id), "routed to invalid dataset id {id:?}");
            assert_eq!(req.uri().path(), format!("/v1/datasets/{id}/records"));
        }
        Err(p) => assert_eq!(p.code, ProblemCode::NotFound, "{p:?}"),
    }
}

fn check_query(query: &str) {
    let limits = Limits::default();
    match RecordsQuery::parse(query, &limits) {
        Ok(q) => {
            assert!((1..=limits.max_limit).contains(&q.limit), "limit {}", q.limit);
            for (k, _) in &q.passthrough {
                assert!(!RESERVED.contains(&k.as_str()), "reserved parameter {k} passed through");
            }
            if let Some(fields) = &q.fields {
                assert!(fields.iter().all(|f| !f.is_empty()), "empty field name in {fields:?}");
            }
            match q.offset.checked_add(q.limit) {
                Some(next) => {
                    assert_eq!(offset_of(&cursor_of(next)), Some(next));
                    assert_eq!(q.next_offset(), Some(NextPage::Offset(next)));
                    let link = q
                        .next_link("/v1/datasets/d/records", &NextPage::Offset(next))
                        .expect("a next page");
                    assert!(http::HeaderValue::from_str(&link).is_ok(), "{link:?} is no header value");
                    // The next page asks the same query at the next position.
                    let target = link
                        .strip_prefix("</v1/datasets/d/records?")
                        .and_then(|l| l.split_once('>'))
                        .map(|(t, _)| t)
                        .expect("a link target");
                    let again = RecordsQuery::parse(target, &limits).expect("the next page parses");
                    assert_eq!(again.offset, next);
                    assert_eq!((again.limit, again.format, &again.fields), (q.limit, q.format, &q.fields));
                    assert_eq!((&again.query.filters, &again.query.order), (&q.query.filters, &q.query.order));
                    assert_eq!(again.passthrough, q.passthrough);
                }
                None => assert_eq!(q.next_offset(), None),
            }
        }
        Err(p) => assert_eq!(p.code, ProblemCode::BadRequest, "{p:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_pass() {
        for s in crate::seeds("records_query") {
            check_bytes(&s);
        }
    }

    #[test]
    fn hostile_shapes_pass() {
        for s in [
            "v1/datasets/../records\nlimit=1",
            "/v1/datasets/a/records\nlimit=18446744073709551615&offset=18446744073709551615",
            "/v1/catalog\nfields=,,,&format=csv&limit=%31",
            "/v1/datasets/%2e%2e/records\ncursor=6f3a3138343436373434303733373039353531363135",
        ] {
            check_bytes(s.as_bytes());
        }
    }
}
