//! Phase: respond. The catalog is answered whole, and so is a page of records masked whole
//! within the read-ahead (audited before it leaves); longer pages stream through a
//! [`RecordsBody`]:
//! masked as the connection takes them, the end sent only once the audit record is durable,
//! and an error after the first byte aborting the transfer (the client sees a broken
//! transfer, never a complete-looking truncated body).

use super::context::Ctx;
use super::limit::Grant;
use super::mask::MaskedBody;
use super::outcome::{set_request_id, Outcomes, Sent};
use super::records_body::{RecordsBody, StallGuard};
use super::route::{NextPage, RecordsQuery};
use crate::listeners::ListenerKind;
use crate::runtime::Runtime;
use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body_util::BodyExt;
use sluice_net::body::{full, RespBody};
use sluice_net::problem::Problem;
use sluice_policy::stream::OutputFormat;

/// The catalog of the listener (the public one lists unconditional datasets only).
pub async fn catalog(
    outcomes: &Outcomes,
    rt: &Runtime,
    kind: ListenerKind,
    ctx: &Ctx,
) -> Result<Response<RespBody>, Problem> {
    let body = match kind {
        ListenerKind::Data => rt.catalog.clone(),
        ListenerKind::Public => rt.public_catalog.clone(),
    };
    outcomes.answered(ctx).await?;
    let mut resp = Response::new(full(body));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    set_request_id(&mut resp, &ctx.request_id);
    Ok(resp)
}

/// The response to a page that was masked whole before its head (it fit in the read-ahead):
/// audited first, then sent with its `Content-Length` in one piece, with a `Link: rel="next"`
/// to `next` when another page may follow. If the audit log cannot take the record, nothing
/// is sent and the client gets the `unavailable` problem.
pub async fn whole(
    outcomes: &Outcomes,
    ctx: &Ctx,
    query: &RecordsQuery,
    sent: Sent,
    grant: Grant,
    body: Option<Bytes>,
    next: Option<NextPage>,
) -> Result<Response<RespBody>, Problem> {
    if let Err(problem) = outcomes.audit_whole(ctx, &sent).await {
        grant.settle(0);
        return Err(problem);
    }
    grant.settle(sent.stats.records_out);
    let link = next.and_then(|n| query.next_link(&ctx.path, &n));
    let mut resp = Response::new(full(body.unwrap_or_default()));
    set_headers(&mut resp, query, ctx.licence.clone(), link, &ctx.request_id);
    Ok(resp)
}

/// The response streaming `first` and the rest of `masked` to the client, with a
/// `Link: rel="next"` to `next` when another page may follow.
#[allow(clippy::too_many_arguments)]
pub fn stream(
    outcomes: Outcomes,
    ctx: Ctx,
    query: &RecordsQuery,
    masked: MaskedBody,
    grant: Grant,
    first: Option<Bytes>,
    guard: StallGuard,
    next: Option<NextPage>,
) -> Response<RespBody> {
    let request_id = ctx.request_id.clone();
    let licence = ctx.licence.clone();
    let link = next.and_then(|n| query.next_link(&ctx.path, &n));
    let body = RecordsBody::new(outcomes, ctx, masked, grant, first, guard);
    let mut resp = Response::new(body.boxed());
    set_headers(&mut resp, query, licence, link, &request_id);
    resp
}

/// The headers of a records response.
fn set_headers(
    resp: &mut Response<RespBody>,
    query: &RecordsQuery,
    licence: Option<String>,
    link: Option<String>,
    request_id: &str,
) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(query.format)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(Ok(v)) = licence.map(|l| HeaderValue::from_str(&l)) {
        h.insert("sluice-licence", v);
    }
    if let Some(Ok(v)) = link.map(|l| HeaderValue::from_str(&l)) {
        h.insert(header::LINK, v);
    }
    set_request_id(resp, request_id);
}

fn content_type(f: OutputFormat) -> &'static str {
    match f {
        OutputFormat::Json => "application/json",
        OutputFormat::Ndjson => "application/x-ndjson",
        OutputFormat::Csv => "text/csv; charset=utf-8",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditLog, AuditOptions};
    use crate::config::Limits;
    use crate::limits::Limiter;
    use crate::metrics::Metrics;
    use http_body_util::BodyExt;
    use hyper::body::Body;
    use sluice_net::server::Conn;
    use std::sync::Arc;

    const PAGE: &str = r#"[{"id":"H1"},{"id":"H2"}]"#;

    fn parts(audit: &Arc<AuditLog>) -> (Outcomes, Ctx, RecordsQuery, Grant) {
        let mut req = http::Request::new(());
        *req.uri_mut() = "/v1/datasets/hydrants/records?limit=2".parse().unwrap();
        let conn = Conn::new(
            "127.0.0.1:9".parse().unwrap(),
            sluice_net::identity::PeerIdentity::None,
        );
        let outcomes = Outcomes {
            audit: audit.clone(),
            metrics: Arc::new(Metrics::default()),
            usage: None,
            sources: Arc::default(),
            risk: None,
        };
        let query = RecordsQuery::parse("limit=2", &Limits::default()).unwrap();
        let grant = Grant::unlicensed(Arc::new(Limiter::new(None, None)), 2);
        (outcomes, Ctx::new(&req, &conn), query, grant)
    }

    /// Two records sent, with the digest of their keys.
    fn sent() -> Sent {
        let mut keys = sluice_policy::served::ServedKeys::default();
        keys.add(b"HY-1");
        keys.add(b"HY-2");
        Sent {
            stats: sluice_policy::stream::MaskStats {
                records_in: 2,
                records_out: 2,
                ..Default::default()
            },
            served: keys.digest(),
            epsilon: None,
        }
    }

    #[tokio::test]
    async fn a_whole_page_is_durable_in_the_log_before_it_is_answered_with_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Arc::new(AuditLog::open(dir.path(), AuditOptions::default()).await.unwrap());
        let (outcomes, ctx, query, grant) = parts(&audit);
        let resp = whole(
            &outcomes,
            &ctx,
            &query,
            sent(),
            grant,
            Some(Bytes::from_static(PAGE.as_bytes())),
            None,
        )
        .await
        .unwrap();
        // The record is durable by the time the response exists, before any byte is sent.
        assert_eq!(audit.head().seq, 1);
        let log = std::fs::read_to_string(dir.path().join("audit-000001.jsonl")).unwrap();
        assert!(log.contains(r#""records_out":2"#), "{log}");
        assert!(log.contains(&ctx.request_id), "{log}");
        let served = sent().served.unwrap().encode();
        assert!(log.contains(&format!(r#""served":"{served}""#)), "{log}");
        assert_eq!(resp.headers()["sluice-request-id"], ctx.request_id.as_str());
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let body = resp.into_body();
        assert_eq!(
            body.size_hint().exact(),
            Some(PAGE.len() as u64),
            "sent with its length"
        );
        assert_eq!(body.collect().await.unwrap().to_bytes(), PAGE.as_bytes());
    }

    #[tokio::test]
    async fn a_whole_page_whose_record_cannot_be_written_is_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Arc::new(AuditLog::open(dir.path(), AuditOptions::default()).await.unwrap());
        let (outcomes, ctx, query, grant) = parts(&audit);
        audit.close().await.unwrap();
        let refused = whole(
            &outcomes,
            &ctx,
            &query,
            sent(),
            grant,
            Some(Bytes::from_static(PAGE.as_bytes())),
            None,
        )
        .await;
        let problem = refused.expect_err("no data without its record");
        assert_eq!(problem.code, sluice_net::problem::ProblemCode::Unavailable);
    }
}
