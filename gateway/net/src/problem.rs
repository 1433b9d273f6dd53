//! RFC 9457 `application/problem+json` rendering, shared by the gateway and the registry so
//! every sluice problem has the same shape and headers: `type` is [`TYPE_BASE`] + a stable
//! code, plus title, status, detail, instance and (on the gateway) the request id.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// Base of every problem type URI.
pub const TYPE_BASE: &str = "https://sluice.dev/problems/";

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    instance: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

/// Renders an RFC 9457 problem response: `type` is [`TYPE_BASE`] + `code`. Shared by the
/// gateway and the registry so every sluice problem has the same shape and headers.
pub fn render(
    code: &str,
    title: &str,
    status: StatusCode,
    detail: &str,
    instance: &str,
    request_id: Option<&str>,
) -> Response<Full<Bytes>> {
    let body = Body {
        type_: format!("{TYPE_BASE}{code}"),
        title,
        status: status.as_u16(),
        detail,
        instance,
        request_id,
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(json)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
