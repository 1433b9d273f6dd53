//! The data plane: one request through the named phases
//! identity → route → decide → limit → fetch → mask → respond → audit.
//!
//! Each phase is a function returning `Result<_, Problem>`; [`handle`] turns any problem into a
//! problem+json response and audits it. An allowed request streams: the masker runs in a task
//! fed by the upstream body, and the audit record is written when the stream ends (cleanly or
//! aborted), with what was actually sent.

use crate::audit::AuditRecord;
use crate::gateway::Gateway;
use crate::limits::{seconds_to_midnight, OverLimit, QuotaExceeded};
use crate::listeners::ListenerKind;
use crate::metrics::{DatasetLabels, RequestLabels};
use crate::problem::{Problem, ProblemKind};
use crate::runtime::Runtime;
use crate::usage::{Counts, UsageKey};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sluice_connectors::http::{Fetch, FetchError, HttpSourceConfig, UpstreamBody};
use sluice_net::body::{boxed, full, Aborted, ChannelBody, RespBody};
use sluice_net::identity::PeerIdentity;
use sluice_net::server::Conn;
use sluice_policy::decide::SystemClock;
use sluice_policy::stream::{MaskStats, Masker, MaskerLimits, OutputFormat};
use sluice_policy::{Decision, Permit};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The header declaring the request's purpose.
pub const SCENARIO_HEADER: &str = "sluice-scenario";

type HandlerFuture = Pin<Box<dyn Future<Output = Response<RespBody>> + Send>>;

/// The per-request handler of a listener.
pub fn handler(
    gw: Arc<Gateway>,
    kind: ListenerKind,
) -> impl Fn(Arc<Conn>, Request<Incoming>) -> HandlerFuture + Clone + Send + Sync + 'static {
    move |conn, req| {
        let gw = gw.clone();
        Box::pin(async move { handle(gw, kind, conn, req).await })
    }
}

/// What is known about a request as it moves through the phases; becomes its audit record.
#[derive(Debug, Clone, Default)]
struct Ctx {
    request_id: String,
    method: String,
    path: String,
    client: String,
    licensee: Option<String>,
    fingerprint: Option<String>,
    serial: Option<String>,
    licence: Option<String>,
    scenario: Option<String>,
    dataset: Option<String>,
}

impl Ctx {
    fn record(
        &self,
        allowed: bool,
        reason: Option<&str>,
        status: StatusCode,
        stats: &MaskStats,
        started: Instant,
    ) -> AuditRecord {
        AuditRecord {
            request_id: self.request_id.clone(),
            licensee: self.licensee.clone(),
            cert_fingerprint: self.fingerprint.clone(),
            cert_serial: self.serial.clone(),
            licence: self.licence.clone(),
            scenario: self.scenario.clone(),
            dataset: self.dataset.clone(),
            decision: if allowed { "allow" } else { "deny" }.to_owned(),
            reason: reason.map(str::to_owned),
            status: status.as_u16(),
            records_out: stats.records_out,
            fields_emitted: stats.fields_emitted,
            fields_masked: stats.fields_masked,
            bytes_out: stats.bytes_out,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            client_addr: Some(self.client.clone()),
            method: self.method.clone(),
            path: self.path.clone(),
            ..AuditRecord::default()
        }
    }
}

