//! Prometheus metrics of the gateway, rendered by the admin listener at `/metrics`.

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Dataset id, or `-` when the route named none.
    pub dataset: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// Refusal code, or `ok`.
    pub reason: String,
    /// HTTP status.
    pub status: u16,
}

/// Labels of risk alerts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RiskLabels {
    /// Licence id.
    pub licence: String,
    /// Risk rule id.
    pub rule: String,
}

/// Labels naming a dataset.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatasetLabels {
    /// Dataset id.
    pub dataset: String,
}

/// Labels of a source pool gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// Dataset id.
    pub dataset: String,
    /// `open`, `idle` or `max`.
    pub state: &'static str,
}

/// Labels naming a certificate.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertLabels {
    /// `server` or `client_ca`.
    pub cert: String,
}

/// All gateway metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests by dataset, decision, reason and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency to the end of the response, seconds.
    pub latency: Histogram,
    /// Field values masked, by dataset.
    pub fields_masked: Family<DatasetLabels, Counter>,
    /// Records delivered, by dataset.
    pub records_out: Family<DatasetLabels, Counter>,
    /// Records dropped for an upheld objection, by dataset.
    pub records_suppressed: Family<DatasetLabels, Counter>,
    /// Risk rules crossed, by licence and rule.
    pub risk_alerts: Family<RiskLabels, Counter>,
    /// Upstream failures, by dataset.
    pub upstream_errors: Family<DatasetLabels, Counter>,
    /// Streams aborted mid-body (invalid upstream data, limits).
    pub aborted_streams: Family<DatasetLabels, Counter>,
    /// Time from asking a source for a page to its first output, seconds, by dataset.
    pub source_latency: Family<DatasetLabels, Histogram>,
    /// Records read from sources (before filters), by dataset.
    pub source_records: Family<DatasetLabels, Counter>,
    /// Source connection pools (open, idle, max), set when `/metrics` is rendered.
    pub source_pool: Family<PoolLabels, Gauge<i64, AtomicI64>>,
    /// TLS handshakes that failed or timed out.
    pub handshake_failures: Counter,
    /// Requests the HTTP layer refused before the data plane saw them.
    pub protocol_errors: Counter,
    /// Days until certificates expire.
    pub cert_days_to_expiry: Family<CertLabels, Gauge<i64, AtomicI64>>,
    /// Open connections.
    pub connections: Gauge<i64, AtomicI64>,
    /// Usage reports the registry did not accept (each attempt).
    pub usage_report_failures: Counter,
    /// Freshness of the registry snapshot, when `[registry]` is configured.
    pub freshness: Option<RegistryFreshness>,
}

/// Gauges of the registry subscription, set from its state when `/metrics` is rendered.
#[derive(Clone, Default)]
pub struct RegistryFreshness {
    /// Revision of the snapshot held (0: none).
    pub revision: Gauge<i64, AtomicI64>,
    /// Seconds since the registry last confirmed the snapshot (since start if it never did).
    pub age_seconds: Gauge<f64, AtomicU64>,
    /// 1 while older than the staleness bound (conditional data refused), else 0.
    pub stale: Gauge<i64, AtomicI64>,
}

impl RegistryFreshness {
    /// Sets all three from the subscription's state.
    pub fn set(&self, revision: u64, age: Duration, stale: bool) {
        self.revision.set(i64::try_from(revision).unwrap_or(i64::MAX));
        self.age_seconds.set(age.as_secs_f64());
        self.stale.set(i64::from(stale));
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Metrics {
    /// All metrics; those of the registry subscription and usage reports only when
    /// `registry_configured` (a `[registry]` section is configured).
    pub fn new(registry_configured: bool) -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by dataset, decision, reason and status",
            requests.clone(),
        );
        let latency = Histogram::new([
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
        ]);
        registry.register(
            "request_duration_seconds",
            "Request latency to the end of the body",
            latency.clone(),
        );
        let fields_masked = Family::<DatasetLabels, Counter>::default();
        registry.register("fields_masked", "Field values masked", fields_masked.clone());
        let records_out = Family::<DatasetLabels, Counter>::default();
        registry.register("records_out", "Records delivered", records_out.clone());
        let risk_alerts = Family::<RiskLabels, Counter>::default();
        registry.register("risk_alerts", "Risk rules crossed", risk_alerts.clone());
        let records_suppressed = Family::<DatasetLabels, Counter>::default();
        registry.register(
            "records_suppressed",
            "Records dropped for an upheld objection",
            records_suppressed.clone(),
        );
        let upstream_errors = Family::<DatasetLabels, Counter>::default();
        registry.register("upstream_errors", "Upstream failures", upstream_errors.clone());
        let aborted_streams = Family::<DatasetLabels, Counter>::default();
        registry.register(
            "aborted_streams",
            "Responses aborted mid-stream",
            aborted_streams.clone(),
        );
        let source_latency = Family::<DatasetLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ])
        });
        registry.register(
            "source_first_output_seconds",
            "Time from asking a source for a page to its first output",
            source_latency.clone(),
        );
        let source_records = Family::<DatasetLabels, Counter>::default();
        registry.register(
            "source_records",
            "Records read from sources, before filters",
            source_records.clone(),
        );
        let source_pool = Family::<PoolLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "source_pool_connections",
            "Source connection pools: open, idle and max connections",
            source_pool.clone(),
        );
        let handshake_failures = Counter::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes failed or timed out",
            handshake_failures.clone(),
        );
        let protocol_errors = Counter::default();
        registry.register(
            "http_protocol_errors",
            "Requests the HTTP layer refused before the gateway saw them (unparsable or far over the head limits)",
            protocol_errors.clone(),
        );
        let cert_days_to_expiry = Family::<CertLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "cert_days_to_expiry",
            "Days until a certificate expires",
            cert_days_to_expiry.clone(),
        );
        let connections = Gauge::<i64, AtomicI64>::default();
        registry.register("open_connections", "Open client connections", connections.clone());
        let usage_report_failures = Counter::default();
        let freshness = registry_configured.then(RegistryFreshness::default);
        if let Some(f) = &freshness {
            registry.register(
                "usage_report_failures",
                "Usage reports the registry did not accept (attempts)",
                usage_report_failures.clone(),
            );
            registry.register(
                "registry_snapshot_revision",
                "Revision of the registry snapshot held",
                f.revision.clone(),
            );
            registry.register(
                "registry_snapshot_age_seconds",
                "Seconds since the registry last confirmed the snapshot",
                f.age_seconds.clone(),
            );
            registry.register(
                "registry_stale",
                "1 while the snapshot is older than the staleness bound",
                f.stale.clone(),
            );
        }
        Self {
            registry,
            requests,
            latency,
            fields_masked,
            records_out,
            records_suppressed,
            risk_alerts,
            upstream_errors,
            aborted_streams,
            source_latency,
            source_records,
            source_pool,
            handshake_failures,
            protocol_errors,
            cert_days_to_expiry,
            connections,
            usage_report_failures,
            freshness,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl sluice_net::server::ConnEvents for Metrics {
    fn handshake_failed(&self) {
        self.handshake_failures.inc();
    }

    fn protocol_error(&self) {
        self.protocol_errors.inc();
    }

    fn opened(&self) {
        self.connections.inc();
    }

    fn closed(&self) {
        self.connections.dec();
    }
}
