//! RFC 9457 `application/problem+json`: the one problem type of the gateway and the registry.
//!
//! A [`Problem`] is a [`ProblemCode`] (which fixes the `type` URI, the status and the title)
//! plus a detail the client can act on and any extra headers (`Retry-After`, `Allow`…).
//! Internal causes go to the log, never into the detail.

use crate::body::{boxed, RespBody};
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
pub use sluice_policy::problem_code::{ProblemCode, TYPE_BASE};
use sluice_policy::Refusal;

/// A refusal or failure to send.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The stable code.
    pub code: ProblemCode,
    /// What the client can act on.
    pub detail: String,
    /// Extra response headers.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Problem {
    /// A problem with a detail.
    pub fn new(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        status_of(self.code)
    }

    /// Renders the response. `instance` is the request path; `request_id`, when given, ties
    /// it to the audit record.
    pub fn into_response(self, instance: &str, request_id: Option<&str>) -> Response<RespBody> {
        let mut resp = render(self.code, &self.detail, instance, request_id);
        for (k, v) in self.headers {
            resp.headers_mut().append(k, v);
        }
        boxed(resp)
    }
}

impl From<&Refusal> for Problem {
    fn from(r: &Refusal) -> Self {
        Problem::new(r.code(), r.to_string())
    }
}

fn status_of(code: ProblemCode) -> StatusCode {
    StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

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

/// Renders an RFC 9457 problem response with `Cache-Control: no-store`.
pub fn render(
    code: ProblemCode,
    detail: &str,
    instance: &str,
    request_id: Option<&str>,
) -> Response<Full<Bytes>> {
    let status = status_of(code);
    let body = Body {
        type_: code.type_uri(),
        title: code.title(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn every_code_renders_its_type_status_and_title() {
        for &code in ProblemCode::ALL {
            let resp = Problem::new(code, "why").into_response("/x", Some("rid"));
            assert_eq!(resp.status().as_u16(), code.status(), "{code}");
            assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/problem+json");
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["type"], format!("{TYPE_BASE}{}", code.code()));
            assert_eq!(v["title"], code.title());
            assert_eq!(v["status"], code.status());
            assert_eq!(v["detail"], "why");
            assert_eq!(v["instance"], "/x");
            assert_eq!(v["request_id"], "rid");
        }
    }
}