/// Handles one request on the data or public listener.
pub async fn handle(
    gw: Arc<Gateway>,
    kind: ListenerKind,
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> Response<RespBody> {
    let started = Instant::now();
    let mut ctx = Ctx {
        request_id: uuid::Uuid::now_v7().to_string(),
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        client: conn.peer.to_string(),
        ..Ctx::default()
    };
    let rt = gw.runtime();
    match phases(&gw, &rt, kind, &conn, &req, &mut ctx, started).await {
        Ok(resp) => resp,
        Err(problem) => refuse(&gw, &ctx, problem, started).await,
    }
}

async fn refuse(gw: &Gateway, ctx: &Ctx, problem: Problem, started: Instant) -> Response<RespBody> {
    let kind = problem.kind;
    let status = kind.status();
    let record = ctx.record(false, Some(kind.code()), status, &MaskStats::default(), started);
    let audited = gw.audit.append(record).await;
    count(gw, ctx, false, kind.code(), status, 0, started);
    tracing::info!(
        request_id = %ctx.request_id, licensee = ?ctx.licensee, dataset = ?ctx.dataset,
        reason = kind.code(), status = status.as_u16(), "refused"
    );
    if let Err(e) = audited {
        tracing::error!(error = %e, request_id = %ctx.request_id, "audit append failed");
        let p = Problem::new(
            ProblemKind::Unavailable,
            "the gateway cannot record this request; try later",
        );
        return boxed(p.into_response(&ctx.path, &ctx.request_id));
    }
    let mut resp = boxed(problem.into_response(&ctx.path, &ctx.request_id));
    set_request_id(&mut resp, &ctx.request_id);
    resp
}

/// Counts an outcome in the metrics and, for an identified licensee, in the usage counters:
/// every request, the records delivered (`records`), and whether a problem was sent.
fn count(
    gw: &Gateway,
    ctx: &Ctx,
    allowed: bool,
    reason: &str,
    status: StatusCode,
    records: u64,
    started: Instant,
) {
    if let (Some(usage), Some(licensee)) = (&gw.usage, &ctx.licensee) {
        usage.record(
            UsageKey {
                licensee: licensee.clone(),
                dataset: ctx
                    .dataset
                    .clone()
                    .unwrap_or_else(|| crate::usage::NO_DATASET.into()),
                licence: ctx.licence.clone(),
            },
            Counts {
                requests: 1,
                records,
                refusals: u64::from(status.is_client_error() || status.is_server_error()),
            },
        );
    }
    gw.metrics
        .requests
        .get_or_create(&RequestLabels {
            dataset: ctx.dataset.clone().unwrap_or_else(|| "-".into()),
            decision: if allowed { "allow" } else { "deny" }.into(),
            reason: reason.into(),
            status: status.as_u16(),
        })
        .inc();
    gw.metrics.latency.observe(started.elapsed().as_secs_f64());
}

fn set_request_id(resp: &mut Response<RespBody>, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert("sluice-request-id", v);
    }
}

/// The route a request asks for.
enum Route {
    Catalog,
    Records(String),
}

