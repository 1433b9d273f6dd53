//! Risk warning at the gateway (风险预警): every request's outcome counts towards the
//! registry's risk rules per licence ([`sluice_policy::risk::Tracker`]); a crossed rule is
//! logged, counted (`sluice_risk_alerts_total{licence,rule}`), sent to the configured webhook
//! (a signed JSON body, retried) and reported to the registry (retried). A `suspend` rule
//! also **holds** the licence here at once: the gateway refuses it (`licence-suspended`)
//! before the registry has answered, and keeps refusing until it has applied a snapshot at
//! least as new as the registry's answer (which suspended the licence everywhere).

use crate::config::RiskSection;
use crate::metrics::{Metrics, RiskLabels};
use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use sluice_connectors::http::UpstreamClient;
use sluice_net::problem::ProblemCode;
use sluice_net::registry_client::RegistryClient;
use sluice_policy::risk::{Event, RiskAction, RiskAlert, RiskRule, Tracker};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};

/// Alerts waiting for delivery; beyond it an alert is logged and not delivered.
const QUEUE: usize = 1_024;
/// Deliveries running at once.
const DELIVERIES: usize = 32;
/// How long the registry report is retried.
const REPORT_FOR: Duration = Duration::from_secs(600);
/// Webhook attempts (backoff 0.5 s, doubling).
const WEBHOOK_ATTEMPTS: u32 = 6;
/// The webhook's answer must come within this.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// A licence held after a `suspend` alert.
#[derive(Debug, Clone)]
struct Hold {
    /// The alert's evidence, sent as the refusal's reason.
    reason: String,
    /// The registry's snapshot revision after it recorded the alert; `None` until it did.
    acknowledged: Option<u64>,
}

/// The rules in force, the counters, the held licences and the delivery queue.
pub struct RiskWatch {
    rules: Mutex<Arc<Vec<RiskRule>>>,
    tracker: Mutex<Tracker>,
    held: Mutex<HashMap<String, Hold>>,
    queue: mpsc::Sender<RiskAlert>,
    metrics: Arc<Metrics>,
}

impl RiskWatch {
    /// A watch with no rules, and the receiving end of its delivery queue.
    pub fn new(metrics: Arc<Metrics>) -> (Arc<Self>, mpsc::Receiver<RiskAlert>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let w = Self {
            rules: Mutex::new(Arc::default()),
            tracker: Mutex::default(),
            held: Mutex::default(),
            queue,
            metrics,
        };
        (Arc::new(w), rx)
    }

    /// Replaces the rules (from a snapshot), and lets go of held licences the registry's
    /// snapshot at `revision` now covers.
    pub fn snapshot_applied(&self, rules: &[RiskRule], revision: u64) {
        *lock(&self.rules) = Arc::new(rules.to_vec());
        lock(&self.held).retain(|licence, h| {
            let keep = h.acknowledged.is_none_or(|r| r > revision);
            if !keep {
                tracing::info!(%licence, revision, "risk hold released: the registry's snapshot decides now");
            }
            keep
        });
    }

    /// Why the licence is held, when it is.
    pub fn held(&self, licence: &str) -> Option<String> {
        lock(&self.held).get(licence).map(|h| h.reason.clone())
    }

    /// Counts one request's outcome for `licence` at `at` (unix seconds).
    pub fn observe(
        &self,
        licence: &str,
        at: i64,
        records: u64,
        refusal: Option<ProblemCode>,
        continuation: bool,
    ) {
        let rules = lock(&self.rules).clone();
        if rules.is_empty() {
            return;
        }
        let event = Event {
            licence,
            at,
            records,
            refusal,
            continuation,
        };
        let alerts = lock(&self.tracker).observe(&rules, &event);
        for alert in alerts {
            self.raise(alert);
        }
    }

    /// Counts the record keys one response served under `licence` (their hashes) against
    /// the `keys` rules.
    pub fn observe_keys(&self, licence: &str, at: i64, keys: &[u128]) {
        if keys.is_empty() {
            return;
        }
        let rules = lock(&self.rules).clone();
        if !rules
            .iter()
            .any(|r| r.signal == sluice_policy::risk::Signal::Keys)
        {
            return;
        }
        let alerts = lock(&self.tracker).observe_keys(&rules, licence, at, keys);
        for alert in alerts {
            self.raise(alert);
        }
    }

