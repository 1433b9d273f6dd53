//! The stable problem types sluice emits, gateway and registry alike.
//!
//! Every refusal or failure a client can see has one [`ProblemCode`]: its kebab-case
//! [`code`] is the last segment of the RFC 9457 `type` URI ([`TYPE_BASE`] + code), and it
//! fixes the HTTP [`status`] and the [`title`]. The codes are a public contract: clients match
//! on them, so a code string never changes once published. The list of all codes,
//! [`ProblemCode::ALL`], is derived from the enum, so it cannot miss one.
//!
//! [`ProblemCode`]: crate::problem_code::ProblemCode
//! [`code`]: crate::problem_code::ProblemCode::code
//! [`TYPE_BASE`]: crate::problem_code::TYPE_BASE
//! [`status`]: crate::problem_code::ProblemCode::status
//! [`title`]: crate::problem_code::ProblemCode::title
//! [`ProblemCode::ALL`]: crate::problem_code::ProblemCode::ALL

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Base of every problem type URI; the code is appended.
pub const TYPE_BASE: &str = "https://sluice.dev/problems/";

/// One stable problem type. The first 26 variants, in order, are the gateway's codes; the
/// rest are the registry's own (the registry also uses `unauthenticated`, `bad-request`,
/// `not-found` and `method-not-allowed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, strum::VariantArray)]
pub enum ProblemCode {
    /// No client certificate where one is required (also conditional data asked for on the
    /// public listener).
    Unauthenticated,
    /// A certificate without a valid sluice licensee identity.
    UnknownLicensee,
    /// The dataset is not offered by this gateway.
    UnknownDataset,
    /// The dataset was closed (emergency switch or classification).
    DatasetClosed,
    /// No `Sluice-Scenario` header.
    ScenarioMissing,
    /// The licensee holds no licence for the dataset.
    NoLicence,
    /// The licensee holds licences for the dataset, but not for this scenario.
    ScenarioNotLicensed,
    /// The licence is suspended.
    LicenceSuspended,
    /// The licence is revoked.
    LicenceRevoked,
    /// The licence's validity ended.
    LicenceExpired,
    /// The licence's validity has not begun.
    LicenceNotYetValid,
    /// The licensee's access was restricted (violation measure).
    LicenseeRestricted,
    /// A requested field is not in the permit.
    FieldNotAllowed,
    /// A query filters or orders on a field the licence does not show in clear (masked,
    /// scanned by the detectors, or not licensed at all): such a filter would be an oracle.
    FieldNotFilterable,
    /// The licence is for aggregates only.
    AggregateOnly,
    /// No licence for the scenario allows aggregates.
    AggregateNotLicensed,
    /// An aggregate query groups, filters or measures a field the licence does not allow in
    /// that role.
    FieldNotAggregable,
    /// An aggregate answer would be computed from more groups than the licence allows.
    TooManyGroups,
    /// The licence's differential-privacy budget for the day is spent.
    PrivacyBudgetExhausted,
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
    /// No such route or object.
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
    /// Registry: the certificate's identity may not call this route.
    Forbidden,
    /// Registry: well-formed but refused by validation (unknown field, bad credit code…).
    Invalid,
    /// Registry: the change conflicts with the current state.
    Conflict,
    /// Registry: a grant would complete a fusion rule and carries no expert review.
    FusionConflict,
    /// Registry: a gateway certificate whose gateway is not registered, or is retired.
    UnknownGateway,
    /// Registry console: a change without a valid CSRF token, or sent from another site.
    CsrfRejected,
    /// Registry: the registry failed.
    Internal,
}

impl ProblemCode {
    /// Every code, in declaration order (derived by `strum`, never written by hand).
    pub const ALL: &'static [ProblemCode] = <Self as strum::VariantArray>::VARIANTS;