async fn phases(
    gw: &Arc<Gateway>,
    rt: &Arc<Runtime>,
    kind: ListenerKind,
    conn: &Conn,
    req: &Request<Incoming>,
    ctx: &mut Ctx,
    started: Instant,
) -> Result<Response<RespBody>, Problem> {
    // identity
    let licensee = identity(gw, rt, kind, conn, ctx)?;
    // route
    let route = route(req)?;
    let dataset = match route {
        Route::Catalog => {
            let body = match kind {
                ListenerKind::Data => rt.catalog.clone(),
                ListenerKind::Public => rt.public_catalog.clone(),
            };
            let record = ctx.record(true, None, StatusCode::OK, &MaskStats::default(), started);
            gw.audit
                .append(record)
                .await
                .map_err(|e| unavailable_audit(&e.to_string()))?;
            count(gw, ctx, true, "ok", StatusCode::OK, 0, started);
            let mut resp = Response::new(full(body));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            set_request_id(&mut resp, &ctx.request_id);
            return Ok(resp);
        }
        Route::Records(d) => d,
    };
    ctx.dataset = Some(dataset.clone());
    let query = RecordsQuery::parse(req.uri().query().unwrap_or(""), &rt.config.limits)?;
    let scenario = scenario(req)?;
    ctx.scenario = scenario.clone();
    // decide
    crate::subscription::check_fresh(gw, rt, &dataset)?;
    let fields: Option<Vec<&str>> = query
        .fields
        .as_ref()
        .map(|f| f.iter().map(String::as_str).collect());
    let decision = rt.policy.decide(
        &sluice_policy::Request {
            licensee: licensee.as_deref(),
            dataset: &dataset,
            scenario: scenario.as_deref(),
            fields: fields.as_deref(),
        },
        &SystemClock,
    );
    let permit = match decision {
        Decision::Allow(p) => p,
        Decision::Deny(r) => return Err(Problem::from(&r)),
    };
    ctx.licence = permit.licence.as_ref().map(|l| l.id.clone());
    // Fail closed: no data leaves while the audit log cannot record it.
    gw.audit.health().map_err(|e| unavailable_audit(&e.to_string()))?;
    // limit
    let day = time::OffsetDateTime::now_utc()
        .unix_timestamp()
        .div_euclid(86_400);
    let granted = limit(gw, &permit, &query, day).await?;
    // fetch
    let source = rt.config.sources.get(&dataset).ok_or_else(|| {
        Problem::new(
            ProblemKind::UpstreamFailed,
            "the dataset has no source configured",
        )
    })?;
    let params: Vec<(&str, &str)> = query
        .passthrough
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let fetched = gw
        .upstream
        .fetch(
            source,
            &Fetch {
                limit: query.limit,
                offset: query.offset,
                params,
                row_filter: permit.plan.row_filter.as_ref(),
                request_id: &ctx.request_id,
            },
        )
        .await;
    let refund = |gw: &Gateway| {
        if let Some(l) = &permit.licence {
            crate::limits_redis::refund(gw, &l.id, day, granted);
        }
    };
    let body = match fetched {
        Ok((_, body)) => body,
        Err(e) => {
            refund(gw);
            gw.metrics
                .upstream_errors
                .get_or_create(&DatasetLabels {
                    dataset: dataset.clone(),
                })
                .inc();
            tracing::warn!(request_id = %ctx.request_id, dataset, error = %e, "upstream fetch failed");
            return Err(match e {
                FetchError::Timeout(_) => Problem::new(
                    ProblemKind::UpstreamTimeout,
                    "the data source did not answer in time",
                ),
                _ => Problem::new(
                    ProblemKind::UpstreamFailed,
                    "the data source could not be reached or failed",
                ),
            });
        }
    };
    // mask and respond
    let masker = Masker::new(
        permit.plan.clone(),
        source.input_format(),
        query.format,
        MaskerLimits {
            max_records: Some(granted),
            max_record_bytes: rt.config.limits.max_record_bytes,
        },
    );
    let mut stream = MaskStream {
        gw: gw.clone(),
        ctx: ctx.clone(),
        body,
        masker,
        source: source.clone(),
        max_upstream_bytes: rt.config.limits.max_upstream_bytes,
        bytes_in: 0,
        started,
        licence: permit.licence.as_ref().map(|l| l.id.clone()),
        granted,
        day,
        finished: false,
        deferred: None,
    };
    // Read until the first output (or the end), so a source that fails at once gets a clean
    // 502 problem instead of a broken stream.
    let first = match stream.next_output().await {
        Ok(first) => first,
        Err(e) => {
            stream.refund_all();
            gw.metrics
                .upstream_errors
                .get_or_create(&DatasetLabels {
                    dataset: dataset.clone(),
                })
                .inc();
            tracing::warn!(request_id = %ctx.request_id, dataset, error = %e, "upstream body refused before the first record");
            return Err(Problem::new(
                ProblemKind::UpstreamFailed,
                "the data source sent data that could not be verified",
            ));
        }
    };
    let (tx, body) = ChannelBody::new(8);
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
    let next = format!(
        "<{}?cursor={}&limit={}>; rel=\"next\"",
        ctx.path,
        cursor_of(query.offset + query.limit),
        query.limit
    );
    if let Ok(v) = HeaderValue::from_str(&next) {
        h.insert(header::LINK, v);
    }
    set_request_id(&mut resp, &ctx.request_id);
    tokio::spawn(stream.run(first, tx));
    Ok(resp)
}

fn unavailable_audit(e: &str) -> Problem {
    tracing::error!(error = %e, "audit append failed");
    Problem::new(
        ProblemKind::Unavailable,
        "the gateway cannot record this request; try later",
    )
}

fn identity(
    gw: &Gateway,
    rt: &Runtime,
    kind: ListenerKind,
    conn: &Conn,
    ctx: &mut Ctx,
) -> Result<Option<String>, Problem> {
    match (kind, &conn.identity) {
        (ListenerKind::Public, _) => {
            if let Some(limits) = &gw.public_limits {
                limits
                    .check(conn.peer.ip())
                    .map_err(|o| over_limit(ProblemKind::RateLimited, o))?;
            }
            Ok(None)
        }
        (ListenerKind::Data, PeerIdentity::Licensee(l)) => {
            ctx.licensee = Some(l.id.clone());
            ctx.fingerprint = Some(l.fingerprint.clone());
            ctx.serial = Some(l.serial.clone());
            crate::subscription::check_serial(rt, &l.serial)?;
            Ok(Some(l.id.clone()))
        }
        (ListenerKind::Data, PeerIdentity::Gateway(p) | PeerIdentity::Admin(p)) => {
            ctx.fingerprint = Some(p.fingerprint.clone());
            ctx.serial = Some(p.serial.clone());
            tracing::info!(
                identity = conn.identity.describe(),
                "certificate identifies no licensee"
            );
            Err(Problem::new(
                ProblemKind::UnknownLicensee,
                "the client certificate carries no valid urn:sluice:licensee identity",
            ))
        }
        (
            ListenerKind::Data,
            PeerIdentity::Invalid {
                reason,
                fingerprint,
                serial,
            },
        ) => {
            ctx.fingerprint = Some(fingerprint.clone());
            ctx.serial = (!serial.is_empty()).then(|| serial.clone());
            tracing::info!(reason, "certificate without a licensee identity");
            Err(Problem::new(
                ProblemKind::UnknownLicensee,
                "the client certificate carries no valid urn:sluice:licensee identity",
            ))
        }
        (ListenerKind::Data, PeerIdentity::None) => Err(Problem::new(
            ProblemKind::Unauthenticated,
            "a licensee client certificate is required",
        )),
    }
}

