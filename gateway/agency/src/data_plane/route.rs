//! Phase: route. Which resource a request asks for, its query and its declared scenario.
//!
//! [`RecordsQuery::parse`] reads untrusted query strings and is a fuzz target
//! (`gateway/agency/fuzz`).

use crate::config::Limits;
use http::{header, HeaderValue, Method, Request, Version};
use sluice_net::problem::{Problem, ProblemCode};
use sluice_policy::id::is_valid_id;
use sluice_policy::query::{is_filter_value, ClientQuery};
use sluice_policy::stream::OutputFormat;

/// The header declaring the request's purpose.
pub const SCENARIO_HEADER: &str = "sluice-scenario";

/// The route a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/catalog`.
    Catalog,
    /// `GET /v1/datasets/<id>/records`.
    Records(String),
    /// `GET /v1/openapi.json`: the data API's OpenAPI document ([`crate::openapi`]).
    OpenApi,
    /// `GET /v1/datasets/<id>/aggregate`: the data sandbox ([`super::aggregate`]).
    Aggregate(String),
}

/// Routes a request: GET only, four routes. An HTTP/1.1 request must carry exactly one
/// `Host` header (RFC 9112 §3.2).
pub fn route<B>(req: &Request<B>) -> Result<Route, Problem> {
    if req.version() == Version::HTTP_11 && req.headers().get_all(header::HOST).iter().count() != 1 {
        return Err(Problem::new(
            ProblemCode::BadRequest,
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    let path = req.uri().path();
    let not_found = || Problem::new(ProblemCode::NotFound, "no such route; see /v1/catalog");
    let route = if path == "/v1/catalog" {
        Route::Catalog
    } else if path == "/v1/openapi.json" {
        Route::OpenApi
    } else if let Some(rest) = path.strip_prefix("/v1/datasets/") {
        match rest.split_once('/') {
            Some((id, "records")) if is_valid_id(id) => Route::Records(id.to_owned()),
            Some((id, "aggregate")) if is_valid_id(id) => Route::Aggregate(id.to_owned()),
            _ => return Err(not_found()),
        }
    } else {
        return Err(not_found());
    };
    if req.method() != Method::GET {
        return Err(
            Problem::new(ProblemCode::MethodNotAllowed, "only GET is supported")
                .with_header(header::ALLOW, HeaderValue::from_static("GET")),
        );
    }
    Ok(route)
}

/// The declared scenario (`Sluice-Scenario`), if any; declared twice is refused rather than
/// one of them picked.
pub fn scenario<B>(req: &Request<B>) -> Result<Option<String>, Problem> {
    let mut values = req.headers().get_all(SCENARIO_HEADER).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Problem::new(
            ProblemCode::BadRequest,
            "Sluice-Scenario must be given once",
        ));
    }
    match v.to_str() {
        Ok(s) if is_valid_id(s) => Ok(Some(s.to_owned())),
        _ => Err(Problem::new(
            ProblemCode::BadRequest,
            "Sluice-Scenario must be 1-64 characters of A-Z a-z 0-9 . _ -",
        )),
    }
}

/// The query of a records request.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordsQuery {
    /// Page size.
    pub limit: u64,
    /// Offset into the source's records (from `offset` or `cursor`).
    pub offset: u64,
    /// Output format.
    pub format: OutputFormat,
    /// The fields asked for (`fields=a,b`), all licensed fields when absent.
    pub fields: Option<Vec<String>>,
    /// Every other parameter, for the connector's allow-list.
    pub passthrough: Vec<(String, String)>,
    /// The licensee's own filters (`col=op.value`), checked against the licence in
    /// [`decide`](super::decide) and applied to the original values in the stream.
    pub query: ClientQuery,
}