    /// The stable kebab-case code: the last segment of the type URI, also used in metrics and
    /// the audit.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::UnknownLicensee => "unknown-licensee",
            Self::UnknownDataset => "unknown-dataset",
            Self::DatasetClosed => "dataset-closed",
            Self::ScenarioMissing => "scenario-missing",
            Self::NoLicence => "no-licence",
            Self::ScenarioNotLicensed => "scenario-not-licensed",
            Self::LicenceSuspended => "licence-suspended",
            Self::LicenceRevoked => "licence-revoked",
            Self::LicenceExpired => "licence-expired",
            Self::LicenceNotYetValid => "licence-not-yet-valid",
            Self::LicenseeRestricted => "licensee-restricted",
            Self::FieldNotAllowed => "field-not-allowed",
            Self::FieldNotFilterable => "field-not-filterable",
            Self::AggregateOnly => "aggregate-only",
            Self::AggregateNotLicensed => "aggregate-not-licensed",
            Self::FieldNotAggregable => "field-not-aggregable",
            Self::TooManyGroups => "too-many-groups",
            Self::PrivacyBudgetExhausted => "privacy-budget-exhausted",
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
            Self::Forbidden => "forbidden",
            Self::Invalid => "invalid",
            Self::Conflict => "conflict",
            Self::FusionConflict => "fusion-conflict",
            Self::UnknownGateway => "unknown-gateway",
            Self::CsrfRejected => "csrf-rejected",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            Self::Unauthenticated => 401,
            Self::UnknownLicensee => 403,
            Self::UnknownDataset => 404,
            Self::DatasetClosed => 503,
            Self::ScenarioMissing => 400,
            Self::NoLicence => 403,
            Self::ScenarioNotLicensed => 403,
            Self::LicenceSuspended => 403,
            Self::LicenceRevoked => 403,
            Self::LicenceExpired => 403,
            Self::LicenceNotYetValid => 403,
            Self::LicenseeRestricted => 403,
            Self::FieldNotAllowed => 400,
            Self::FieldNotFilterable => 400,
            Self::AggregateOnly => 403,
            Self::AggregateNotLicensed => 403,
            Self::FieldNotAggregable => 400,
            Self::TooManyGroups => 400,
            Self::PrivacyBudgetExhausted => 429,
            Self::RateLimited => 429,
            Self::QuotaExhausted => 429,
            Self::UpstreamFailed => 502,
            Self::UpstreamTimeout => 504,
            Self::BadRequest => 400,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::HeadersTooLarge => 431,
            Self::Unavailable => 503,
            Self::RegistryStale => 503,
            Self::CertificateRevoked => 403,
            Self::Forbidden => 403,
            Self::Invalid => 422,
            Self::Conflict => 409,
            Self::FusionConflict => 409,
            Self::UnknownGateway => 403,
            Self::CsrfRejected => 403,
            Self::Internal => 500,
        }
    }

    /// The short human title of the problem type.
    pub fn title(self) -> &'static str {
        match self {
            Self::Unauthenticated => "Client certificate required",
            Self::UnknownLicensee => "Certificate carries no licensee identity",
            Self::UnknownDataset => "Unknown dataset",
            Self::DatasetClosed => "Dataset closed",
            Self::ScenarioMissing => "Scenario not declared",
            Self::NoLicence => "No licence",
            Self::ScenarioNotLicensed => "Scenario not licensed",
            Self::LicenceSuspended => "Licence suspended",
            Self::LicenceRevoked => "Licence revoked",
            Self::LicenceExpired => "Licence expired",
            Self::LicenceNotYetValid => "Licence not yet valid",
            Self::LicenseeRestricted => "Licensee restricted",
            Self::FieldNotAllowed => "Field not allowed",
            Self::FieldNotFilterable => "Field cannot be filtered or ordered on",
            Self::AggregateOnly => "Aggregate-only licence",
            Self::AggregateNotLicensed => "Aggregates not licensed",
            Self::FieldNotAggregable => "Field cannot be aggregated",
            Self::TooManyGroups => "Too many groups",
            Self::PrivacyBudgetExhausted => "Privacy budget exhausted",
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
            Self::Forbidden => "Not allowed for this identity",
            Self::Invalid => "Validation failed",
            Self::Conflict => "Conflict",
            Self::FusionConflict => "Grant would complete a fusion rule",
            Self::UnknownGateway => "Gateway not registered",
            Self::CsrfRejected => "Console form not accepted",
            Self::Internal => "Internal error",
        }
    }

    /// The RFC 9457 `type` URI: [`TYPE_BASE`] followed by the code.
    pub fn type_uri(self) -> String {
        format!("{TYPE_BASE}{}", self.code())
    }
}

/// A string that is not one of sluice's problem codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown problem code {0:?}")]
pub struct UnknownProblemCode(pub String);

impl FromStr for ProblemCode {
    type Err = UnknownProblemCode;

