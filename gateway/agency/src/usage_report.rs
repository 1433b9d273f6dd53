//! The usage reporter: every `[registry] usage_interval_s` it takes the gateway's usage
//! counters and posts them to the registry (`POST /v1/usage`) over the subscription's mTLS
//! client identity.
//!
//! A report, once made, never changes: a failed one is kept and sent again, with the same
//! `report_id` and body, until the registry accepts it, so a lost answer cannot count twice
//! (the registry is idempotent by gateway and report id). While one is pending, new counts keep
//! accumulating in the live counters (bounded, see [`crate::usage`]) and go in the next report.
//! On graceful shutdown it reports once more within a bounded wait; reports still unsent then
//! are written to `<state_dir>/usage-unsent.json` and sent first after the next start.

use crate::metrics::Metrics;
use crate::usage::{UsageCounters, UsageKey, UsageTable};
use sluice_net::registry_client::RegistryClient;
pub use sluice_policy::usage::{UsageCount, UsageReport};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;

/// Name of the file holding reports unsent at shutdown, in the state folder.
pub const UNSENT_FILE: &str = "usage-unsent.json";

/// A report of `table` for the period `from`..`until`, with a fresh id (a UUID, kept across
/// retries).
pub fn report_of(table: UsageTable, from: OffsetDateTime, until: OffsetDateTime) -> UsageReport {
    let counts = table
        .0
        .into_iter()
        .map(|(k, c)| UsageCount {
            licensee: k.licensee,
            dataset: k.dataset,
            licence: k.licence,
            requests: c.requests,
            records: c.records,
            refusals: c.refusals,
            epsilon_micros: c.epsilon_micros,
            refusals_by_code: c
                .refusals_by_code
                .into_iter()
                .map(|(code, n)| (code.to_owned(), n))
                .collect(),
            masked_fields: c.masked_fields,
        })
        .collect();
    UsageReport::new(uuid::Uuid::now_v7().to_string(), from, until, counts)
}

/// Takes the counters and delivers them to the registry.
pub struct Reporter {
    counters: Arc<UsageCounters>,
    client: RegistryClient,
    metrics: Arc<Metrics>,
    /// Made but not yet accepted, oldest first.
    queue: VecDeque<UsageReport>,
    /// Start of the period the live counters cover.
    window_start: OffsetDateTime,
    unsent: PathBuf,
    /// Whether `unsent` holds reports (loaded at start) that are not all accepted yet.
    unsent_on_disk: bool,
}

impl Reporter {
    /// A reporter for `counters`; reports left unsent by the previous run are queued first.
    pub fn new(
        counters: Arc<UsageCounters>,
        client: RegistryClient,
        metrics: Arc<Metrics>,
        state_dir: &Path,
    ) -> Self {
        let unsent = state_dir.join(UNSENT_FILE);
        let queue = load_unsent(&unsent);
        Self {
            counters,
            client,
            metrics,
            unsent_on_disk: !queue.is_empty(),
            queue,
            window_start: OffsetDateTime::now_utc(),
            unsent,
        }
    }

    /// Reports made and not yet accepted.
    pub fn pending(&self) -> &VecDeque<UsageReport> {
        &self.queue
    }

    /// Sends the pending reports in order, then a new one of the counts taken now. Stops at the
    /// first failure (that report stays pending); true when nothing is left pending.
    pub async fn report(&mut self) -> bool {
        if !self.send_pending().await {
            return false;
        }
        self.cut();
        self.send_pending().await
    }

    /// Moves the live counts into a new pending report (nothing if none were counted).
    fn cut(&mut self) {
        let now = OffsetDateTime::now_utc();
        let table = self.counters.take();
        if table.is_empty() {
            return;
        }
        let from = std::mem::replace(&mut self.window_start, now);
        if let Some(o) = table.0.get(&UsageKey::overflow()) {
            tracing::warn!(
                requests = o.requests,
                records = o.records,
                refusals = o.refusals,
                max_keys = crate::usage::MAX_KEYS,
                "usage counts past the key limit were reported under the _overflow key"
            );
        }
        self.queue.push_back(report_of(table, from, now));
    }

    async fn send_pending(&mut self) -> bool {
        while let Some(report) = self.queue.front() {
            match self.client.report_usage(report).await {
                Ok(ack) => {
                    tracing::debug!(
                        report_id = %report.report_id,
                        rows = report.counts.len(),
                        accepted = ack.accepted,
                        duplicate = ack.duplicate,
                        "usage report accepted"
                    );
                    self.queue.pop_front();
                }
                Err(e) => {
                    self.metrics.usage_report_failures.inc();
                    let t = report.total();
                    tracing::warn!(
                        report_id = %report.report_id, error = %e,
                        requests = t.requests, records = t.records, refusals = t.refusals,
                        "usage report failed; it is kept and sent again next interval"
                    );
                    return false;
                }
            }
        }
        if self.unsent_on_disk {
            match std::fs::remove_file(&self.unsent) {
                Ok(()) => self.unsent_on_disk = false,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.unsent_on_disk = false,
                Err(e) => {
                    tracing::warn!(path = %self.unsent.display(), error = %e, "cannot remove the sent usage reports")
                }
            }
        }
        true
    }

