//! The registry's routes and the methods each allows: what a wrong method is told (`405`
//! with `Allow`) and what no route has (`404`). The handlers in `api` and `parties` serve
//! exactly these; a test walks the table against the running server.

use super::problem::{Problem, ProblemCode as P};
use http::header::{HeaderValue, ALLOW};

/// Every route (path segments, `*` for an id) with the methods it allows.
pub const ROUTES: &[(&[&str], &str)] = &[
    (&["openapi.json"], "GET"),
    (&["catalog"], "GET"),
    (&["catalog", "*", "history"], "GET"),
    (&["violations"], "GET"),
    (&["objections"], "GET"),
    (&["objections", "new"], "GET"),
    (&["v1", "objections"], "POST"),
    (&["v1", "objections", "*"], "GET"),
    (&["demands"], "GET"),
    (&["demands", "new"], "GET"),
    (&["v1", "demands"], "POST"),
    (&["v1", "demands", "*"], "GET"),
    (&["v1", "registry-key"], "GET"),
    (&["v1", "snapshot"], "GET"),
    (&["v1", "usage"], "POST"),
    (&["admin", "licensees"], "GET, POST"),
    (&["admin", "licences"], "GET, POST"),
    (&["admin", "licences", "*"], "GET"),
    (&["admin", "licences", "*", "suspend"], "POST"),
    (&["admin", "licences", "*", "resume"], "POST"),
    (&["admin", "licences", "*", "revoke"], "POST"),
    (&["admin", "violations"], "GET, POST"),
    (&["admin", "violations", "*", "lift"], "POST"),
    (&["admin", "fusion-rules"], "GET, POST"),
    (&["admin", "fusion-rules", "*"], "DELETE"),
    (&["admin", "usage"], "GET"),
    (&["admin", "datasets"], "GET, POST"),
    (&["admin", "datasets", "close-all"], "POST"),
    (&["admin", "datasets", "open-all"], "POST"),
    (&["admin", "datasets", "*", "close"], "POST"),
    (&["admin", "datasets", "*", "open"], "POST"),
    (&["admin", "datasets", "*", "evaluation"], "POST"),
    (&["admin", "certs", "revoke"], "POST"),
    (&["admin", "agencies"], "GET, POST"),
    (&["admin", "admins"], "GET, POST"),
    (&["metrics"], "GET"),
    (&["admin", "agreements"], "POST"),
    (&["admin", "applications"], "GET"),
    (&["admin", "applications", "*"], "GET"),
    (&["admin", "applications", "*", "approve"], "POST"),
    (&["admin", "applications", "*", "reject"], "POST"),
    (&["admin", "applications", "*", "ask"], "POST"),
    (&["v1", "agreements", "*"], "GET"),
    (&["v1", "applications"], "GET, POST"),
    (&["v1", "applications", "*"], "GET"),
    (&["v1", "applications", "*", "answer"], "POST"),
    (&["admin", "admins", "*"], "DELETE"),
    (&["admin", "gateways"], "GET, POST"),
    (&["admin", "gateways", "*", "retire"], "POST"),
    (&["admin", "gateways", "health"], "GET"),
    (&["admin", "scenarios"], "GET, POST"),
    (&["admin", "changes"], "GET"),
    (&["reports", "usage"], "GET"),
    (&["admin", "objections"], "GET"),
    (&["admin", "objections", "*"], "GET"),
    (&["admin", "objections", "*", "uphold"], "POST"),
    (&["admin", "objections", "*", "reject"], "POST"),
    (&["admin", "objections", "*", "withdraw"], "POST"),
    (&["admin", "objections", "*", "resolve"], "POST"),
    (&["admin", "demands"], "GET"),
    (&["admin", "demands", "*"], "GET"),
    (&["admin", "demands", "*", "answer"], "POST"),
    (&["admin", "drills"], "GET, POST"),
    (&["v1", "risk-alerts"], "POST"),
    (&["admin", "risk", "rules"], "GET, POST"),
    (&["admin", "risk", "rules", "*"], "DELETE"),
    (&["admin", "risk", "alerts"], "GET"),
];

/// The methods the route at `segs` allows; `None` when no route has that path. A literal
/// segment wins over `*` (`/admin/datasets/close-all` is not a dataset id).
pub fn allowed(segs: &[&str]) -> Option<&'static str> {
    let fits = |pattern: &[&str], exact: bool| {
        pattern.len() == segs.len()
            && pattern
                .iter()
                .zip(segs)
                .all(|(p, s)| p == s || (!exact && *p == "*" && !s.is_empty()))
    };
    ROUTES
        .iter()
        .find(|(p, _)| fits(p, true))
        .or_else(|| ROUTES.iter().find(|(p, _)| fits(p, false)))
        .map(|(_, methods)| *methods)
}

/// The refusal for a request no handler took: `405` with `Allow` when the path exists (TRACE
/// included), `404` otherwise.
pub fn not_routed(method: &http::Method, segs: &[&str]) -> Problem {
    let path = format!("/{}", segs.join("/"));
    match allowed(segs) {
        Some(methods) => Problem::new(
            P::MethodNotAllowed,
            format!("{path} allows {methods}, not {method}"),
        )
        .with_header(ALLOW, HeaderValue::from_static(methods)),
        None => Problem::new(P::NotFound, format!("no route {method} {path}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_win_over_ids_and_unknown_paths_have_no_methods() {
        assert_eq!(allowed(&["admin", "datasets", "close-all"]), Some("POST"));
        assert_eq!(allowed(&["admin", "datasets", "d1", "close"]), Some("POST"));
        assert_eq!(allowed(&["admin", "licences", "l1"]), Some("GET"));
        assert_eq!(allowed(&["admin", "licences", ""]), None);
        assert_eq!(allowed(&["admin", "nothing"]), None);
        assert_eq!(allowed(&["catalog", "x"]), None);
        let p = not_routed(&http::Method::TRACE, &["catalog"]);
        assert_eq!(p.code, P::MethodNotAllowed);
        assert_eq!(p.headers, vec![(ALLOW, HeaderValue::from_static("GET"))]);
        assert_eq!(not_routed(&http::Method::GET, &["nope"]).code, P::NotFound);
    }

    /// Issue 11, item 17: `openapi.json` (the contract) has exactly the routes and methods of
    /// this table.
    #[test]
    fn the_openapi_document_has_the_routes_of_the_table() {
        let doc: serde_json::Value = serde_json::from_str(crate::api::OPENAPI).expect("openapi.json parses");
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            let segs: Vec<&str> = path
                .trim_matches('/')
                .split('/')
                .map(|s| if s.starts_with('{') { "*" } else { s })
                .collect();
            let mut methods: Vec<String> = ops
                .as_object()
                .expect("operations")
                .keys()
                .map(|m| m.to_uppercase())
                .collect();
            methods.sort();
            documented.push((segs.join("/"), methods.join(", ")));
        }
        let mut table: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(p, m)| {
                let mut ms: Vec<&str> = m.split(", ").collect();
                ms.sort_unstable();
                (p.join("/"), ms.join(", "))
            })
            .collect();
        documented.sort();
        table.sort();
        assert_eq!(documented, table);
    }
}
