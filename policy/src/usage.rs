//! The usage report contract: the body of `POST /v1/usage` a gateway sends the registry, and
//! the registry's answer.
//!
//! A gateway counts requests, records delivered, refusals (with their problem codes) and masked
//! field values per licensee, dataset and licence and reports them for a period; the registry files them under the UTC month of `from` and is
//! idempotent by gateway and `report_id`. On the wire both times are RFC 3339 in UTC with whole
//! seconds (`2026-11-27T05:00:00Z`); any RFC 3339 offset is accepted on reading.
//!
//! ```json
//! {"report_id":"0192f0c4-8a51-7c35-9d7e-1a2b3c4d5e6f",
//!  "from":"2026-11-27T05:00:00Z","until":"2026-11-27T05:01:00Z",
//!  "counts":[{"licensee":"acme","dataset":"fire-hydrants","licence":"lic-1",
//!             "requests":12,"records":1200,"refusals":1}]}
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Most count rows in one report.
pub const MAX_ROWS: usize = 10_000;

/// Longest `report_id`, in characters (Unicode scalar values, as JSON Schema's `maxLength`
/// counts them).
pub const MAX_REPORT_ID_LEN: usize = 128;

/// Most problem codes in one row's `refusals_by_code`.
pub const MAX_REFUSAL_CODES: usize = 128;

/// Longest problem code in `refusals_by_code`.
pub const MAX_CODE_LEN: usize = 64;

/// One row of a report: what a gateway counted for a licensee, dataset and licence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageCount {
    /// Licensee id.
    pub licensee: String,
    /// Dataset id (the gateway writes `-` for requests naming none).
    pub dataset: String,
    /// Licence id; `null` for refusals before a licence was found (always written, may be
    /// left out on reading).
    #[serde(default)]
    pub licence: Option<String>,
    /// Requests attributed to the licensee (refused ones included).
    pub requests: u64,
    /// Records delivered.
    pub records: u64,
    /// Requests refused.
    pub refusals: u64,
    /// Differential-privacy loss spent by aggregate answers, in millionths of ε (left out
    /// when zero).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epsilon_micros: u64,
    /// The refusals by problem code (`scenario-not-licensed` → 3), at most
    /// [`MAX_REFUSAL_CODES`] codes of `[a-z0-9-]`, 1 to [`MAX_CODE_LEN`] characters (left out
    /// when empty).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refusals_by_code: BTreeMap<String, u64>,
    /// Field values of the delivered records that were masked by a rule or dropped because the
    /// licence does not grant them (the masker's `fields_masked + fields_dropped`; left out
    /// when zero).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub masked_fields: u64,
}

/// Whether `code` has the shape of a problem code: `[a-z0-9-]`, 1 to [`MAX_CODE_LEN`]
/// characters.
pub fn is_problem_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `POST /v1/usage`: one gateway's counts for a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    /// Chosen by the gateway, unique per report (a UUID) and kept across retries; a repeat is
    /// not counted twice.
    pub report_id: String,
    /// Start of the period; its UTC month is the month the counts belong to.
    #[serde(with = "utc_seconds")]
    pub from: OffsetDateTime,
    /// End of the period.
    #[serde(with = "utc_seconds")]
    pub until: OffsetDateTime,
    /// The counts.
    pub counts: Vec<UsageCount>,
}

/// Why the registry refuses a report that parsed. The messages are part of the registry's
/// problem detail (`invalid` for [`UsageReportError::UntilBeforeFrom`], `bad-request` otherwise).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageReportError {
    /// `report_id` blank or longer than [`MAX_REPORT_ID_LEN`].
    #[error("report_id must be 1 to 128 characters")]
    ReportId,
    /// `until` before `from`.
    #[error("until must not be before from")]
    UntilBeforeFrom,
    /// More than [`MAX_ROWS`] rows.
    #[error("{0} count rows; at most {MAX_ROWS} per report")]
    TooManyRows(usize),
    /// A row with a blank licensee or dataset.
    #[error("counts[{0}]: licensee and dataset must not be empty")]
    Unnamed(usize),
    /// A row whose licence is a blank string.
    #[error("counts[{0}]: licence must be null or a licence id")]
    BlankLicence(usize),
    /// A row with a count the store cannot hold (over `i64::MAX`).
    #[error("counts[{0}]: count too large")]
    CountTooLarge(usize),
    /// A row with more than [`MAX_REFUSAL_CODES`] problem codes.
    #[error("counts[{0}]: at most {MAX_REFUSAL_CODES} refusal codes")]
    TooManyCodes(usize),
    /// A row whose `refusals_by_code` names something that is not a problem code.
    #[error("counts[{0}]: refusal code {1:?} must be [a-z0-9-], 1 to {MAX_CODE_LEN} characters")]
    RefusalCode(usize, String),
}

