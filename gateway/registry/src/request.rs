//! What every request handler shares: reading JSON bodies, JSON responses, query parameters
//! and the checks on identifiers and reasons.

use super::problem::{Problem, ProblemCode as P};
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sluice_net::body::{full, RespBody};

/// A request body as the routes read it: a connection's body, or one the console builds for
/// the admin API it calls.
pub type ApiBody = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

/// `bytes` as a request body.
pub(crate) fn api_body(bytes: Bytes) -> ApiBody {
    use http_body_util::{BodyExt, Full};
    Full::new(bytes)
        .map_err(|never: std::convert::Infallible| match never {})
        .boxed()
}

/// Largest accepted request body.
const MAX_BODY: usize = 1 << 20;

/// A JSON response, with the `Sluice-Revision` header when a change produced `revision`.
pub(crate) fn json_response<T: Serialize>(
    status: StatusCode,
    v: &T,
    revision: Option<u64>,
) -> Response<RespBody> {
    let mut resp = Response::new(full(serde_json::to_vec(v).unwrap_or_default()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(rev) = revision {
        h.insert("sluice-revision", HeaderValue::from(rev));
    }
    resp
}

/// `r` as `201 Created` with `Location: location` (left out if it is no valid header value).
pub(crate) fn created_at(mut r: Response<RespBody>, location: &str) -> Response<RespBody> {
    *r.status_mut() = StatusCode::CREATED;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Reads and parses a JSON body of at most 1 MiB.
pub(crate) async fn body<T: DeserializeOwned>(req: Request<ApiBody>) -> Result<T, Problem> {
    body_limited(req, MAX_BODY).await
}

/// Reads a JSON body of at most `limit` bytes (`bad-request` otherwise).
pub(crate) async fn body_limited<T: DeserializeOwned>(
    req: Request<ApiBody>,
    limit: usize,
) -> Result<T, Problem> {
    let bytes: Bytes = Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(|e| Problem::new(P::BadRequest, format!("request body: {e}")))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| Problem::new(P::BadRequest, format!("request body: {e}")))
}

/// Refuses a change without a reason.
pub(crate) fn need_reason(reason: &str) -> Result<(), Problem> {
    if reason.trim().is_empty() {
        return Err(Problem::new(P::Invalid, "a reason is required for this change"));
    }
    Ok(())
}

/// The value of query parameter `name`, as sent.
pub(crate) fn query_str<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A catalog entry's declaration checked as the gateways check it (fields, record key,
/// fingerprints), so the registry never distributes one a gateway would refuse.
pub fn valid_dataset(d: &sluice_policy::catalog::DatasetSpec) -> Result<(), Problem> {
    valid_id(&d.id)?;
    match d.problems().first() {
        None => Ok(()),
        Some(p) => Err(Problem::new(
            P::Invalid,
            format!("dataset {:?}: {}: {}", d.id, p.path, p.message),
        )),
    }
}

/// Checks an identifier against the one id rule ([`sluice_policy::id::ID_RULE`]).
pub fn valid_id(id: &str) -> Result<(), Problem> {
    if sluice_policy::id::is_valid_id(id) {
        Ok(())
    } else {
        Err(Problem::new(
            P::Invalid,
            format!("identifier {id:?} must match [A-Za-z0-9._-]{{1,64}}"),
        ))
    }
}