    fn raise(&self, alert: RiskAlert) {
        tracing::warn!(
            alert = %alert.id, licence = %alert.licence, rule = %alert.rule, action = alert.action.as_str(),
            evidence = %alert.evidence(), "risk rule crossed"
        );
        self.metrics
            .risk_alerts
            .get_or_create(&RiskLabels {
                licence: alert.licence.clone(),
                rule: alert.rule.clone(),
            })
            .inc();
        if alert.action == RiskAction::Suspend {
            lock(&self.held).insert(
                alert.licence.clone(),
                Hold {
                    reason: format!("suspended by risk rule {}: {}", alert.rule, alert.evidence()),
                    acknowledged: None,
                },
            );
            // A licence resumed later starts counting afresh.
            lock(&self.tracker).forget(&alert.licence);
        }
        if let Err(e) = self.queue.try_send(alert) {
            tracing::error!(error = %e, "risk alert queue full: alert not delivered");
        }
    }

    fn acknowledged(&self, licence: &str, revision: u64) {
        if let Some(h) = lock(&self.held).get_mut(licence) {
            h.acknowledged = Some(revision);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where alerts go besides the log and the metric.
pub struct Delivery {
    /// This gateway's id (in the webhook body).
    pub gateway: String,
    /// The registry, when the gateway has one.
    pub registry: Option<RegistryClient>,
    /// The webhook, when configured.
    pub webhook: Option<Webhook>,
}

/// A configured webhook: its URL, the HMAC key and a client.
pub struct Webhook {
    url: http::Uri,
    key: aws_lc_rs::hmac::Key,
    client: UpstreamClient,
}

/// Why the webhook could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL.
    #[error("risk.webhook_url: {0}")]
    Url(String),
    /// The secret.
    #[error("risk.webhook_secret: {0}")]
    Secret(String),
    /// TLS settings.
    #[error("risk.webhook_tls: {0}")]
    Tls(String),
}

impl Webhook {
    /// The webhook `section` names, if any.
    pub fn from_config(section: &RiskSection) -> Result<Option<Self>, WebhookError> {
        let Some(url) = &section.webhook_url else {
            return Ok(None);
        };
        let url: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| WebhookError::Url(e.to_string()))?;
        let secret = section
            .webhook_secret
            .as_ref()
            .ok_or_else(|| WebhookError::Secret("required with webhook_url".into()))?
            .load()
            .map_err(|e| WebhookError::Secret(e.to_string()))?;
        let client = match &section.webhook_tls {
            Some(tls) => UpstreamClient::with_tls(
                Duration::from_secs(5),
                tls.client_config()
                    .map_err(|e| WebhookError::Tls(e.to_string()))?,
            ),
            None => UpstreamClient::new(Duration::from_secs(5)),
        };
        Ok(Some(Self {
            url,
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes()),
            client,
        }))
    }

    /// `Sluice-Signature` of `body` sent at `t`: `t=<unix>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>`.
    pub fn signature(&self, t: i64, body: &[u8]) -> String {
        sign(&self.key, t, body)
    }

    async fn send(&self, body: &Bytes) -> Result<(), String> {
        let t = time::OffsetDateTime::now_utc().unix_timestamp();
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header("sluice-signature", self.signature(t, body))
            .body(Full::new(body.clone()))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(WEBHOOK_TIMEOUT, self.client.send(req))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let _ = tokio::time::timeout(WEBHOOK_TIMEOUT, resp.into_body().collect()).await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    }
}

