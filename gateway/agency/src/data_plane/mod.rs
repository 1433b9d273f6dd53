//! The data plane: one request through the named phases, in the order ARCHITECTURE.md draws
//! them —
//! [`identity`] → [`limit`] (per IP) → [`route`] → [`decide`] → [`limit`] (licence) →
//! [`fetch`] → [`mask`] → [`respond`] → [`outcome`]. The data sandbox's aggregates take their
//! own path after [`route`] ([`aggregate`]).
//!
//! Each phase is a function over the small state it needs, returning `Result<_, Problem>`;
//! [`handle`] turns any problem into a problem+json response and audits it. An allowed page
//! that the read-ahead masks whole is audited first and then sent in one piece with its
//! length ([`respond::whole`]); a longer one streams ([`records_body`]), and its audit record
//! is written when the stream ends (cleanly or aborted), with what was actually sent; a
//! complete response's end goes out only once its record is durable.

pub mod aggregate;
mod context;
pub mod cursor;
pub mod decide;
pub mod fetch;
pub mod identity;
pub mod limit;
pub mod mask;
pub mod outcome;
pub mod records_body;
pub mod respond;
pub mod route;
pub mod scan;
pub mod stall;

pub use context::Ctx;
pub use outcome::Outcomes;
pub use route::{RecordsQuery, SCENARIO_HEADER};

use crate::limits::Limiter;
use crate::listeners::ListenerKind;
use crate::runtime::Runtime;
use crate::subscription::Subscription;
use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;
use mask::MaskedBody;
use records_body::StallGuard;
use route::NextPage;
use route::Route;
use sluice_connectors::{PageEnd, Paging, SourceData};
use sluice_net::body::RespBody;
use sluice_net::problem::{Problem, ProblemCode};
use sluice_net::server::Conn;
use sluice_policy::stream::{Masker, MaskerLimits};
use stall::StallWatch;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What the request path works with.
pub struct DataPlane {
    /// The runtime in force, swapped whole on reload or a new snapshot.
    pub runtime: Arc<ArcSwap<Runtime>>,
    /// Rate limits and quotas.
    pub limiter: Arc<Limiter>,
    /// Audit log, metrics, usage counters.
    pub outcomes: Outcomes,
    /// The registry subscription, when `[registry]` is configured.
    pub subscription: Option<Arc<Subscription>>,
    /// Aborts streams whose clients stopped reading.
    pub stalls: Arc<StallWatch>,
}

type HandlerFuture = Pin<Box<dyn Future<Output = Response<RespBody>> + Send>>;

/// The per-request handler of a listener.
pub fn handler(
    plane: Arc<DataPlane>,
    kind: ListenerKind,
) -> impl Fn(Arc<Conn>, Request<Incoming>) -> HandlerFuture + Clone + Send + Sync + 'static {
    move |conn, req| {
        let plane = plane.clone();
        Box::pin(async move { handle(&plane, kind, &conn, &req).await })
    }
}

/// Handles one request on the data or public listener.
pub async fn handle(
    plane: &DataPlane,
    kind: ListenerKind,
    conn: &Arc<Conn>,
    req: &Request<Incoming>,
) -> Response<RespBody> {
    let mut ctx = Ctx::new(req, conn);
    let rt = plane.runtime.load_full();
    match phases(plane, &rt, kind, conn, req, &mut ctx).await {
        Ok(resp) => resp,
        Err(problem) => plane.outcomes.refuse(&ctx, problem).await,
    }
}

