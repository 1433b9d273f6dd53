//! One audit record: what was asked, by whom, what was decided and what left the gateway.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `prev` of the first record ever: 64 zeros.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One request as audited.
///
/// Fill it with struct-update syntax from [`Default`] and hand it to
/// [`AuditLog::append`](super::AuditLog::append); the writer sets the chain fields (`seq`,
/// `prev`, `hash`), stamps `time` when it is empty and normalises a given `time` to UTC with
/// milliseconds:
///
/// ```
/// use sluice_agency::audit::AuditRecord;
/// let r = AuditRecord {
///     request_id: "r-1".into(),
///     decision: "deny".into(),
///     reason: Some("no-licence".into()),
///     status: 403,
///     method: "GET".into(),
///     path: "/v1/datasets/x/records".into(),
///     ..AuditRecord::default()
/// };
/// assert_eq!(r.seq, 0);
/// ```
///
/// The field order here is the order on disk and part of the hashed serialisation: do not
/// reorder fields, and add new fields only before `prev`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Global sequence number, contiguous, starting at 1 (set by the writer).
    #[serde(default)]
    pub seq: u64,
    /// When the record was written, RFC 3339 UTC with milliseconds (stamped by the writer if
    /// empty).
    #[serde(default)]
    pub time: String,
    /// The request's id (also sent to the client).
    pub request_id: String,
    /// The licensee, once identified.
    pub licensee: Option<String>,
    /// SHA-256 (hex) of the client certificate.
    pub cert_fingerprint: Option<String>,
    /// Serial of the client certificate.
    pub cert_serial: Option<String>,
    /// The licence the request was decided under.
    pub licence: Option<String>,
    /// The declared scenario.
    pub scenario: Option<String>,
    /// The dataset asked for.
    pub dataset: Option<String>,
    /// `"allow"` or `"deny"`.
    pub decision: String,
    /// Stable refusal (or abort) code such as `no-licence`, `rate-limited`.
    pub reason: Option<String>,
    /// HTTP status sent.
    pub status: u16,
    /// Records sent.
    pub records_out: u64,
    /// Field values sent.
    pub fields_emitted: u64,
    /// Field values masked or withheld.
    pub fields_masked: u64,
    /// Body bytes sent.
    pub bytes_out: u64,
    /// Time from request to last byte, in milliseconds.
    pub latency_ms: f64,
    /// The client's socket address.
    pub client_addr: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Request path (without query).
    pub path: String,
    /// The record keys the response served, as a Bloom filter
    /// ([`sluice_policy::served::ServedDigest::encode`]); absent when the dataset declares no
    /// record key or no record went out. `sluice trace` reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<String>,
    /// Differential-privacy loss (ε) an aggregate answer spent; absent when none (a repeated
    /// question answered from the day's cache spends none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    /// Records dropped for an upheld objection ([`sluice_policy::objection`]); absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub suppressed: u64,
    /// Records sent marked disputed by an upheld correction; absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub disputed: u64,
    /// `hash` of the previous record, or [`GENESIS_PREV`] (set by the writer).
    #[serde(default)]
    pub prev: String,
    /// SHA-256 (hex) of this record's canonical serialisation without `hash` (set by the
    /// writer).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Default for AuditRecord {
    /// An empty record; `decision` defaults to `"deny"` so a forgotten field fails safe.
    fn default() -> Self {
        AuditRecord {
            seq: 0,
            time: String::new(),
            request_id: String::new(),
            licensee: None,
            cert_fingerprint: None,
            cert_serial: None,
            licence: None,
            scenario: None,
            dataset: None,
            decision: "deny".to_owned(),
            reason: None,
            status: 0,
            records_out: 0,
            fields_emitted: 0,
            fields_masked: 0,
            bytes_out: 0,
            latency_ms: 0.0,
            client_addr: None,
            method: String::new(),
            path: String::new(),
            served: None,
            epsilon: None,
            suppressed: 0,
            disputed: 0,
            prev: String::new(),
            hash: String::new(),
        }
    }
}

impl AuditRecord {
    /// The record's time, parsed (`None` if missing or not RFC 3339).
    pub fn timestamp(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(&self.time, &Rfc3339).ok()
    }

    /// Checks what the writer cannot fix: the decision and finite numbers.
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.decision != "allow" && self.decision != "deny" {
            return Err(format!(
                "decision must be \"allow\" or \"deny\", not {:?}",
                self.decision
            ));
        }
        if !self.latency_ms.is_finite() {
            return Err("latency_ms is not a finite number".to_owned());
        }
        if !self.time.is_empty() && self.timestamp().is_none() {
            return Err(format!("time {:?} is not RFC 3339", self.time));
        }
        Ok(())
    }
}

/// Formats a time as RFC 3339 UTC with milliseconds, e.g. `2025-03-01T10:00:00.123Z`.
pub(super) fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format_is_rfc3339_with_millis() {
        let t = time::macros::datetime!(2025-03-01 10:00:05.123456 +02:00);
        let s = format_time(t);
        assert_eq!(s, "2025-03-01T08:00:05.123Z");
        assert_eq!(
            OffsetDateTime::parse(&s, &Rfc3339).unwrap(),
            time::macros::datetime!(2025-03-01 08:00:05.123 UTC)
        );
    }

    #[test]
    fn validation() {
        assert!(AuditRecord::default().validate().is_ok());
        let bad = AuditRecord {
            decision: "maybe".into(),
            ..AuditRecord::default()
        };
        assert!(bad.validate().is_err());
        let bad = AuditRecord {
            latency_ms: f64::NAN,
            ..AuditRecord::default()
        };
        assert!(bad.validate().is_err());
        let bad = AuditRecord {
            time: "yesterday".into(),
            ..AuditRecord::default()
        };
        assert!(bad.validate().is_err());
    }
}