fn route(req: &Request<Incoming>) -> Result<Route, Problem> {
    let path = req.uri().path();
    let route = if path == "/v1/catalog" {
        Route::Catalog
    } else if let Some(rest) = path.strip_prefix("/v1/datasets/") {
        match rest.split_once('/') {
            Some((id, "records")) if crate::config::valid_id(id) => Route::Records(id.to_owned()),
            _ => {
                return Err(Problem::new(
                    ProblemKind::NotFound,
                    "no such route; see /v1/catalog",
                ))
            }
        }
    } else {
        return Err(Problem::new(
            ProblemKind::NotFound,
            "no such route; see /v1/catalog",
        ));
    };
    if req.method() != Method::GET {
        return Err(
            Problem::new(ProblemKind::MethodNotAllowed, "only GET is supported")
                .with_header(header::ALLOW, HeaderValue::from_static("GET")),
        );
    }
    Ok(route)
}

fn scenario(req: &Request<Incoming>) -> Result<Option<String>, Problem> {
    let Some(v) = req.headers().get(SCENARIO_HEADER) else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(s) if crate::config::valid_id(s) => Ok(Some(s.to_owned())),
        _ => Err(Problem::new(
            ProblemKind::BadRequest,
            "Sluice-Scenario must be 1-64 characters of A-Z a-z 0-9 . _ -",
        )),
    }
}

fn over_limit(kind: ProblemKind, o: OverLimit) -> Problem {
    let detail = match kind {
        ProblemKind::RateLimited => format!("too many requests; retry after {} s", o.retry_after.as_secs()),
        _ => "quota exhausted".to_owned(),
    };
    let mut p = Problem::new(kind, detail);
    if let Ok(v) = HeaderValue::from_str(&o.retry_after.as_secs().to_string()) {
        p = p.with_header(header::RETRY_AFTER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&o.policy) {
        p = p.with_header(header::HeaderName::from_static("ratelimit-policy"), v);
    }
    if let Ok(v) = HeaderValue::from_str(&o.state) {
        p = p.with_header(header::HeaderName::from_static("ratelimit"), v);
    }
    p
}

async fn limit(gw: &Gateway, permit: &Permit, query: &RecordsQuery, day: i64) -> Result<u64, Problem> {
    let Some(licence) = &permit.licence else {
        return Ok(query.limit);
    };
    // Shared through Redis when configured (fail closed if it is down), local otherwise.
    let shared = gw.shared_limits.as_deref();
    let rated = match shared {
        Some(s) => s
            .check_rate(&licence.id, licence.rate)
            .await
            .map_err(limits_down)?,
        None => gw.rate.check(&licence.id, licence.rate),
    };
    rated.map_err(|o| over_limit(ProblemKind::RateLimited, o))?;
    let admitted = match shared {
        Some(s) => s
            .admit(&licence.id, licence.quota, day, query.limit)
            .await
            .map_err(limits_down)?,
        None => gw.quotas.admit(&licence.id, licence.quota, day, query.limit),
    };
    admitted.map_err(|q| {
        let secs = seconds_to_midnight(time::OffsetDateTime::now_utc().unix_timestamp());
        let (what, max) = match q {
            QuotaExceeded::Requests(m) => ("requests", m),
            QuotaExceeded::Records(m) => ("records", m),
        };
        let mut p = Problem::new(
            ProblemKind::QuotaExhausted,
            format!("the daily quota of {max} {what} is used up; it resets at 00:00 UTC"),
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            p = p.with_header(header::RETRY_AFTER, v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("\"daily-{what}\";q={max};w=86400")) {
            p = p.with_header(header::HeaderName::from_static("ratelimit-policy"), v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("\"daily-{what}\";r=0;t={secs}")) {
            p = p.with_header(header::HeaderName::from_static("ratelimit"), v);
        }
        p
    })
}

fn limits_down(e: crate::limits_redis::SharedLimitsDown) -> Problem {
    tracing::error!(error = %e, "shared limits unreachable; refusing licensed requests");
    Problem::new(
        ProblemKind::Unavailable,
        "the gateway cannot check the shared rate limits and quotas; try later",
    )
}

/// The query of a records request.
#[derive(Debug, Clone, PartialEq)]
struct RecordsQuery {
    limit: u64,
    offset: u64,
    format: OutputFormat,
    fields: Option<Vec<String>>,
    passthrough: Vec<(String, String)>,
}

impl RecordsQuery {
    fn parse(q: &str, limits: &crate::config::Limits) -> Result<Self, Problem> {
        let bad = |msg: String| Problem::new(ProblemKind::BadRequest, msg);
        let mut out = RecordsQuery {
            limit: limits.default_limit,
            offset: 0,
            format: OutputFormat::Json,
            fields: None,
            passthrough: Vec::new(),
        };
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            match &*k {
                "limit" => {
                    out.limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=limits.max_limit).contains(n))
                        .ok_or_else(|| {
                            bad(format!("limit must be an integer from 1 to {}", limits.max_limit))
                        })?
                }
                "offset" => {
                    out.offset = v
                        .parse()
                        .map_err(|_| bad("offset must be a non-negative integer".into()))?
                }
                "cursor" => out.offset = offset_of(&v).ok_or_else(|| bad("cursor is not valid".into()))?,
                "format" => {
                    out.format = match &*v {
                        "json" => OutputFormat::Json,
                        "ndjson" => OutputFormat::Ndjson,
                        "csv" => OutputFormat::Csv,
                        _ => return Err(bad("format must be json, ndjson or csv".into())),
                    }
                }
                "fields" => {
                    out.fields = Some(
                        v.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    )
                }
                _ => out.passthrough.push((k.into_owned(), v.into_owned())),
            }
        }
        Ok(out)
    }
}

