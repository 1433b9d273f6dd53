//! Emergency drill reports: what `sluice admin drill` measured, kept for auditors.
//!
//! A drill closes a dataset (or all conditional data) through the snapshot feed, probes every
//! active gateway registered with a `url` as a drill licensee until each refuses with
//! `dataset-closed`, keeps the data closed a while, reopens it and probes until each serves
//! again. The command measures; the registry checks that a report is well formed and
//! consistent, records it (`POST /admin/drills`, admin change `drill.record`, which leaves
//! the snapshot revision alone) and lists them newest first (`GET /admin/drills`).
//!
//! A gateway *complied* when it refused with `dataset-closed` within the bound after the switch
//! and served again within the bound after the reopening: `complied` is exactly
//! `closed_after_ms` and `reopened_after_ms` both given, each at most `bound_ms`.

use super::action::Action;
use super::problem::{Problem, ProblemCode as P};
use super::request::ApiBody;
use super::request::{body, json_response, valid_id};
use super::snapshot::Distributor;
use super::store::{Change, Store};
use http::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use time::OffsetDateTime;

/// Largest `bound_ms` (and `closed_after_ms`, `reopened_after_ms`): an hour.
pub const MAX_BOUND_MS: u64 = 3_600_000;
/// Largest `duration_ms`: a day.
pub const MAX_DURATION_MS: u64 = 86_400_000;
/// Most gateways in one report.
pub const MAX_GATEWAYS: usize = 10_000;
/// Longest `error`, in characters.
pub const MAX_ERROR_CHARS: usize = 2_000;

/// What a drill closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DrillScope {
    /// One dataset (`POST /admin/datasets/<id>/close`).
    Dataset,
    /// All conditional data (`POST /admin/datasets/close-all`).
    AllConditional,
}

impl DrillScope {
    /// `dataset` or `all-conditional`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dataset => "dataset",
            Self::AllConditional => "all-conditional",
        }
    }
}

/// One gateway's part of a drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillGateway {
    /// The registered gateway.
    pub id: String,
    /// Where it was probed; `null` when it has no registered url (not probed).
    #[serde(default)]
    pub url: Option<String>,
    /// Milliseconds from the switch to its first `dataset-closed` refusal; `null` when none
    /// came within the bound.
    #[serde(default)]
    pub closed_after_ms: Option<u64>,
    /// Milliseconds from the reopening to its first served page; `null` when none came within
    /// the bound.
    #[serde(default)]
    pub reopened_after_ms: Option<u64>,
    /// Refused within the bound and served again within the bound.
    pub complied: bool,
    /// Why it did not comply, or what went wrong probing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /admin/drills`: a drill's report. The registry adds `admin` (from the certificate)
/// and `recorded_at` when it records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillReport {
    /// Chosen by the command; the reason of the drill's close and open changes is
    /// `drill <id>`.
    pub id: String,
    /// When the data was closed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When the last probe ended (RFC 3339), not before `started_at`.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// What was closed.
    pub scope: DrillScope,
    /// The dataset probed (and, for scope `dataset`, closed): a registered one.
    pub dataset: String,
    /// How long each gateway had to refuse, and to serve again (milliseconds).
    pub bound_ms: u64,
    /// How long the data stayed closed at least after the refusals (milliseconds).
    pub duration_ms: u64,
    /// Every active registered gateway, probed or not.
    pub gateways: Vec<DrillGateway>,
    /// Every gateway complied.
    pub complied_all: bool,
    /// What went wrong with the drill as a whole (interrupted, reopening failed…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DrillReport {
    /// The gateways that did not comply, in report order.
    pub fn not_complied(&self) -> Vec<&str> {
        self.gateways
            .iter()
            .filter(|g| !g.complied)
            .map(|g| g.id.as_str())
            .collect()
    }

    /// `started_at` in unix milliseconds (the order of `GET /admin/drills`).
    pub fn started_ms(&self) -> i64 {
        i64::try_from(self.started_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }
}

fn too_long(s: &Option<String>, max: usize) -> bool {
    s.as_deref().is_some_and(|s| s.chars().count() > max)
}

