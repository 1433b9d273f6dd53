//! Phase: respond. The catalog is answered whole; records stream: the masked body runs in a
//! task feeding a channel body, and an error after the first byte aborts the transfer (the
//! client sees a broken transfer, never a complete-looking truncated body). The stream's
//! outcome is audited when it ends.

use super::context::Ctx;
use super::limit::Grant;
use super::mask::{MaskedBody, StreamError};
use super::outcome::{set_request_id, Outcomes, StreamEnd};
use super::route::RecordsQuery;
use crate::listeners::ListenerKind;
use crate::runtime::Runtime;
use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body_util::BodyExt;
use sluice_net::body::{full, Aborted, ChannelBody, RespBody};
use sluice_net::problem::Problem;
use sluice_policy::stream::OutputFormat;
use tokio::sync::mpsc;

/// Chunks of masked output in flight to the client.
const CHANNEL_DEPTH: usize = 8;

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

/// Starts streaming `first` and the rest of `masked` to the client.
pub fn stream(
    outcomes: Outcomes,
    ctx: Ctx,
    query: &RecordsQuery,
    masked: MaskedBody,
    grant: Grant,
    first: Option<Bytes>,
) -> Response<RespBody> {
    let (tx, body) = ChannelBody::new(CHANNEL_DEPTH);
    let mut resp = Response::new(body.boxed());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(query.format)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(l) = &ctx.licence {
        if let Ok(v) = HeaderValue::from_str(l) {
            h.insert("sluice-licence", v);
        }
    }
    if let Some(Ok(v)) = query.next_link(&ctx.path).map(|l| HeaderValue::from_str(&l)) {
        h.insert(header::LINK, v);
    }
    set_request_id(&mut resp, &ctx.request_id);
    tokio::spawn(run(outcomes, ctx, masked, grant, first, tx));
    resp
}

async fn run(
    outcomes: Outcomes,
    ctx: Ctx,
    mut masked: MaskedBody,
    grant: Grant,
    first: Option<Bytes>,
    tx: mpsc::Sender<Result<Bytes, Aborted>>,
) {
    let mut pending = first;
    let outcome: Result<(), StreamError> = loop {
        let Some(chunk) = pending.take() else { break Ok(()) };
        if tx.send(Ok(chunk)).await.is_err() {
            break Err(StreamError::ClientGone);
        }
        match masked.next_output().await {
            Ok(next) => pending = next,
            Err(e) => break Err(e),
        }
    };
    let end = match &outcome {
        Ok(()) => StreamEnd::Complete,
        Err(e) => {
            let _ = tx.send(Err(Aborted(e.to_string()))).await;
            tracing::warn!(request_id = %ctx.request_id, error = %e, "stream aborted");
            StreamEnd::Aborted
        }
    };
    drop(tx);
    let stats = masked.stats();
    grant.settle(stats.records_out);
    outcomes.streamed(&ctx, end, &stats).await;
}

fn content_type(f: OutputFormat) -> &'static str {
    match f {
        OutputFormat::Json => "application/json",
        OutputFormat::Ndjson => "application/x-ndjson",
        OutputFormat::Csv => "text/csv; charset=utf-8",
    }
}