    /// Reports every `every` until `stop` turns true; gives itself back for [`Reporter::flush`].
    pub async fn run(mut self, every: Duration, mut stop: watch::Receiver<bool>) -> Self {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return self,
            }
            // A report cut short here stays pending: nothing is lost by stopping mid-send.
            let stopped = tokio::select! {
                _ = self.report() => false,
                _ = stop.changed() => true,
            };
            if stopped {
                return self;
            }
        }
    }

    /// The shutdown flush: reports once more within `within`; what is still unsent then is
    /// written to `<state_dir>/usage-unsent.json` for the next start.
    pub async fn flush(mut self, within: Duration) {
        let done = tokio::time::timeout(within, self.report()).await.unwrap_or(false);
        if done {
            return;
        }
        self.cut();
        if let Err(e) = save_unsent(&self.unsent, &self.queue) {
            for r in &self.queue {
                let t = r.total();
                tracing::error!(
                    report_id = %r.report_id, from = %r.from_rfc3339(), until = %r.until_rfc3339(), error = %e,
                    requests = t.requests, records = t.records, refusals = t.refusals,
                    "usage report could neither be sent nor saved"
                );
            }
            return;
        }
        tracing::warn!(
            reports = self.queue.len(),
            path = %self.unsent.display(),
            "usage reports not accepted before shutdown; saved to send after the next start"
        );
    }
}

fn load_unsent(path: &Path) -> VecDeque<UsageReport> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return VecDeque::new(),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read unsent usage reports");
            return VecDeque::new();
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(q) => q,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "unsent usage reports unreadable; left in place");
            VecDeque::new()
        }
    }
}

/// Writes the reports atomically (temp file, fsync, rename).
fn save_unsent(path: &Path, queue: &VecDeque<UsageReport>) -> std::io::Result<()> {
    use std::io::Write;
    let bytes = serde_json::to_vec(queue).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Counts;
    use time::macros::datetime;

    #[test]
    fn a_report_has_the_contract_shape() {
        let counters = UsageCounters::default();
        counters.record(
            UsageKey {
                licensee: "acme".into(),
                dataset: "fire-hydrants".into(),
                licence: Some("lic-1".into()),
            },
            Counts {
                requests: 12,
                records: 1200,
                refusals: 1,
                refusals_by_code: std::collections::BTreeMap::from([("quota-exceeded", 1)]),
                masked_fields: 2400,
                ..Counts::default()
            },
        );
        counters.record(
            UsageKey {
                licensee: "acme".into(),
                dataset: "fire-hydrants".into(),
                licence: None,
            },
            Counts {
                requests: 1,
                records: 0,
                refusals: 1,
                ..Counts::default()
            },
        );
        let r = report_of(
            counters.take(),
            datetime!(2026-11-27 05:00:00.25 UTC),
            datetime!(2026-11-27 05:01:00 UTC),
        );
        let v = serde_json::to_value(&r).unwrap();
        assert!(uuid::Uuid::parse_str(v["report_id"].as_str().unwrap()).is_ok());
        assert_eq!(v["from"], "2026-11-27T05:00:00Z");
        assert_eq!(v["until"], "2026-11-27T05:01:00Z");
        assert_eq!(
            v["counts"],
            serde_json::json!([
                { "licensee": "acme", "dataset": "fire-hydrants", "licence": null,
                  "requests": 1, "records": 0, "refusals": 1 },
                { "licensee": "acme", "dataset": "fire-hydrants", "licence": "lic-1",
                  "requests": 12, "records": 1200, "refusals": 1,
                  "refusals_by_code": { "quota-exceeded": 1 }, "masked_fields": 2400 },
            ])
        );
    }

    #[test]
    fn unsent_reports_round_trip_through_the_state_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(UNSENT_FILE);
        assert!(load_unsent(&path).is_empty());
        let r = report_of(
            UsageTable::default(),
            OffsetDateTime::now_utc(),
            OffsetDateTime::now_utc(),
        );
        save_unsent(&path, &VecDeque::from([r.clone()])).unwrap();
        assert_eq!(load_unsent(&path), VecDeque::from([r]));
        std::fs::write(&path, "{broken").unwrap();
        assert!(load_unsent(&path).is_empty());
        assert!(path.exists(), "an unreadable file is left for an operator");
    }
}
