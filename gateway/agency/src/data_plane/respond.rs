//! Phase: respond. The catalog is answered whole; records stream through a [`RecordsBody`]:
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
    set_request_id(&mut resp, &request_id);
    resp
}

fn content_type(f: OutputFormat) -> &'static str {
    match f {
        OutputFormat::Json => "application/json",
        OutputFormat::Ndjson => "application/x-ndjson",
        OutputFormat::Csv => "text/csv; charset=utf-8",
    }
}
