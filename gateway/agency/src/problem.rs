//! The one place refusals and errors become RFC 9457 `application/problem+json` responses.
//!
//! Each [`ProblemKind`] has a stable `type` URI (`https://sluice.dev/problems/<code>`), a
//! status and a title. The detail says what the client can act on; internal causes go to the
//! log, never to the client.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use sluice_policy::Refusal;

/// Base of every problem type URI.
pub const TYPE_BASE: &str = "https://sluice.dev/problems/";

/// Every kind of refusal or failure the gateway reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// No client certificate where one is required.
    Unauthenticated,
    /// A certificate without a valid sluice licensee identity.
    UnknownLicensee,
    /// The policy refused (see [`Refusal::code`]).
    Policy(&'static str),
    /// Over the licence's request rate.
    RateLimited,
    /// A daily quota is used up.
    QuotaExhausted,
    /// The source failed or answered with an error.
    UpstreamFailed,
    /// The source did not answer in time.
    UpstreamTimeout,
    /// The request is malformed.
    BadRequest,
    /// No such route.
    NotFound,
    /// Method not allowed on this route.
    MethodNotAllowed,
    /// Request headers too large or too many.
    HeadersTooLarge,
    /// The gateway cannot confirm it may serve (e.g. the audit log is failing).
    Unavailable,
    /// The registry has not confirmed the licence snapshot within the staleness bound.
    RegistryStale,
    /// The client certificate's serial is revoked in the registry snapshot.
    CertificateRevoked,
}

impl ProblemKind {
    /// Stable code: the last segment of the type URI.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::UnknownLicensee => "unknown-licensee",
            Self::Policy(code) => code,
            Self::RateLimited => "rate-limited",
            Self::QuotaExhausted => "quota-exhausted",
            Self::UpstreamFailed => "upstream-failed",
            Self::UpstreamTimeout => "upstream-timeout",
            Self::BadRequest => "bad-request",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::HeadersTooLarge => "headers-too-large",
            Self::Unavailable => "unavailable",
            Self::RegistryStale => "registry-stale",
            Self::CertificateRevoked => "certificate-revoked",
        }
    }

    /// HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::UnknownLicensee => StatusCode::FORBIDDEN,
            Self::Policy(code) => match code {
                "unknown-dataset" => StatusCode::NOT_FOUND,
                "unauthenticated" => StatusCode::UNAUTHORIZED,
                "scenario-missing" | "field-not-allowed" => StatusCode::BAD_REQUEST,
                "dataset-closed" => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::FORBIDDEN,
            },
            Self::RateLimited | Self::QuotaExhausted => StatusCode::TOO_MANY_REQUESTS,
            Self::UpstreamFailed => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Unavailable | Self::RegistryStale => StatusCode::SERVICE_UNAVAILABLE,
            Self::CertificateRevoked => StatusCode::FORBIDDEN,
        }
    }

    /// Short human title.
    pub fn title(self) -> &'static str {
        match self {
            Self::Unauthenticated => "Client certificate required",
            Self::UnknownLicensee => "Certificate carries no licensee identity",
            Self::Policy(code) => match code {
                "unknown-dataset" => "Unknown dataset",
                "dataset-closed" => "Dataset closed",
                "unauthenticated" => "Client certificate required",
                "scenario-missing" => "Scenario not declared",
                "no-licence" => "No licence",
                "scenario-not-licensed" => "Scenario not licensed",
                "licence-suspended" => "Licence suspended",
                "licence-revoked" => "Licence revoked",
                "licence-expired" => "Licence expired",
                "licence-not-yet-valid" => "Licence not yet valid",
                "licensee-restricted" => "Licensee restricted",
                "field-not-allowed" => "Field not allowed",
                "aggregate-only" => "Aggregate-only licence",
                _ => "Refused",
            },
            Self::RateLimited => "Rate limit exceeded",
            Self::QuotaExhausted => "Daily quota exhausted",
            Self::UpstreamFailed => "Upstream failed",
            Self::UpstreamTimeout => "Upstream timed out",
            Self::BadRequest => "Bad request",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::HeadersTooLarge => "Request headers too large",
            Self::Unavailable => "Service unavailable",
            Self::RegistryStale => "Licence snapshot too old",
            Self::CertificateRevoked => "Certificate revoked",
        }
    }
}

/// A problem to send: kind, detail, and extra headers (e.g. `Retry-After`).
#[derive(Debug, Clone)]
pub struct Problem {
    /// The kind.
    pub kind: ProblemKind,
    /// What the client can act on.
    pub detail: String,
    /// Extra response headers.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
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

impl Problem {
    /// A problem with a detail.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Renders the response. `instance` is the request path, `request_id` ties it to the audit.
    pub fn into_response(self, instance: &str, request_id: &str) -> Response<Full<Bytes>> {
        let kind = self.kind;
        let mut resp = render(
            kind.code(),
            kind.title(),
            kind.status(),
            &self.detail,
            instance,
            Some(request_id),
        );
        for (k, v) in self.headers {
            resp.headers_mut().append(k, v);
        }
        resp
    }
}

impl From<&Refusal> for Problem {
    fn from(r: &Refusal) -> Self {
        Problem::new(ProblemKind::Policy(r.code().code()), r.to_string())
    }
}

/// All problem codes, for the README and tests.
pub const ALL_CODES: &[&str] = &[
    "unauthenticated",
    "unknown-licensee",
    "unknown-dataset",
    "dataset-closed",
    "scenario-missing",
    "no-licence",
    "scenario-not-licensed",
    "licence-suspended",
    "licence-revoked",
    "licence-expired",
    "licence-not-yet-valid",
    "licensee-restricted",
    "field-not-allowed",
    "aggregate-only",
    "rate-limited",
    "quota-exhausted",
    "upstream-failed",
    "upstream-timeout",
    "bad-request",
    "not-found",
    "method-not-allowed",
    "headers-too-large",
    "unavailable",
    "registry-stale",
    "certificate-revoked",
];