fn cursor_of(offset: u64) -> String {
    hex::encode(format!("o:{offset}"))
}

fn offset_of(cursor: &str) -> Option<u64> {
    let raw = hex::decode(cursor).ok()?;
    std::str::from_utf8(&raw).ok()?.strip_prefix("o:")?.parse().ok()
}

fn content_type(f: OutputFormat) -> &'static str {
    match f {
        OutputFormat::Json => "application/json",
        OutputFormat::Ndjson => "application/x-ndjson",
        OutputFormat::Csv => "text/csv; charset=utf-8",
    }
}

/// Why a stream stopped early.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("upstream body: {0}")]
    Upstream(String),
    #[error("upstream body stalled for {0:?}")]
    Stalled(Duration),
    #[error("upstream body larger than {0} bytes")]
    TooLarge(u64),
    #[error("the client went away")]
    ClientGone,
    #[error("masker: {0}")]
    Mask(#[from] sluice_policy::stream::MaskError),
}

/// Masked output gathered into one chunk when upstream frames are already waiting.
const COALESCE_BYTES: usize = 64 * 1024;

/// One allowed response in flight: upstream body → masker → client.
struct MaskStream {
    gw: Arc<Gateway>,
    ctx: Ctx,
    body: UpstreamBody,
    masker: Masker,
    source: HttpSourceConfig,
    max_upstream_bytes: u64,
    bytes_in: u64,
    started: Instant,
    licence: Option<String>,
    granted: u64,
    day: i64,
    finished: bool,
    /// An error met after output was gathered; reported by the next `next_output`.
    deferred: Option<StreamError>,
}