impl RecordsQuery {
    /// Parses a query string against the page limits. A parameter given twice is refused
    /// (`limit=1&limit=10000` has no single meaning), and so are `offset` and `cursor` together.
    pub fn parse(q: &str, limits: &Limits) -> Result<Self, Problem> {
        let bad = |msg: String| Problem::new(ProblemCode::BadRequest, msg);
        let mut out = RecordsQuery {
            limit: limits.default_limit,
            offset: 0,
            format: OutputFormat::Json,
            fields: None,
            passthrough: Vec::new(),
            query: ClientQuery::default(),
        };
        // The licensee's query: `select`, `order`, `after` and filter-shaped values.
        let mut query_pairs: Vec<(String, String)> = Vec::new();
        // The gateway's own parameters seen so far (`cursor` counts as `offset`); a repeated
        // source parameter is found among those already passed through.
        const OWN: [&str; 4] = ["limit", "offset", "format", "fields"];
        let mut seen = [false; OWN.len()];
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            let name = if &*k == "cursor" { "offset" } else { &*k };
            let repeated = match OWN.iter().position(|o| *o == name) {
                Some(i) => std::mem::replace(&mut seen[i], true),
                None => out.passthrough.iter().any(|(p, _)| *p == name),
            };
            if repeated {
                return Err(bad(match name {
                    "offset" => "give one of offset and cursor, once".to_owned(),
                    _ => format!("the parameter {name:?} is given more than once"),
                }));
            }
            match &*k {
                "limit" => {
                    out.limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=limits.max_limit).contains(n))
                        .ok_or_else(|| {
                            bad(format!("limit must be an integer from 1 to {}", limits.max_limit))
                        })?
                }
                "offset" => {
                    out.offset = v
                        .parse()
                        .map_err(|_| bad("offset must be a non-negative integer".into()))?
                }
                "cursor" => out.offset = offset_of(&v).ok_or_else(|| bad("cursor is not valid".into()))?,
                "format" => {
                    out.format = match &*v {
                        "json" => OutputFormat::Json,
                        "ndjson" => OutputFormat::Ndjson,
                        "csv" => OutputFormat::Csv,
                        _ => return Err(bad("format must be json, ndjson or csv".into())),
                    }
                }
                "fields" => {
                    out.fields = Some(
                        v.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    )
                }
                // `or`, `and`, `not` are PostgREST's logical operators: refused there, never
                // passed to a source.
                "select" | "order" | "after" | "or" | "and" | "not" => {
                    query_pairs.push((k.into_owned(), v.into_owned()))
                }
                // A value without an operator is a source parameter, for the connector's
                // allow-list as before.
                _ if is_filter_value(&v) => query_pairs.push((k.into_owned(), v.into_owned())),
                _ => out.passthrough.push((k.into_owned(), v.into_owned())),
            }
        }
        out.query = ClientQuery::from_pairs(query_pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(|e| bad(e.to_string()))?;
        if let Some(select) = out.query.select.take() {
            if out.fields.is_some() {
                return Err(bad("give one of select and fields".into()));
            }
            out.fields = Some(select);
        }
        Ok(out)
    }
}

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextPage {
    /// At this offset into the (filtered) records.
    Offset(u64),
    /// After this sealed keyset cursor.
    After(String),
}

impl RecordsQuery {
    /// The `Link: rel="next"` value for the page at `next`: the same query (filters,
    /// fields, order, format, limit, source parameters) with the new position. `None` when the
    /// next offset would not fit (no such page).
    pub fn next_link(&self, path: &str, next: &NextPage) -> Option<String> {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        match next {
            NextPage::Offset(o) => {
                q.append_pair("cursor", &cursor_of(*o));
            }
            NextPage::After(a) => {
                q.append_pair("after", a);
            }
        }
        q.append_pair("limit", &self.limit.to_string());
        match self.format {
            OutputFormat::Json => {}
            OutputFormat::Ndjson => {
                q.append_pair("format", "ndjson");
            }
            OutputFormat::Csv => {
                q.append_pair("format", "csv");
            }
        }
        if let Some(f) = &self.fields {
            q.append_pair("fields", &f.join(","));
        }
        for (k, v) in self.query.to_pairs() {
            if k != "after" && k != "select" {
                q.append_pair(&k, &v);
            }
        }
        for (k, v) in &self.passthrough {
            q.append_pair(k, v);
        }
        Some(format!("<{path}?{}>; rel=\"next\"", q.finish()))
    }

    /// The page after this one by offset; `None` past the last offset.
    pub fn next_offset(&self) -> Option<NextPage> {
        self.offset.checked_add(self.limit).map(NextPage::Offset)
    }
}

/// The opaque cursor of the page starting at `offset`.
pub fn cursor_of(offset: u64) -> String {
    hex::encode(format!("o:{offset}"))
}

