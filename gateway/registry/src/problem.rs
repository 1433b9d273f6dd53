//! Registry refusals as RFC 9457 problem+json, with the same type URI base as the gateway's.

use http::{Response, StatusCode};
use sluice_net::body::{boxed, RespBody};
use sluice_net::problem::render;

/// Every kind of registry refusal; `code()` is the stable last segment of the type URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryProblem {
    /// No client certificate on a route that needs one.
    Unauthenticated,
    /// The certificate's identity may not call this route.
    Forbidden,
    /// Malformed request body or parameters.
    BadRequest,
    /// The request is well-formed but refused by validation (unknown field, bad credit code…).
    Invalid,
    /// No such route or object.
    NotFound,
    /// The change conflicts with the current state.
    Conflict,
    /// A grant would complete a fusion rule and carries no expert review.
    FusionConflict,
    /// Method not allowed.
    MethodNotAllowed,
    /// A gateway certificate whose gateway is not registered, or is retired.
    UnknownGateway,
    /// The registry failed.
    Internal,
}

impl RegistryProblem {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::BadRequest => "bad-request",
            Self::Invalid => "invalid",
            Self::NotFound => "not-found",
            Self::Conflict => "conflict",
            Self::FusionConflict => "fusion-conflict",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::UnknownGateway => "unknown-gateway",
            Self::Internal => "internal",
        }
    }

    /// HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict | Self::FusionConflict => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnknownGateway => StatusCode::FORBIDDEN,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Unauthenticated => "Client certificate required",
            Self::Forbidden => "Not allowed for this identity",
            Self::BadRequest => "Bad request",
            Self::Invalid => "Validation failed",
            Self::NotFound => "Not found",
            Self::Conflict => "Conflict",
            Self::FusionConflict => "Grant would complete a fusion rule",
            Self::MethodNotAllowed => "Method not allowed",
            Self::UnknownGateway => "Gateway not registered",
            Self::Internal => "Internal error",
        }
    }
}

/// A refusal with what the client can act on.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Kind.
    pub kind: RegistryProblem,
    /// Detail.
    pub detail: String,
}

impl Problem {
    /// A problem.
    pub fn new(kind: RegistryProblem, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    /// Renders it; `instance` is the request path.
    pub fn into_response(self, instance: &str) -> Response<RespBody> {
        let kind = self.kind;
        boxed(render(
            kind.code(),
            kind.title(),
            kind.status(),
            &self.detail,
            instance,
            None,
        ))
    }
}

impl From<super::store::StoreError> for Problem {
    fn from(e: super::store::StoreError) -> Self {
        use super::store::StoreError as E;
        match e {
            E::NotFound(m) => Problem::new(RegistryProblem::NotFound, m),
            E::Conflict(m) => Problem::new(RegistryProblem::Conflict, m),
            E::Invalid(m) => Problem::new(RegistryProblem::Invalid, m),
            E::FusionConflict(m) => Problem::new(RegistryProblem::FusionConflict, m),
            other => {
                tracing::error!(error = %other, "registry store failed");
                Problem::new(
                    RegistryProblem::Internal,
                    "the registry could not complete the request",
                )
            }
        }
    }
}