/// Sums over the rows of a report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageTotals {
    /// Requests.
    pub requests: u64,
    /// Records delivered.
    pub records: u64,
    /// Refusals.
    pub refusals: u64,
}

impl UsageReport {
    /// A report with `report_id` of `counts` for the period `from`..`until`. The times are
    /// taken to UTC and cut to whole seconds, as they go on the wire (the caller reads the
    /// clock and makes the id).
    pub fn new(
        report_id: impl Into<String>,
        from: OffsetDateTime,
        until: OffsetDateTime,
        counts: Vec<UsageCount>,
    ) -> Self {
        Self {
            report_id: report_id.into(),
            from: utc_whole_seconds(from),
            until: utc_whole_seconds(until),
            counts,
        }
    }

    /// The UTC month of `from`, `YYYY-MM`.
    pub fn month(&self) -> String {
        let f = self.from.to_offset(UtcOffset::UTC);
        format!("{:04}-{:02}", f.year(), u8::from(f.month()))
    }

    /// `from` in UTC, RFC 3339 (fractional seconds kept if the report had them).
    pub fn from_rfc3339(&self) -> String {
        utc(self.from)
    }

    /// `until` in UTC, RFC 3339 (fractional seconds kept if the report had them).
    pub fn until_rfc3339(&self) -> String {
        utc(self.until)
    }

    /// Sums over all rows (saturating).
    pub fn total(&self) -> UsageTotals {
        self.counts
            .iter()
            .fold(UsageTotals::default(), |t, c| UsageTotals {
                requests: t.requests.saturating_add(c.requests),
                records: t.records.saturating_add(c.records),
                refusals: t.refusals.saturating_add(c.refusals),
            })
    }

    /// Checks what serde cannot: a report id, `until` not before `from`, at most
    /// [`MAX_ROWS`] rows, named licensees, datasets and licences, counts that fit the store
    /// (`i64`), refusal codes shaped like problem codes.
    pub fn validate(&self) -> Result<(), UsageReportError> {
        if self.report_id.trim().is_empty() || self.report_id.chars().count() > MAX_REPORT_ID_LEN {
            return Err(UsageReportError::ReportId);
        }
        if self.until < self.from {
            return Err(UsageReportError::UntilBeforeFrom);
        }
        if self.counts.len() > MAX_ROWS {
            return Err(UsageReportError::TooManyRows(self.counts.len()));
        }
        let max = i64::MAX.unsigned_abs();
        for (i, c) in self.counts.iter().enumerate() {
            if c.licensee.trim().is_empty() || c.dataset.trim().is_empty() {
                return Err(UsageReportError::Unnamed(i));
            }
            if c.licence.as_deref().is_some_and(|l| l.trim().is_empty()) {
                return Err(UsageReportError::BlankLicence(i));
            }
            if [
                c.requests,
                c.records,
                c.refusals,
                c.epsilon_micros,
                c.masked_fields,
            ]
            .iter()
            .chain(c.refusals_by_code.values())
            .any(|n| *n > max)
            {
                return Err(UsageReportError::CountTooLarge(i));
            }
            if c.refusals_by_code.len() > MAX_REFUSAL_CODES {
                return Err(UsageReportError::TooManyCodes(i));
            }
            if let Some(code) = c.refusals_by_code.keys().find(|k| !is_problem_code(k)) {
                return Err(UsageReportError::RefusalCode(i, code.clone()));
            }
        }
        Ok(())
    }
}

