//! Phase: audit and count. Every request ends here exactly once: a refusal as a problem, an
//! allowed response when its stream ends (cleanly or aborted), with what was actually sent. A
//! stream's end is not sent before its record is durable.

use super::context::Ctx;
use crate::audit::{AuditError, AuditLog};
use crate::metrics::{DatasetLabels, Metrics, RequestLabels};
use crate::usage::{Counts, UsageCounters, UsageKey, NO_DATASET};
use http::{HeaderValue, Response, StatusCode};
use sluice_net::body::RespBody;
use sluice_net::problem::{Problem, ProblemCode};
use sluice_policy::served::ServedDigest;
use sluice_policy::stream::MaskStats;
use std::future::Future;
use std::sync::Arc;

/// Where outcomes go: the audit log, the metrics and the usage counters.
#[derive(Clone)]
pub struct Outcomes {
    /// The hash-chained audit log.
    pub audit: Arc<AuditLog>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Usage counters reported to the registry, when `[registry]` is configured.
    pub usage: Option<Arc<UsageCounters>>,
    /// Each source's last outcome, for `/readyz`.
    pub sources: Arc<crate::source_health::SourceHealth>,
    /// Risk rules counting outcomes per licence, when the gateway follows a registry.
    pub risk: Option<Arc<crate::risk::RiskWatch>>,
}

/// What a response sent, as its audit record keeps it: the masker's counters and the digest
/// of the record keys it wrote.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    /// The masker's counters.
    pub stats: MaskStats,
    /// The keys of the records written, when the dataset declares a record key.
    pub served: Option<ServedDigest>,
    /// Differential-privacy loss an aggregate answer spent.
    pub epsilon: Option<f64>,
}

/// How a response that started streaming ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// Every record went out.
    Complete,
    /// The transfer was aborted (source failure, client gone, masker refusal, write stall),
    /// with the stable reason audited.
    Aborted(&'static str),
}

impl StreamEnd {
    /// The audited reason: none for a complete stream.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            StreamEnd::Complete => None,
            StreamEnd::Aborted(reason) => Some(reason),
        }
    }
}

impl Outcomes {
    /// Audits and counts a refusal and renders its problem. If the audit log cannot take the
    /// record, the client gets `unavailable` instead: nothing is answered unrecorded.
    pub async fn refuse(&self, ctx: &Ctx, problem: Problem) -> Response<RespBody> {
        let code = problem.code.code();
        let status = problem.status();
        let audited = self
            .audit
            .append(ctx.record(false, Some(code), status, &MaskStats::default()))
            .await;
        self.count(ctx, false, code, status, &MaskStats::default());
        tracing::info!(
            request_id = %ctx.request_id, licensee = ?ctx.licensee, dataset = ?ctx.dataset,
            reason = code, status = status.as_u16(), "refused"
        );
        if let Err(e) = audited {
            tracing::error!(error = %e, request_id = %ctx.request_id, "audit append failed");
            return unavailable_audit().into_response(&ctx.path, Some(&ctx.request_id));
        }
        let mut resp = problem.into_response(&ctx.path, Some(&ctx.request_id));
        set_request_id(&mut resp, &ctx.request_id);
        resp
    }

