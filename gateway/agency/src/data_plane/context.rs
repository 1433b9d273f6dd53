//! What is known about a request as it moves through the phases; it becomes the audit record.

use crate::audit::AuditRecord;
use http::{Request, StatusCode};
use sluice_net::server::Conn;
use sluice_policy::id::LicenseeId;
use sluice_policy::stream::MaskStats;
use std::time::Instant;

/// The request's facts, filled in phase by phase.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// When the request arrived.
    pub started: Instant,
    /// Request id (UUID v7), sent as `Sluice-Request-Id` and in the audit record.
    pub request_id: String,
    /// HTTP method.
    pub method: String,
    /// Request path (the problem's `instance`).
    pub path: String,
    /// Client address.
    pub client: String,
    /// The licensee proven by the client certificate.
    pub licensee: Option<LicenseeId>,
    /// Certificate fingerprint, hex.
    pub fingerprint: Option<String>,
    /// Certificate serial, hex.
    pub serial: Option<String>,
    /// The licence that allowed the request.
    pub licence: Option<String>,
    /// For a request refused before a licence allowed it, the licences the licensee holds
    /// for the dataset under any scenario: its risk rules count the refusal against them
    /// (probing for scenarios or fields it is not licensed for).
    pub attributed: Vec<String>,
    /// The declared scenario.
    pub scenario: Option<String>,
    /// The dataset asked for.
    pub dataset: Option<String>,
    /// It asked for a later page (`after` or `offset`): what the risk rule `pages` counts.
    pub continuation: bool,
}

impl Ctx {
    /// The context of a request that just arrived on `conn`.
    pub fn new<B>(req: &Request<B>, conn: &Conn) -> Self {
        Self {
            started: Instant::now(),
            request_id: uuid::Uuid::now_v7().to_string(),
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
            client: conn.peer.to_string(),
            licensee: None,
            fingerprint: None,
            serial: None,
            licence: None,
            attributed: Vec::new(),
            scenario: None,
            dataset: None,
            continuation: false,
        }
    }

    /// The audit record of this request's outcome.
    pub fn record(
        &self,
        allowed: bool,
        reason: Option<&str>,
        status: StatusCode,
        stats: &MaskStats,
    ) -> AuditRecord {
        AuditRecord {
            request_id: self.request_id.clone(),
            licensee: self.licensee.as_ref().map(|l| l.as_str().to_owned()),
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
            suppressed: stats.records_suppressed,
            disputed: stats.records_disputed,
            bytes_out: stats.bytes_out,
            latency_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            client_addr: Some(self.client.clone()),
            method: self.method.clone(),
            path: self.path.clone(),
            ..AuditRecord::default()
        }
    }
}