/// Checks what the body's types cannot: the ranges `openapi.json` declares (`bad-request`
/// outside them) and the rules it states in words (`invalid`): identifiers, `finished_at`
/// not before `started_at`, gateway ids unique, each time at most `bound_ms`, `complied`
/// exactly when both times are given, `complied_all` exactly when every gateway complied.
/// Returns the report with its times in UTC.
pub fn check(mut r: DrillReport) -> Result<DrillReport, Problem> {
    let bad = |m: String| Problem::new(P::BadRequest, m);
    let invalid = |m: String| Problem::new(P::Invalid, m);
    if !(1..=MAX_BOUND_MS).contains(&r.bound_ms) {
        return Err(bad(format!("bound_ms must be 1 to {MAX_BOUND_MS}")));
    }
    if r.duration_ms > MAX_DURATION_MS {
        return Err(bad(format!("duration_ms must be at most {MAX_DURATION_MS}")));
    }
    if r.gateways.is_empty() || r.gateways.len() > MAX_GATEWAYS {
        return Err(bad(format!("gateways must list 1 to {MAX_GATEWAYS}")));
    }
    if too_long(&r.error, MAX_ERROR_CHARS) {
        return Err(bad(format!("error must be at most {MAX_ERROR_CHARS} characters")));
    }
    for (i, g) in r.gateways.iter().enumerate() {
        if [g.closed_after_ms, g.reopened_after_ms]
            .iter()
            .flatten()
            .any(|ms| *ms > MAX_BOUND_MS)
        {
            return Err(bad(format!(
                "gateways[{i}]: times must be at most {MAX_BOUND_MS}"
            )));
        }
        if too_long(&g.error, MAX_ERROR_CHARS) {
            return Err(bad(format!(
                "gateways[{i}].error must be at most {MAX_ERROR_CHARS} characters"
            )));
        }
        if too_long(&g.url, super::parties::MAX_URL_CHARS) {
            return Err(bad(format!(
                "gateways[{i}].url must be at most {} characters",
                super::parties::MAX_URL_CHARS
            )));
        }
    }
    valid_id(&r.id)?;
    valid_id(&r.dataset)?;
    if r.finished_at < r.started_at {
        return Err(invalid("finished_at must not be before started_at".into()));
    }
    let mut seen = BTreeSet::new();
    for (i, g) in r.gateways.iter().enumerate() {
        valid_id(&g.id)?;
        if !seen.insert(g.id.as_str()) {
            return Err(invalid(format!("gateway {} is listed twice", g.id)));
        }
        if [g.closed_after_ms, g.reopened_after_ms]
            .iter()
            .flatten()
            .any(|ms| *ms > r.bound_ms)
        {
            return Err(invalid(format!(
                "gateways[{i}]: a time over bound_ms ({}) was not within the bound",
                r.bound_ms
            )));
        }
        let measured = g.closed_after_ms.is_some() && g.reopened_after_ms.is_some();
        if g.complied != measured {
            return Err(invalid(format!(
                "gateways[{i}]: complied must be true exactly when closed_after_ms and \
                 reopened_after_ms are both given"
            )));
        }
    }
    if r.complied_all != r.gateways.iter().all(|g| g.complied) {
        return Err(invalid(
            "complied_all must be true exactly when every gateway complied".into(),
        ));
    }
    r.started_at = r.started_at.to_offset(time::UtcOffset::UTC);
    r.finished_at = r.finished_at.to_offset(time::UtcOffset::UTC);
    Ok(r)
}

/// Checks that the report names a registered dataset and registered gateways (`invalid`).
async fn check_references(store: &Store, r: &DrillReport) -> Result<(), Problem> {
    if !store.datasets().await?.iter().any(|d| d.spec.id == r.dataset) {
        return Err(Problem::new(P::Invalid, format!("unknown dataset {}", r.dataset)));
    }
    let known: BTreeSet<String> = store.gateways().await?.into_iter().map(|g| g.id).collect();
    if let Some(g) = r.gateways.iter().find(|g| !known.contains(&g.id)) {
        return Err(Problem::new(
            P::Invalid,
            format!("gateway {} is not registered", g.id),
        ));
    }
    Ok(())
}