async fn phases(
    plane: &DataPlane,
    rt: &Runtime,
    kind: ListenerKind,
    conn: &Arc<Conn>,
    req: &Request<Incoming>,
    ctx: &mut Ctx,
) -> Result<Response<RespBody>, Problem> {
    let licensee = identity::identify(kind, conn, rt, ctx)?;
    let limits = &rt.config.limits;
    sluice_net::server::check_head(req, limits.max_headers, limits.max_header_bytes)?;
    if kind == ListenerKind::Public {
        limit::per_ip(&plane.limiter, conn.peer.ip())?;
    }
    let dataset = match route::route(req)? {
        Route::Catalog => return respond::catalog(&plane.outcomes, rt, kind, ctx).await,
        Route::OpenApi => return crate::openapi::respond(&plane.outcomes, ctx).await,
        Route::Records(d) => d,
        Route::Aggregate(d) => {
            ctx.dataset = Some(d.clone());
            ctx.scenario = route::scenario(req)?;
            let inputs = decide::Inputs {
                rt,
                subscription: plane.subscription.as_deref(),
                outcomes: &plane.outcomes,
            };
            return aggregate::respond(
                &inputs,
                &plane.limiter,
                licensee.as_ref(),
                &d,
                req.uri().query(),
                ctx,
            )
            .await;
        }
    };
    ctx.dataset = Some(dataset.clone());
    let query = RecordsQuery::parse(req.uri().query().unwrap_or(""), &rt.config.limits)?;
    ctx.continuation = query.offset > 0 || query.query.after.is_some();
    ctx.scenario = route::scenario(req)?;
    let inputs = decide::Inputs {
        rt,
        subscription: plane.subscription.as_deref(),
        outcomes: &plane.outcomes,
    };
    let permit = decide::decide(&inputs, licensee.as_ref(), &dataset, &query, ctx)?;
    let grant = limit::admit(&plane.limiter, &permit, query.limit).await?;
    let Some(connector) = rt.sources.get(&dataset) else {
        grant.settle(0);
        return Err(fetch::no_source());
    };
    let paging = connector.paging();
    // What a keyset cursor is bound to: only sources paged by key have cursors.
    let context = match paging {
        Paging::Key => fetch::cursor_context(ctx.licence.as_deref(), &dataset, &query),
        Paging::Source | Paging::Stream => String::new(),
    };
    let page = match fetch::page(paging, &query, &rt.cursor, &context, grant.records) {
        Ok(page) => page,
        Err(problem) => {
            grant.settle(0);
            return Err(problem);
        }
    };
    let asked = std::time::Instant::now();
    let body = match fetch::fetch(connector.as_ref(), &query, page, &permit, ctx).await {
        Ok(body) => body,
        Err((problem, error)) => {
            grant.settle(0);
            plane.outcomes.upstream_error(ctx, &error);
            return Err(problem);
        }
    };
    let filters = (!query.query.filters.is_empty()).then(|| Arc::new(query.query.clone()));
    let limits = MaskerLimits {
        max_records: Some(grant.records),
        max_record_bytes: rt.config.limits.max_record_bytes,
    };
    // Where the next page starts, when the source can tell before the page streams.
    let mut next = match &body {
        SourceData::Rows(rows) => match &rows.end {
            PageEnd::After(values) => match rt.cursor.seal(&context, values) {
                Ok(c) => Some(NextPage::After(c)),
                Err(e) => {
                    grant.settle(0);
                    tracing::error!(request_id = %ctx.request_id, error = %e, "keyset cursor");
                    return Err(Problem::new(
                        ProblemCode::Internal,
                        "the next page could not be linked",
                    ));
                }
            },
            PageEnd::Last => None,
            // A source that cannot tell: by offset, as for bytes (a stream source skips the
            // records of earlier pages itself).
            PageEnd::Unknown => match paging {
                Paging::Key => None,
                Paging::Source | Paging::Stream => query.next_offset(),
            },
        },
        SourceData::Bytes(_) | SourceData::Pages(_) => query.next_offset(),
    };
    // A source read from its first record (files, or an API's own pages when it cannot take
    // the filters): the gateway skips the records of earlier pages itself.
    let skips = paging == Paging::Stream || matches!(body, SourceData::Pages(_));
    let masker = match &body {
        SourceData::Rows(rows) => {
            Masker::typed(permit.plan.clone(), filters, &rows.columns, query.format, limits)
        }
        SourceData::Bytes(_) | SourceData::Pages(_) => Masker::filtered(
            permit.plan.clone(),
            filters,
            connector.input_format(),
            query.format,
            limits,
        ),
    };
    // A source that streams from the start: the gateway skips the records of earlier pages.
    let masker = if skips {
        masker.skip_records(query.offset)
    } else {
        masker
    };
    let mut masked = MaskedBody::new(
        body,
        masker,
        connector.read_timeout(),
        rt.config.limits.max_upstream_bytes,
    );
    // Read ahead up to one chunk of output (or the end) before the head: a source that fails
    // at once gets a clean 502 problem instead of a broken stream, and a page that ends within
    // it is known to be the last (no next link).
    let first = match masked.read_ahead(mask::COALESCE_BYTES).await {
        Ok(first) => {
            plane.outcomes.source_answered(ctx, asked.elapsed());
            first
        }
        Err(e) => {
            grant.settle(0);
            plane.outcomes.upstream_error(ctx, &e.to_string());
            tracing::warn!(request_id = %ctx.request_id, dataset, error = %e, "upstream body refused before the first record");
            return Err(Problem::new(
                ProblemCode::UpstreamFailed,
                "the data source sent data that could not be verified",
            ));
        }
    };
    // A stream that ended within the first output is the last page when it ran out of
    // records: a file (or a key-paged source) gave fewer than the page asked; an HTTP source
    // sent fewer source records than asked (its filtered page may be short and still not be the
    // last).
    if masked.is_done() {
        let sent = masked.sent();
        plane.outcomes.count_keys(ctx, masked.served_hashes());
        let stats = sent.stats;
        let ended = match paging {
            Paging::Source if !skips => stats.records_in < query.limit,
            _ => stats.records_out < grant.records,
        };
        if ended {
            next = None;
        }
        // The whole page is masked: audited before any of it leaves, then sent in one piece
        // with its length.
        return respond::whole(&plane.outcomes, ctx, &query, sent, grant, first, next).await;
    }
    let guard = StallGuard {
        watch: plane.stalls.clone(),
        timeout: std::time::Duration::from_millis(rt.config.limits.write_stall_timeout_ms),
        // An HTTP/1.x connection carries only this response while it streams.
        conn: (req.version() <= http::Version::HTTP_11).then(|| conn.clone()),
    };
    Ok(respond::stream(
        plane.outcomes.clone(),
        ctx.clone(),
        &query,
        masked,
        grant,
        first,
        guard,
        next,
    ))
}