/// The registry's answer to a usage report: `{"accepted": n, "duplicate": bool}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageAck {
    /// Count rows taken (0 for a repeat).
    pub accepted: u64,
    /// The registry already had this report id from this gateway.
    pub duplicate: bool,
}

impl UsageAck {
    /// The answer to `report`: all its rows taken when it is new, none when `duplicate`.
    pub fn for_report(report: &UsageReport, duplicate: bool) -> Self {
        Self {
            accepted: if duplicate {
                0
            } else {
                u64::try_from(report.counts.len()).unwrap_or(u64::MAX)
            },
            duplicate,
        }
    }
}

fn utc(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC).format(&Rfc3339).unwrap_or_default()
}

fn utc_whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Report times on the wire: written as RFC 3339 UTC whole seconds, read as any RFC 3339.
mod utc_seconds {
    use super::utc_whole_seconds;
    use serde::{Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
        time::serde::rfc3339::serialize(&utc_whole_seconds(*t), serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OffsetDateTime, D::Error> {
        time::serde::rfc3339::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// What the gateway's reporter serialises today (`serde_json::to_string` of its
    /// `UsageReport`, rows in key order), byte for byte.
    const GATEWAY_JSON: &str = concat!(
        r#"{"report_id":"0192f0c4-8a51-7c35-9d7e-1a2b3c4d5e6f","from":"2026-11-27T05:00:00Z","#,
        r#""until":"2026-11-27T05:01:00Z","counts":["#,
        r#"{"licensee":"acme","dataset":"fire-hydrants","licence":null,"requests":1,"records":0,"refusals":1},"#,
        r#"{"licensee":"acme","dataset":"fire-hydrants","licence":"lic-1","requests":12,"records":1200,"refusals":1}"#,
        r#"]}"#
    );

    fn count(licence: Option<&str>, requests: u64, records: u64, refusals: u64) -> UsageCount {
        UsageCount {
            licensee: "acme".into(),
            dataset: "fire-hydrants".into(),
            licence: licence.map(str::to_owned),
            requests,
            records,
            refusals,
            epsilon_micros: 0,
            refusals_by_code: BTreeMap::new(),
            masked_fields: 0,
        }
    }

    fn gateway_report() -> UsageReport {
        UsageReport::new(
            "0192f0c4-8a51-7c35-9d7e-1a2b3c4d5e6f",
            datetime!(2026-11-27 05:00:00.25 UTC),
            datetime!(2026-11-27 05:01:00 UTC),
            vec![count(None, 1, 0, 1), count(Some("lic-1"), 12, 1200, 1)],
        )
    }

    /// The registry's test sample: a non-UTC `from`, a null licence.
    fn registry_sample() -> serde_json::Value {
        serde_json::json!({
            "report_id": "0192f0c4-8a51-7c35-9d7e-1a2b3c4d5e6f",
            "from": "2026-11-30T23:59:00-01:00", "until": "2026-12-01T01:00:00Z",
            "counts": [{ "licensee": "acme", "dataset": "d", "licence": null, "requests": 1, "records": 0, "refusals": 1 }],
        })
    }

    fn parsed(v: serde_json::Value) -> Result<UsageReport, String> {
        let r: UsageReport = serde_json::from_value(v).map_err(|e| e.to_string())?;
        r.validate().map_err(|e| e.to_string())?;
        Ok(r)
    }

    #[test]
    fn the_gateway_sends_what_it_sends_today() {
        let r = gateway_report();
        assert_eq!(serde_json::to_string(&r).unwrap(), GATEWAY_JSON);
        assert_eq!(r.from, datetime!(2026-11-27 05:00:00 UTC), "cut to whole seconds");
        // The report saved for a later start reads back equal, and writes the same bytes.
        let back: UsageReport = serde_json::from_str(GATEWAY_JSON).unwrap();
        assert_eq!(back, r);
        assert_eq!(serde_json::to_string(&back).unwrap(), GATEWAY_JSON);
        assert_eq!(
            r.total(),
            UsageTotals {
                requests: 13,
                records: 1200,
                refusals: 2
            }
        );
    }

    #[test]
    fn times_go_out_as_utc_whole_seconds() {
        let r = UsageReport::new(
            "r",
            datetime!(2026-11-30 23:59:00.999 -1),
            datetime!(2026-12-01 01:00:00 UTC),
            vec![],
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["from"], "2026-12-01T00:59:00Z");
        assert_eq!(v["until"], "2026-12-01T01:00:00Z");
        // Fields set by hand still go out in the wire form.
        let mut r = r;
        r.from = datetime!(2026-11-30 23:59:00.5 -1);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["from"], "2026-12-01T00:59:00Z");
    }

    #[test]
    fn the_registry_accepts_what_it_accepts_today() {
        assert!(parsed(serde_json::from_str(GATEWAY_JSON).unwrap()).is_ok());
        let r = parsed(registry_sample()).unwrap();
        assert_eq!(r.month(), "2026-12");
        assert_eq!(r.from_rfc3339(), "2026-12-01T00:59:00Z");
        assert_eq!(r.until_rfc3339(), "2026-12-01T01:00:00Z");
        assert_eq!(r.counts[0].licence, None);
        // A missing licence reads as null.
        let mut v = registry_sample();
        v["counts"][0].as_object_mut().unwrap().remove("licence");
        assert_eq!(parsed(v).unwrap().counts[0].licence, None);
        // Fractional seconds from elsewhere are kept for the store.
        let mut v = registry_sample();
        v["until"] = serde_json::json!("2026-12-01T01:00:00.5Z");
        assert_eq!(parsed(v).unwrap().until_rfc3339(), "2026-12-01T01:00:00.5Z");
    }

    #[test]
    fn bad_reports_are_refused_as_today() {
        for (path, v, want) in [
            (
                "until",
                serde_json::json!("2026-11-01T00:00:00Z"),
                "until must not be before from",
            ),
            (
                "report_id",
                serde_json::json!(""),
                "report_id must be 1 to 128 characters",
            ),
            (
                "report_id",
                serde_json::json!("  "),
                "report_id must be 1 to 128 characters",
            ),
            (
                "report_id",
                serde_json::json!("r".repeat(129)),
                "report_id must be 1 to 128 characters",
            ),
        ] {
            let mut b = registry_sample();
            b[path] = v;
            assert_eq!(parsed(b).unwrap_err(), want, "{path}");
        }
        let mut b = registry_sample();
        b["report_id"] = serde_json::json!("r".repeat(128));
        assert!(parsed(b).is_ok());
        // Issue 11, item 17: the length is in characters, as openapi.json's maxLength counts
        // (128 three-byte characters were refused as 384 bytes).
        let mut b = registry_sample();
        b["report_id"] = serde_json::json!("用".repeat(128));
        assert!(parsed(b).is_ok());
        for (field, v, want) in [
            (
                "licensee",
                serde_json::json!(""),
                Some("counts[0]: licensee and dataset must not be empty"),
            ),
            (
                "dataset",
                serde_json::json!(" "),
                Some("counts[0]: licensee and dataset must not be empty"),
            ),
            (
                "licence",
                serde_json::json!(" "),
                Some("counts[0]: licence must be null or a licence id"),
            ),
            (
                "requests",
                serde_json::json!(u64::MAX),
                Some("counts[0]: count too large"),
            ),
            (
                "refusals",
                serde_json::json!(i64::MAX as u64 + 1),
                Some("counts[0]: count too large"),
            ),
            (
                "epsilon_micros",
                serde_json::json!(i64::MAX as u64 + 1),
                Some("counts[0]: count too large"),
            ),
            (
                "masked_fields",
                serde_json::json!(i64::MAX as u64 + 1),
                Some("counts[0]: count too large"),
            ),
            (
                "refusals_by_code",
                serde_json::json!({ "forbidden": i64::MAX as u64 + 1 }),
                Some("counts[0]: count too large"),
            ),
            (
                "refusals_by_code",
                serde_json::json!({ "Forbidden": 1 }),
                Some(r#"counts[0]: refusal code "Forbidden" must be [a-z0-9-], 1 to 64 characters"#),
            ),
            (
                "refusals_by_code",
                serde_json::json!({ "": 1 }),
                Some(r#"counts[0]: refusal code "" must be [a-z0-9-], 1 to 64 characters"#),
            ),
            (
                "refusals_by_code",
                serde_json::Value::Object(
                    (0..=MAX_REFUSAL_CODES)
                        .map(|i| (format!("c{i}"), serde_json::json!(1)))
                        .collect(),
                ),
                Some("counts[0]: at most 128 refusal codes"),
            ),
            ("refusals_by_code", serde_json::json!({ "forbidden": -1 }), None),
            ("masked_fields", serde_json::json!(-1), None),
            ("requests", serde_json::json!(-1), None),
            ("records", serde_json::json!(1.5), None),
            ("refusals", serde_json::json!(null), None),
            ("extra", serde_json::json!(1), None),
        ] {
            let mut b = registry_sample();
            b["counts"][0][field] = v;
            let got = parsed(b);
            match want {
                Some(want) => assert_eq!(got.unwrap_err(), want, "{field}"),
                None => assert!(got.is_err(), "{field}"),
            }
        }
        let mut b = registry_sample();
        b["records"] = serde_json::json!(i64::MAX);
        assert!(parsed(b).is_err(), "unknown top-level field");
        let mut b = registry_sample();
        b["counts"][0]["records"] = serde_json::json!(i64::MAX);
        assert!(parsed(b).is_ok(), "i64::MAX fits the store");
        for bad_time in ["2026-11-27T05:00:00", "2026-11-27", "yesterday"] {
            let mut b = registry_sample();
            b["from"] = serde_json::json!(bad_time);
            assert!(parsed(b).is_err(), "{bad_time}");
        }
        let mut b = registry_sample();
        b["counts"] = serde_json::Value::Array(vec![b["counts"][0].clone(); MAX_ROWS + 1]);
        assert_eq!(
            parsed(b).unwrap_err(),
            "10001 count rows; at most 10000 per report"
        );
        let mut b = registry_sample();
        b["counts"] = serde_json::Value::Array(vec![b["counts"][0].clone(); MAX_ROWS]);
        assert!(parsed(b).is_ok());
    }

    /// Issue 14, item 9: refusals by problem code and masked field values travel with the
    /// counts, and are left out when there are none (the bytes above are unchanged).
    #[test]
    fn refusal_codes_and_masked_fields_round_trip() {
        let mut r = gateway_report();
        r.counts[1].refusals_by_code = BTreeMap::from([("scenario-not-licensed".to_owned(), 1)]);
        r.counts[1].masked_fields = 2400;
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains(
                r#""refusals":1,"refusals_by_code":{"scenario-not-licensed":1},"masked_fields":2400}"#
            ),
            "{json}"
        );
        let back: UsageReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        assert!(back.validate().is_ok());
        let mut v = registry_sample();
        v["counts"][0]["refusals_by_code"] =
            serde_json::json!({ "quota-exceeded": 1, "row-filter-2": i64::MAX });
        v["counts"][0]["masked_fields"] = serde_json::json!(i64::MAX);
        let r = parsed(v).unwrap();
        assert_eq!(r.counts[0].refusals_by_code["quota-exceeded"], 1);
        assert!(is_problem_code(&"a".repeat(MAX_CODE_LEN)));
        assert!(!is_problem_code(&"a".repeat(MAX_CODE_LEN + 1)));
        assert!(!is_problem_code("no_underscore"));
    }

    #[test]
    fn the_ack_is_the_registrys_answer() {
        let r = gateway_report();
        let json = |a: UsageAck| serde_json::to_string(&a).unwrap();
        assert_eq!(
            json(UsageAck::for_report(&r, false)),
            r#"{"accepted":2,"duplicate":false}"#
        );
        assert_eq!(
            json(UsageAck::for_report(&r, true)),
            r#"{"accepted":0,"duplicate":true}"#
        );
        let ack: UsageAck = serde_json::from_str(r#"{"accepted": 3, "duplicate": false}"#).unwrap();
        assert_eq!(
            ack,
            UsageAck {
                accepted: 3,
                duplicate: false
            }
        );
    }
}
