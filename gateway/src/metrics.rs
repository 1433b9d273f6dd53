//! Prometheus metrics of the gateway, rendered by the admin listener at `/metrics`.

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicI64;

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

/// Labels naming a dataset.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatasetLabels {
    /// Dataset id.
    pub dataset: String,
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
    /// Upstream failures, by dataset.
    pub upstream_errors: Family<DatasetLabels, Counter>,
    /// Streams aborted mid-body (invalid upstream data, limits).
    pub aborted_streams: Family<DatasetLabels, Counter>,
    /// TLS handshakes that failed or timed out.
    pub handshake_failures: Counter,
    /// Days until certificates expire.
    pub cert_days_to_expiry: Family<CertLabels, Gauge<i64, AtomicI64>>,
    /// Open connections.
    pub connections: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
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
        let upstream_errors = Family::<DatasetLabels, Counter>::default();
        registry.register("upstream_errors", "Upstream failures", upstream_errors.clone());
        let aborted_streams = Family::<DatasetLabels, Counter>::default();
        registry.register(
            "aborted_streams",
            "Responses aborted mid-stream",
            aborted_streams.clone(),
        );
        let handshake_failures = Counter::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes failed or timed out",
            handshake_failures.clone(),
        );
        let cert_days_to_expiry = Family::<CertLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "cert_days_to_expiry",
            "Days until a certificate expires",
            cert_days_to_expiry.clone(),
        );
        let connections = Gauge::<i64, AtomicI64>::default();
        registry.register("open_connections", "Open client connections", connections.clone());
        Self {
            registry,
            requests,
            latency,
            fields_masked,
            records_out,
            upstream_errors,
            aborted_streams,
            handshake_failures,
            cert_days_to_expiry,
            connections,
        }
    }
}

impl Metrics {
    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