/// `GET /admin/drills` (newest first) and `POST /admin/drills`.
pub async fn admin(
    store: &Store,
    dist: &Distributor,
    admin: &str,
    method: &Method,
    req: Request<ApiBody>,
) -> Result<Response<sluice_net::body::RespBody>, Problem> {
    if method == Method::GET {
        return Ok(json_response(StatusCode::OK, &store.drills().await?, None));
    }
    if method != Method::POST {
        return Err(super::routes::not_routed(method, &["admin", "drills"]));
    }
    let report = check(body::<DrillReport>(req).await?)?;
    check_references(store, &report).await?;
    let reason = format!(
        "drill {}: {} of {} gateways complied",
        report.id,
        report.gateways.iter().filter(|g| g.complied).count(),
        report.gateways.len()
    );
    let doc = match serde_json::to_value(&report) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(Problem::new(P::Internal, "the report could not be stored")),
    };
    let ch = Change {
        admin,
        action: Action::DrillRecord,
        target: &report.id,
        reason: &reason,
    };
    let (rec, rev) = store.add_drill(&report.id, report.started_ms(), doc, &ch).await?;
    dist.advance(rev.revision);
    Ok(json_response(StatusCode::CREATED, &rec, Some(rev.revision)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn report() -> serde_json::Value {
        json!({
            "id": "drill-1", "started_at": "2026-03-01T10:00:00+08:00",
            "finished_at": "2026-03-01T02:00:01.5Z", "scope": "dataset",
            "dataset": "fire-hydrants", "bound_ms": 1000, "duration_ms": 100,
            "gateways": [
                { "id": "gw-a", "url": "https://a:1", "closed_after_ms": 20,
                  "reopened_after_ms": 30, "complied": true },
                { "id": "gw-b", "url": null, "closed_after_ms": null, "reopened_after_ms": null,
                  "complied": false, "error": "not probed: no url registered" },
            ],
            "complied_all": false,
        })
    }

    fn checked(v: serde_json::Value) -> Result<DrillReport, (P, String)> {
        let r: DrillReport = serde_json::from_value(v).map_err(|e| (P::BadRequest, e.to_string()))?;
        check(r).map_err(|p| (p.code, p.detail))
    }

    #[test]
    fn a_consistent_report_passes_with_its_times_in_utc() {
        let r = checked(report()).unwrap();
        assert_eq!(r.started_at.offset(), time::UtcOffset::UTC);
        assert_eq!(r.not_complied(), ["gw-b"]);
        let out = serde_json::to_value(&r).unwrap();
        assert_eq!(out["started_at"], "2026-03-01T02:00:00Z");
        assert_eq!(out["scope"], "dataset");
        assert_eq!(out["gateways"][1]["url"], serde_json::Value::Null);
        assert!(out.get("error").is_none());
        // Members left out are null, and null is accepted where the document says nullable.
        let mut v = report();
        v["gateways"][1] = json!({ "id": "gw-b", "complied": false, "error": null });
        v["error"] = serde_json::Value::Null;
        assert!(checked(v).is_ok());
    }

    #[test]
    fn breaking_the_document_is_bad_request_and_breaking_a_stated_rule_is_invalid() {
        let with = |path: &[&str], value: serde_json::Value| {
            let mut v = report();
            let mut at = &mut v;
            for p in &path[..path.len() - 1] {
                at = match p.parse::<usize>() {
                    Ok(i) => &mut at[i],
                    Err(_) => &mut at[*p],
                };
            }
            at[path[path.len() - 1]] = value;
            checked(v).map(|_| ()).map_err(|(code, _)| code)
        };
        for (path, value) in [
            (&["bound_ms"][..], json!(0)),
            (&["bound_ms"], json!(MAX_BOUND_MS + 1)),
            (&["bound_ms"], json!(-1)),
            (&["duration_ms"], json!(MAX_DURATION_MS + 1)),
            (&["gateways"], json!([])),
            (&["scope"], json!("everything")),
            (&["started_at"], json!("yesterday")),
            (&["extra"], json!(1)),
            (&["gateways", "0", "extra"], json!(1)),
            (&["gateways", "0", "closed_after_ms"], json!(MAX_BOUND_MS + 1)),
            (&["error"], json!("x".repeat(MAX_ERROR_CHARS + 1))),
            (&["gateways", "1", "url"], json!("h".repeat(2049))),
        ] {
            assert_eq!(
                with(path, value.clone()),
                Err(P::BadRequest),
                "{path:?} = {value}"
            );
        }
        for (path, value) in [
            (&["id"][..], json!("a b")),
            (&["dataset"], json!("")),
            (&["finished_at"], json!("2026-03-01T01:59:59Z")),
            (&["gateways", "1", "id"], json!("gw-a")),
            (&["gateways", "0", "closed_after_ms"], json!(1001)),
            (&["gateways", "0", "reopened_after_ms"], json!(null)),
            (&["gateways", "1", "complied"], json!(true)),
            (&["complied_all"], json!(true)),
        ] {
            assert_eq!(with(path, value.clone()), Err(P::Invalid), "{path:?} = {value}");
        }
        // The bound itself is within the bound.
        assert_eq!(with(&["gateways", "0", "closed_after_ms"], json!(1000)), Ok(()));
    }
}