/// `t=<t>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>`: the receiver recomputes it with the shared
/// secret and refuses old `t` (replays).
pub fn sign(key: &aws_lc_rs::hmac::Key, t: i64, body: &[u8]) -> String {
    let mut ctx = aws_lc_rs::hmac::Context::with_key(key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={t},v1={}", hex::encode(ctx.sign().as_ref()))
}

/// Whether `signature` (a `Sluice-Signature` header) signs `body` with `secret`, in constant
/// time: what a webhook receiver checks (it should also refuse an old `t`).
pub fn verify(secret: &[u8], signature: &str, body: &[u8]) -> bool {
    let Some((t, tag)) = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let Ok(tag) = hex::decode(tag) else {
        return false;
    };
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let mut signed = Vec::with_capacity(t.len() + 1 + body.len());
    signed.extend_from_slice(t.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    aws_lc_rs::hmac::verify(&key, &signed, &tag).is_ok()
}

/// Delivers queued alerts (each to the registry and the webhook, retried) until `stop`.
pub async fn deliver(
    watch: Arc<RiskWatch>,
    mut alerts: mpsc::Receiver<RiskAlert>,
    delivery: Delivery,
    mut stop: watch::Receiver<bool>,
) {
    let delivery = Arc::new(delivery);
    let slots = Arc::new(Semaphore::new(DELIVERIES));
    loop {
        let alert = tokio::select! {
            a = alerts.recv() => match a { Some(a) => a, None => break },
            _ = stop.changed() => break,
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (watch, delivery, stop) = (watch.clone(), delivery.clone(), stop.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let body = Bytes::from(
                serde_json::to_vec(&serde_json::json!({
                    "gateway": delivery.gateway,
                    "alert": alert,
                    "evidence": alert.evidence(),
                }))
                .unwrap_or_default(),
            );
            tokio::join!(
                report(&watch, &delivery, &alert, stop),
                notify(&delivery, &alert, &body)
            );
        });
    }
}

/// Reports the alert to the registry until it answers (a repeat is recorded once there).
async fn report(watch: &RiskWatch, d: &Delivery, alert: &RiskAlert, mut stop: watch::Receiver<bool>) {
    let Some(client) = &d.registry else { return };
    let Ok(body) = serde_json::to_value(alert) else {
        return;
    };
    let started = std::time::Instant::now();
    let mut wait = Duration::from_millis(100);
    loop {
        match client.post("/v1/risk-alerts", &body).await {
            Ok(r) if r.status.is_success() => {
                let revision = r
                    .headers
                    .get("sluice-revision")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                tracing::info!(alert = %alert.id, revision, "risk alert recorded by the registry");
                if alert.action == RiskAction::Suspend {
                    watch.acknowledged(&alert.licence, revision);
                }
                return;
            }
            Ok(r) if r.status.is_client_error() => {
                // The registry refuses it for good: the hold stays until an administrator acts.
                tracing::error!(alert = %alert.id, status = %r.status, problem = ?r.problem(), "the registry refused a risk alert");
                return;
            }
            Ok(r) => {
                tracing::warn!(alert = %alert.id, status = %r.status, "risk alert report failed; retrying")
            }
            Err(e) => tracing::warn!(alert = %alert.id, error = %e, "risk alert report failed; retrying"),
        }
        if started.elapsed() > REPORT_FOR {
            tracing::error!(alert = %alert.id, "risk alert not reported to the registry: gave up");
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// Calls the webhook, retried with backoff.
async fn notify(d: &Delivery, alert: &RiskAlert, body: &Bytes) {
    let Some(hook) = &d.webhook else { return };
    let mut wait = Duration::from_millis(500);
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        match hook.send(body).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(alert = %alert.id, attempt, error = %e, "risk webhook failed"),
        }
        if attempt < WEBHOOK_ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    tracing::error!(alert = %alert.id, "risk webhook not delivered: gave up");
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_policy::risk::{Signal, Window};

    fn rule() -> RiskRule {
        RiskRule {
            id: "bulk".into(),
            signal: Signal::Records,
            window: Window::Minute,
            threshold: 10,
            factor: None,
            licence: None,
            codes: vec![],
            hours: None,
            action: RiskAction::Suspend,
        }
    }

    #[test]
    fn a_suspend_rule_holds_the_licence_until_a_snapshot_covers_the_registry_s_answer() {
        let (w, mut rx) = RiskWatch::new(Arc::new(Metrics::new(true)));
        w.snapshot_applied(&[rule()], 5);
        w.observe("l1", 600, 9, None, false);
        assert!(w.held("l1").is_none());
        w.observe("l1", 601, 1, None, false);
        assert!(w.held("l1").unwrap().contains("bulk"));
        let alert = rx.try_recv().unwrap();
        assert_eq!((alert.licence.as_str(), alert.value), ("l1", 10));
        // A snapshot before the registry answered changes nothing.
        w.snapshot_applied(&[rule()], 6);
        assert!(w.held("l1").is_some());
        w.acknowledged("l1", 8);
        w.snapshot_applied(&[rule()], 7);
        assert!(w.held("l1").is_some());
        w.snapshot_applied(&[rule()], 8);
        assert!(w.held("l1").is_none());
        // The counts started afresh.
        w.observe("l1", 602, 9, None, false);
        assert!(w.held("l1").is_none());
    }

    #[test]
    fn webhook_signatures_are_hmac_sha256_over_the_time_and_the_body() {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"secret");
        let sig = sign(&key, 1_700_000_000, b"{}");
        let tag = sig.strip_prefix("t=1700000000,v1=").unwrap();
        let want = aws_lc_rs::hmac::sign(&key, b"1700000000.{}");
        assert_eq!(tag, hex::encode(want.as_ref()));
        assert_ne!(sign(&key, 1_700_000_001, b"{}"), sig);
        assert!(verify(b"secret", &sig, b"{}"));
        assert!(!verify(b"secret", &sig, b"{ }"));
        assert!(!verify(b"other", &sig, b"{}"));
        assert!(!verify(b"secret", "v1=00", b"{}"));
    }
}
