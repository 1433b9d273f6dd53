//! Usage counts: gateways report per-licence counts (`POST /v1/usage`, gateway certificate,
//! idempotent by `(gateway, report_id)`); administrators read monthly totals per licensee and
//! dataset (`GET /admin/usage?month=YYYY-MM`) and the reports made of them
//! ([`crate::report`]: `GET /reports/usage`, `sluice admin report usage|annual`).
//! Reports are not admin changes: they do not bump the revision.

use super::problem::{Problem, ProblemCode as P};
use super::request::ApiBody;
use super::request::{body_limited, json_response, query_str};
use super::store::Store;
pub use crate::model::UsageRow;
use http::{Request, Response, StatusCode};
use sluice_net::body::RespBody;
use sluice_net::identity::{Peer, PeerIdentity};
pub use sluice_policy::usage::{UsageAck, UsageCount, UsageReport, UsageReportError, MAX_ROWS};

/// Largest report body (10,000 rows of long identifiers fit).
const MAX_REPORT_BYTES: usize = 8 << 20;

/// Checks a `YYYY-MM` month.
pub fn valid_month(m: &str) -> bool {
    let b = m.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
        && matches!(
            &m[5..],
            "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12"
        )
}

/// The gateway id of a gateway certificate: `unauthenticated` without a certificate,
/// `forbidden` for any other (`what` names what the route takes, e.g. `usage reports`).
/// Whether the gateway is registered is the caller's check.
pub(crate) fn gateway_caller<'a>(caller: &'a PeerIdentity, what: &str) -> Result<&'a str, Problem> {
    match caller {
        PeerIdentity::Gateway(Peer { id, .. }) => Ok(id),
        PeerIdentity::None => Err(Problem::new(
            P::Unauthenticated,
            format!("{what} need a gateway certificate"),
        )),
        other => Err(Problem::new(
            P::Forbidden,
            format!("{what} come from gateways; the caller is {}", other.describe()),
        )),
    }
}

/// `POST /v1/usage` from a gateway certificate; the gateway id comes from the certificate.
pub async fn post(
    store: &Store,
    caller: &PeerIdentity,
    req: Request<ApiBody>,
) -> Result<Response<RespBody>, Problem> {
    let gateway = gateway_caller(caller, "usage reports")?;
    // Retired gateways may still deliver their last counts; unknown ones may not report.
    if store.gateway_retired(gateway).await?.is_none() {
        return Err(Problem::new(
            P::UnknownGateway,
            format!("gateway {gateway} is not registered"),
        ));
    }
    let report: UsageReport = body_limited(req, MAX_REPORT_BYTES).await?;
    // A report that breaks what `openapi.json` declares is a bad request; one that matches it
    // but ends before it starts, or names a refusal code not shaped like a problem code (no
    // OpenAPI 3.0 schema can constrain an object's keys), breaks a rule the document states in
    // words: invalid.
    report.validate().map_err(|e| {
        let code = match e {
            UsageReportError::UntilBeforeFrom | UsageReportError::RefusalCode(..) => P::Invalid,
            _ => P::BadRequest,
        };
        Problem::new(code, format!("usage report: {e}"))
    })?;
    let first = store.add_usage(gateway, &report).await?;
    Ok(json_response(
        StatusCode::OK,
        &UsageAck::for_report(&report, !first),
        None,
    ))
}

/// `GET /admin/usage?month=YYYY-MM`.
pub async fn report(store: &Store, query: Option<&str>) -> Result<Response<RespBody>, Problem> {
    let month = query_str(query, "month")
        .filter(|m| valid_month(m))
        .ok_or_else(|| Problem::new(P::BadRequest, "query parameter month=YYYY-MM is required"))?;
    Ok(json_response(StatusCode::OK, &store.usage(month).await?, None))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The report as CSV: header `licensee,dataset,requests,records,refusals,epsilon,gateways`
/// (ε spent by aggregate answers, as a decimal), gateways joined by `;`, fields quoted when
/// needed (RFC 4180).
pub fn to_csv(rows: &[UsageRow]) -> String {
    let mut out = String::from("licensee,dataset,requests,records,refusals,epsilon,gateways\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            csv_field(&r.licensee),
            csv_field(&r.dataset),
            r.requests,
            r.records,
            r.refusals,
            r.epsilon_micros as f64 / 1e6,
            csv_field(&r.gateways.join(";"))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn report(v: serde_json::Value) -> Result<UsageReport, String> {
        let r: UsageReport = serde_json::from_value(v).map_err(|e| e.to_string())?;
        r.validate().map(|()| r).map_err(|e| e.to_string())
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "report_id": "0192f0c4-8a51-7c35-9d7e-1a2b3c4d5e6f",
            "from": "2026-11-30T23:59:00-01:00", "until": "2026-12-01T01:00:00Z",
            "counts": [{ "licensee": "acme", "dataset": "d", "licence": null, "requests": 1, "records": 0, "refusals": 1 }],
        })
    }

    #[test]
    fn the_month_is_the_utc_month_of_from() {
        let r = report(base()).unwrap();
        assert_eq!(r.month(), "2026-12");
        assert_eq!(r.from_rfc3339(), "2026-12-01T00:59:00Z");
    }

    #[test]
    fn bad_reports_are_refused() {
        for (path, v, want) in [
            ("until", serde_json::json!("2026-11-01T00:00:00Z"), "until"),
            ("report_id", serde_json::json!(""), "report_id"),
        ] {
            let mut b = base();
            b[path] = v;
            assert!(report(b).unwrap_err().contains(want));
        }
        for (field, v) in [
            ("requests", serde_json::json!(-1)),
            ("records", serde_json::json!(1.5)),
            ("licensee", serde_json::json!("")),
            ("licence", serde_json::json!(" ")),
            ("extra", serde_json::json!(1)),
        ] {
            let mut b = base();
            b["counts"][0][field] = v;
            assert!(report(b).is_err(), "{field}");
        }
        let mut b = base();
        b["counts"] = serde_json::Value::Array(vec![b["counts"][0].clone(); MAX_ROWS + 1]);
        assert!(report(b).unwrap_err().contains("at most"));
    }

    #[test]
    fn months_and_csv() {
        assert!(valid_month("2026-11"));
        for bad in ["2026-13", "2026-1", "26-11-01", "2026_11", ""] {
            assert!(!valid_month(bad), "{bad}");
        }
        let rows = [UsageRow {
            licensee: "a,b".into(),
            dataset: "d".into(),
            requests: 2,
            records: 3,
            refusals: 0,
            epsilon_micros: 0,
            gateways: vec!["g1".into(), "g2".into()],
        }];
        assert_eq!(
            to_csv(&rows),
            "licensee,dataset,requests,records,refusals,epsilon,gateways\n\"a,b\",d,2,3,0,0,g1;g2\n"
        );
    }
}