    /// Audits and counts an answer sent whole (the catalog). An audit failure is a problem.
    pub async fn answered(&self, ctx: &Ctx) -> Result<(), Problem> {
        self.audit
            .append(ctx.record(true, None, StatusCode::OK, &MaskStats::default()))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "audit append failed");
                unavailable_audit()
            })?;
        self.count(ctx, true, "ok", StatusCode::OK, &MaskStats::default());
        Ok(())
    }

    /// Counts the record keys a response served (their hashes) for the licence's `keys` risk
    /// rules.
    pub fn count_keys(&self, ctx: &Ctx, keys: &[u128]) {
        if let (Some(risk), Some(licence)) = (&self.risk, &ctx.licence) {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            risk.observe_keys(licence, now, keys);
        }
    }

    /// Fails closed before any data leaves: the audit log must be able to record it.
    pub fn check_audit(&self) -> Result<(), Problem> {
        self.audit.health().map_err(|e| {
            tracing::error!(error = %e, "audit append failed");
            unavailable_audit()
        })
    }

    /// Appends the audit record of a streamed response that ended, with what was sent;
    /// resolves once the record is durable. The future does not borrow `self`.
    pub fn audit_stream(
        &self,
        ctx: &Ctx,
        end: StreamEnd,
        sent: &Sent,
    ) -> impl Future<Output = Result<u64, AuditError>> + Send + 'static {
        let mut record = ctx.record(true, end.reason(), StatusCode::OK, &sent.stats);
        record.served = sent.served.as_ref().map(ServedDigest::encode);
        record.epsilon = sent.epsilon;
        self.audit.append(record)
    }

    /// Audits and counts a page masked whole before its head: the record is durable before
    /// any of it leaves. An audit failure is a problem (nothing has been sent).
    pub async fn audit_whole(&self, ctx: &Ctx, sent: &Sent) -> Result<(), Problem> {
        self.audit_stream(ctx, StreamEnd::Complete, sent)
            .await
            .map_err(|e| {
                tracing::error!(request_id = %ctx.request_id, error = %e, "audit append failed");
                unavailable_audit()
            })?;
        self.count_stream(ctx, StreamEnd::Complete, &sent.stats);
        Ok(())
    }

    /// Counts a streamed response that ended in the metrics and the usage counters.
    pub fn count_stream(&self, ctx: &Ctx, end: StreamEnd, stats: &MaskStats) {
        let dataset = DatasetLabels {
            dataset: ctx.dataset.clone().unwrap_or_default(),
        };
        if end != StreamEnd::Complete {
            self.metrics.aborted_streams.get_or_create(&dataset).inc();
        }
        self.metrics
            .fields_masked
            .get_or_create(&dataset)
            .inc_by(stats.fields_masked);
        self.metrics
            .records_out
            .get_or_create(&dataset)
            .inc_by(stats.records_out);
        if stats.records_suppressed > 0 {
            self.metrics
                .records_suppressed
                .get_or_create(&dataset)
                .inc_by(stats.records_suppressed);
        }
        self.metrics
            .source_records
            .get_or_create(&dataset)
            .inc_by(stats.records_in);
        self.count(ctx, true, end.reason().unwrap_or("ok"), StatusCode::OK, stats);
    }

    /// Counts the differential-privacy loss an aggregate answer spent in the licensee's usage
    /// (reported to the registry with the requests and records).
    pub fn count_epsilon(&self, ctx: &Ctx, epsilon: f64) {
        self.count_usage(
            ctx,
            Counts {
                epsilon_micros: (epsilon * 1e6).ceil().max(0.0) as u64,
                ..Counts::default()
            },
        );
    }

    /// Adds `counts` to an identified licensee's usage counters (reported to the registry).
    fn count_usage(&self, ctx: &Ctx, counts: Counts) {
        if let (Some(usage), Some(licensee)) = (&self.usage, &ctx.licensee) {
            usage.record(
                UsageKey {
                    licensee: licensee.as_str().to_owned(),
                    dataset: ctx.dataset.clone().unwrap_or_else(|| NO_DATASET.into()),
                    licence: ctx.licence.clone(),
                },
                counts,
            );
        }
    }

    /// Counts a source failure for the dataset and remembers it for `/readyz`.
    pub fn upstream_error(&self, ctx: &Ctx, error: &str) {
        let dataset = ctx.dataset.clone().unwrap_or_default();
        self.sources.failed(&dataset, error);
        self.metrics
            .upstream_errors
            .get_or_create(&DatasetLabels { dataset })
            .inc();
    }

    /// A source gave its first output after `waited`.
    pub fn source_answered(&self, ctx: &Ctx, waited: std::time::Duration) {
        let dataset = ctx.dataset.clone().unwrap_or_default();
        self.sources.ok(&dataset);
        self.metrics
            .source_latency
            .get_or_create(&DatasetLabels { dataset })
            .observe(waited.as_secs_f64());
    }

    /// Counts an outcome in the metrics and, for an identified licensee, in the usage
    /// counters: every request, the records delivered and their masked or dropped field
    /// values (from `sent`), and whether a problem was sent and under which code (`reason`).
    fn count(&self, ctx: &Ctx, allowed: bool, reason: &'static str, status: StatusCode, sent: &MaskStats) {
        let refused = status.is_client_error() || status.is_server_error();
        if let Some(risk) = &self.risk {
            let code = refused
                .then(|| ProblemCode::ALL.iter().copied().find(|c| c.code() == reason))
                .flatten();
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            for licence in ctx.licence.iter().chain(&ctx.attributed) {
                risk.observe(licence, now, sent.records_out, code, ctx.continuation);
            }
        }
        self.count_usage(
            ctx,
            Counts {
                requests: 1,
                records: sent.records_out,
                refusals: u64::from(refused),
                refusals_by_code: if refused {
                    std::collections::BTreeMap::from([(reason, 1)])
                } else {
                    std::collections::BTreeMap::new()
                },
                masked_fields: sent.fields_masked.saturating_add(sent.fields_dropped),
                epsilon_micros: 0,
            },
        );
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                dataset: ctx.dataset.clone().unwrap_or_else(|| "-".into()),
                decision: if allowed { "allow" } else { "deny" }.into(),
                reason: reason.into(),
                status: status.as_u16(),
            })
            .inc();
        self.metrics.latency.observe(ctx.started.elapsed().as_secs_f64());
    }
}

fn unavailable_audit() -> Problem {
    Problem::new(
        ProblemCode::Unavailable,
        "the gateway cannot record this request; try later",
    )
}

/// Sets `Sluice-Request-Id`, which ties a response to its audit record.
pub fn set_request_id(resp: &mut Response<RespBody>, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert("sluice-request-id", v);
    }
}