    /// Parses a code exactly as [`ProblemCode::code`] writes it (case-sensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.code() == s)
            .ok_or_else(|| UnknownProblemCode(s.to_owned()))
    }
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for ProblemCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for ProblemCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Today's gateway `ALL_CODES` with the statuses and titles `ProblemKind` gives them
    /// (policy codes through `ProblemKind::Policy`), in that order, plus `field-not-filterable`
    /// (the query interface, issue 10) after `field-not-allowed` and the data sandbox's codes
    /// (issue 13) after `aggregate-only`.
    const GATEWAY: &[(&str, u16, &str)] = &[
        ("unauthenticated", 401, "Client certificate required"),
        (
            "unknown-licensee",
            403,
            "Certificate carries no licensee identity",
        ),
        ("unknown-dataset", 404, "Unknown dataset"),
        ("dataset-closed", 503, "Dataset closed"),
        ("scenario-missing", 400, "Scenario not declared"),
        ("no-licence", 403, "No licence"),
        ("scenario-not-licensed", 403, "Scenario not licensed"),
        ("licence-suspended", 403, "Licence suspended"),
        ("licence-revoked", 403, "Licence revoked"),
        ("licence-expired", 403, "Licence expired"),
        ("licence-not-yet-valid", 403, "Licence not yet valid"),
        ("licensee-restricted", 403, "Licensee restricted"),
        ("field-not-allowed", 400, "Field not allowed"),
        (
            "field-not-filterable",
            400,
            "Field cannot be filtered or ordered on",
        ),
        ("aggregate-only", 403, "Aggregate-only licence"),
        ("aggregate-not-licensed", 403, "Aggregates not licensed"),
        ("field-not-aggregable", 400, "Field cannot be aggregated"),
        ("too-many-groups", 400, "Too many groups"),
        ("privacy-budget-exhausted", 429, "Privacy budget exhausted"),
        ("rate-limited", 429, "Rate limit exceeded"),
        ("quota-exhausted", 429, "Daily quota exhausted"),
        ("upstream-failed", 502, "Upstream failed"),
        ("upstream-timeout", 504, "Upstream timed out"),
        ("bad-request", 400, "Bad request"),
        ("not-found", 404, "Not found"),
        ("method-not-allowed", 405, "Method not allowed"),
        ("headers-too-large", 431, "Request headers too large"),
        ("unavailable", 503, "Service unavailable"),
        ("registry-stale", 503, "Licence snapshot too old"),
        ("certificate-revoked", 403, "Certificate revoked"),
    ];

    /// Today's `RegistryProblem` codes with their statuses and titles.
    const REGISTRY: &[(&str, u16, &str)] = &[
        ("unauthenticated", 401, "Client certificate required"),
        ("forbidden", 403, "Not allowed for this identity"),
        ("bad-request", 400, "Bad request"),
        ("invalid", 422, "Validation failed"),
        ("not-found", 404, "Not found"),
        ("conflict", 409, "Conflict"),
        ("fusion-conflict", 409, "Grant would complete a fusion rule"),
        ("method-not-allowed", 405, "Method not allowed"),
        ("unknown-gateway", 403, "Gateway not registered"),
        ("csrf-rejected", 403, "Console form not accepted"),
        ("internal", 500, "Internal error"),
    ];

    #[test]
    fn every_code_of_today_keeps_its_status_and_title() {
        for &(code, status, title) in GATEWAY.iter().chain(REGISTRY) {
            let c: ProblemCode = code.parse().unwrap();
            assert_eq!((c.code(), c.status(), c.title()), (code, status, title), "{code}");
            assert_eq!(c.type_uri(), format!("https://sluice.dev/problems/{code}"));
        }
        let gateway: Vec<&str> = GATEWAY.iter().map(|g| g.0).collect();
        let first: Vec<&str> = ProblemCode::ALL[..GATEWAY.len()]
            .iter()
            .map(|c| c.code())
            .collect();
        assert_eq!(first, gateway, "the gateway's codes come first, in today's order");
        let known: HashSet<&str> = GATEWAY.iter().chain(REGISTRY).map(|g| g.0).collect();
        let all: HashSet<&str> = ProblemCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(all, known, "no code beyond today's");
    }

    #[test]
    fn codes_are_unique_kebab_case_and_round_trip() {
        let mut seen = HashSet::new();
        for &c in ProblemCode::ALL {
            let code = c.code();
            assert!(seen.insert(code), "duplicate {code}");
            assert!(!code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'));
            assert_eq!(code.parse::<ProblemCode>(), Ok(c));
            assert_eq!(c.to_string(), code);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{code}\""));
            assert_eq!(serde_json::from_str::<ProblemCode>(&json).unwrap(), c);
        }
        assert_eq!(ProblemCode::ALL.len(), 37);
    }

    #[test]
    fn unknown_codes_are_refused() {
        for bad in ["", "Refused", "Not-Found", "not_found", " not-found", "nope"] {
            assert_eq!(bad.parse::<ProblemCode>(), Err(UnknownProblemCode(bad.into())));
        }
        assert!(serde_json::from_str::<ProblemCode>("\"nope\"").is_err());
        assert!(serde_json::from_str::<ProblemCode>("3").is_err());
    }
}
