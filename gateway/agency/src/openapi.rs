//! The data API's OpenAPI 3 document, served at `GET /v1/openapi.json` on the data and public
//! listeners. It is the contract: `tests/openapi/run.sh` checks a running gateway against it.

use crate::data_plane::outcome::{set_request_id, Outcomes};
use crate::data_plane::Ctx;
use http::{header, HeaderValue, Response};
use sluice_net::body::{full, RespBody};
use sluice_net::problem::Problem;

/// The OpenAPI 3 document of the data API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Answers with the document; audited and counted like the catalog.
pub async fn respond(outcomes: &Outcomes, ctx: &Ctx) -> Result<Response<RespBody>, Problem> {
    outcomes.answered(ctx).await?;
    let mut resp = Response::new(full(OPENAPI));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    set_request_id(&mut resp, &ctx.request_id);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sluice_net::problem::ProblemCode;

    /// Issue 11, item 17: the document parses, names every route the gateway serves, and
    /// its problem types are the gateway's.
    #[test]
    fn the_document_describes_the_routes_and_problem_types() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.0.3");
        // Sorted: serde_json keeps the document's order when a crate in the build enables its
        // preserve_order feature (the workspace's tests do), and sorts it otherwise.
        let mut paths: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        paths.sort_unstable();
        assert_eq!(
            paths,
            [
                "/v1/catalog",
                "/v1/datasets/{dataset}/aggregate",
                "/v1/datasets/{dataset}/records",
                "/v1/openapi.json"
            ]
        );
        for (p, want) in [
            ("/v1/catalog", crate::data_plane::route::Route::Catalog),
            ("/v1/openapi.json", crate::data_plane::route::Route::OpenApi),
            (
                "/v1/datasets/d/records",
                crate::data_plane::route::Route::Records("d".into()),
            ),
            (
                "/v1/datasets/d/aggregate",
                crate::data_plane::route::Route::Aggregate("d".into()),
            ),
        ] {
            let req = http::Request::get(p).header(header::HOST, "h").body(()).unwrap();
            assert_eq!(crate::data_plane::route::route(&req).unwrap(), want, "{p}");
        }
        let pattern = doc["components"]["schemas"]["Problem"]["properties"]["type"]["pattern"]
            .as_str()
            .unwrap();
        assert_eq!(pattern, "^https://sluice\\.dev/problems/[a-z-]+$");
        for code in ProblemCode::ALL {
            let c = code.code();
            assert!(
                c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-'),
                "{c} would not match the document's problem type pattern"
            );
        }
    }
}
