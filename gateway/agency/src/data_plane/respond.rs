//! Phase: respond. The catalog is answered whole, and so is a page of records masked whole
//! within the read-ahead (audited before it leaves); longer pages stream through a
//! [`RecordsBody`]:
//! masked as the connection takes them, the end sent only once the audit record is durable,
//! and an error after the first byte aborting the transfer (the client sees a broken
//! transfer, never a complete-looking truncated body).

use super::context::Ctx;
use super::limit::Grant;
use super::mask::MaskedBody;
use super::outcome::{set_request_id, Outcomes};
use super::records_body::{RecordsBody, StallGuard};
use super::route::{NextPage, RecordsQuery};
use crate::listeners::ListenerKind;
use crate::runtime::Runtime;
use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body_util::BodyExt;
use sluice_net::body::{full, RespBody};
use sluice_net::problem::Problem;
use sluice_policy::stream::{MaskStats, OutputFormat};

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
    stats: MaskStats,
    grant: Grant,
    body: Option<Bytes>,
    next: Option<NextPage>,
) -> Result<Response<RespBody>, Problem> {
    if let Err(problem) = outcomes.audit_whole(ctx, &stats).await {
        grant.settle(0);
        return Err(problem);
    }
    grant.settle(stats.records_out);
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