impl MaskStream {
    /// Reads upstream until the masker produces output or the document ends. `None` = ended.
    ///
    /// Output is coalesced up to [`COALESCE_BYTES`] from frames that are already available
    /// (never waiting for more), so a response goes out in few large writes and TLS records
    /// rather than one per upstream frame.
    async fn next_output(&mut self) -> Result<Option<Bytes>, StreamError> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        let mut out = Vec::new();
        while !self.finished {
            if self.masker.is_full() {
                self.finished = true;
                self.masker.finish(&mut out)?;
                break;
            }
            let frame = if out.is_empty() {
                let wait = Duration::from_millis(self.source.read_timeout_ms);
                tokio::time::timeout(wait, self.body.frame())
                    .await
                    .map_err(|_| StreamError::Stalled(wait))?
            } else if out.len() >= COALESCE_BYTES {
                break;
            } else {
                // Only what is ready now: send what we have rather than wait.
                match futures_util::FutureExt::now_or_never(self.body.frame()) {
                    Some(frame) => frame,
                    None => break,
                }
            };
            if let Err(e) = self.take_frame(frame, &mut out) {
                if out.is_empty() {
                    return Err(e);
                }
                // Complete masked records first; the error ends the stream on the next call.
                self.deferred = Some(e);
                break;
            }
        }
        Ok(Some(Bytes::from(out)).filter(|b| !b.is_empty()))
    }

    /// Feeds one upstream frame (or the end) to the masker.
    fn take_frame(
        &mut self,
        frame: Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>,
        out: &mut Vec<u8>,
    ) -> Result<(), StreamError> {
        match frame {
            None => {
                self.finished = true;
                self.masker.finish(out)?;
            }
            Some(Err(e)) => return Err(StreamError::Upstream(e.to_string())),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    self.bytes_in += data.len() as u64;
                    if self.bytes_in > self.max_upstream_bytes {
                        return Err(StreamError::TooLarge(self.max_upstream_bytes));
                    }
                    self.masker.feed(&data, out)?;
                }
            }
        }
        Ok(())
    }

    fn refund_all(&self) {
        if let Some(l) = &self.licence {
            crate::limits_redis::refund(&self.gw, l, self.day, self.granted);
        }
    }

    async fn run(mut self, first: Option<Bytes>, tx: tokio::sync::mpsc::Sender<Result<Bytes, Aborted>>) {
        let mut pending = first;
        let outcome: Result<(), StreamError> = loop {
            let Some(chunk) = pending.take() else { break Ok(()) };
            if tx.send(Ok(chunk)).await.is_err() {
                break Err(StreamError::ClientGone);
            }
            match self.next_output().await {
                Ok(next) => pending = next,
                Err(e) => break Err(e),
            }
        };
        let stats = self.masker.stats();
        let dataset = DatasetLabels {
            dataset: self.ctx.dataset.clone().unwrap_or_default(),
        };
        let (allowed, reason, status) = match &outcome {
            Ok(()) => (true, None, StatusCode::OK),
            Err(e) => {
                let _ = tx.send(Err(Aborted(e.to_string()))).await;
                self.gw.metrics.aborted_streams.get_or_create(&dataset).inc();
                tracing::warn!(request_id = %self.ctx.request_id, error = %e, "stream aborted");
                (true, Some("stream-aborted"), StatusCode::OK)
            }
        };
        drop(tx);
        if let Some(l) = &self.licence {
            crate::limits_redis::refund(
                &self.gw,
                l,
                self.day,
                self.granted.saturating_sub(stats.records_out),
            );
        }
        self.gw
            .metrics
            .fields_masked
            .get_or_create(&dataset)
            .inc_by(stats.fields_masked);
        self.gw
            .metrics
            .records_out
            .get_or_create(&dataset)
            .inc_by(stats.records_out);
        let record = self.ctx.record(allowed, reason, status, &stats, self.started);
        if let Err(e) = self.gw.audit.append(record).await {
            tracing::error!(request_id = %self.ctx.request_id, error = %e, "audit append failed after a response");
        }
        count(
            &self.gw,
            &self.ctx,
            allowed,
            reason.unwrap_or("ok"),
            status,
            stats.records_out,
            self.started,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        assert_eq!(offset_of(&cursor_of(1234)), Some(1234));
        assert_eq!(offset_of("zz"), None);
        assert_eq!(offset_of(&hex::encode("x:1")), None);
    }

    #[test]
    fn query_parsing() {
        let l = crate::config::Limits::default();
        let q = RecordsQuery::parse("limit=5&offset=10&format=csv&fields=a,b&district=x", &l).unwrap();
        assert_eq!(q.limit, 5);
        assert_eq!(q.offset, 10);
        assert_eq!(q.format, OutputFormat::Csv);
        assert_eq!(q.fields, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(q.passthrough, vec![("district".to_owned(), "x".to_owned())]);
        assert!(RecordsQuery::parse("limit=0", &l).is_err());
        assert!(RecordsQuery::parse("limit=100000000", &l).is_err());
        assert!(RecordsQuery::parse("format=xml", &l).is_err());
        assert!(RecordsQuery::parse("offset=-1", &l).is_err());
    }
}