/// The offset a cursor stands for.
pub fn offset_of(cursor: &str) -> Option<u64> {
    let raw = hex::decode(cursor).ok()?;
    std::str::from_utf8(&raw).ok()?.strip_prefix("o:")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        assert_eq!(offset_of(&cursor_of(1234)), Some(1234));
        assert_eq!(offset_of("zz"), None);
        assert_eq!(offset_of(&hex::encode("x:1")), None);
    }

    #[test]
    fn query_parsing() {
        let l = Limits::default();
        let q = RecordsQuery::parse("limit=5&offset=10&format=csv&fields=a,b&district=x", &l).unwrap();
        assert_eq!(q.limit, 5);
        assert_eq!(q.offset, 10);
        assert_eq!(q.format, OutputFormat::Csv);
        assert_eq!(q.fields, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(q.passthrough, vec![("district".to_owned(), "x".to_owned())]);
        assert!(RecordsQuery::parse("limit=0", &l).is_err());
        assert!(RecordsQuery::parse("limit=100000000", &l).is_err());
        assert!(RecordsQuery::parse("format=xml", &l).is_err());
        assert!(RecordsQuery::parse("offset=-1", &l).is_err());
    }

    /// Issue 11, item 13: a repeated parameter or header is refused, never resolved by taking
    /// one of the values.
    #[test]
    fn repeats_are_refused() {
        let l = Limits::default();
        for q in [
            "limit=1&limit=10000",
            "format=csv&format=json",
            "fields=a&fields=b",
            "offset=1&cursor=6f3a32",
            "cursor=6f3a32&cursor=6f3a33",
            "district=a&district=b",
        ] {
            let p = RecordsQuery::parse(q, &l).unwrap_err();
            assert_eq!(p.code, ProblemCode::BadRequest, "{q}");
        }
        let two = Request::get("/v1/catalog")
            .header(SCENARIO_HEADER, "a")
            .header(SCENARIO_HEADER, "b")
            .body(())
            .unwrap();
        assert_eq!(scenario(&two).unwrap_err().code, ProblemCode::BadRequest);
        let one = Request::get("/v1/catalog")
            .header(SCENARIO_HEADER, "a")
            .body(())
            .unwrap();
        assert_eq!(scenario(&one).unwrap(), Some("a".to_owned()));
    }

    /// Issue 11, item 13: HTTP/1.1 needs exactly one Host header (RFC 9112 §3.2); HTTP/2
    /// carries the authority in the pseudo-header.
    #[test]
    fn http11_needs_exactly_one_host() {
        let req = |hosts: &[&str], version| {
            let mut b = Request::get("/v1/catalog").version(version);
            for h in hosts {
                b = b.header(header::HOST, *h);
            }
            b.body(()).unwrap()
        };
        assert_eq!(route(&req(&["a"], Version::HTTP_11)).unwrap(), Route::Catalog);
        for hosts in [&[][..], &["a", "b"][..]] {
            let p = route(&req(hosts, Version::HTTP_11)).unwrap_err();
            assert_eq!(p.code, ProblemCode::BadRequest, "{hosts:?}");
        }
        assert_eq!(route(&req(&[], Version::HTTP_2)).unwrap(), Route::Catalog);
    }

    #[test]
    fn the_next_link_carries_the_next_cursor_and_stops_at_the_last_offset() {
        let l = Limits::default();
        let q = RecordsQuery::parse("limit=5&offset=10", &l).unwrap();
        assert_eq!(
            q.next_link("/v1/datasets/d/records", &q.next_offset().unwrap())
                .unwrap(),
            format!(
                "</v1/datasets/d/records?cursor={}&limit=5>; rel=\"next\"",
                cursor_of(15)
            )
        );
        let last = RecordsQuery::parse("limit=5&offset=18446744073709551615", &l).unwrap();
        assert_eq!(last.next_offset(), None);
        // The next page keeps the query: filters, fields, order, format, source parameters.
        let q = RecordsQuery::parse(
            "limit=2&format=csv&select=id,district&district=in.(\"a,b\",c)&status=not.eq.x&order=id.desc&after=old&zone=7",
            &l,
        )
        .unwrap();
        let link = q.next_link("/p", &NextPage::After("NEW".into())).unwrap();
        let target = link
            .strip_prefix("</p?")
            .unwrap()
            .split_once('>')
            .unwrap()
            .0
            .to_owned();
        let again = RecordsQuery::parse(&target, &l).unwrap();
        assert_eq!(again.query.after.as_deref(), Some("NEW"));
        assert_eq!(again.limit, 2);
        assert_eq!(again.format, OutputFormat::Csv);
        assert_eq!(again.fields, q.fields);
        assert_eq!(again.query.filters, q.query.filters);
        assert_eq!(again.query.order, q.query.order);
        assert_eq!(again.passthrough, q.passthrough);
    }
}
