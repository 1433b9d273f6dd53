//! Each source's health as the data plane sees it: the last page fetched or the last failure,
//! listed by `/readyz` beside each source's pool. A failing source does not make the gateway
//! unready (it still serves other datasets and answers refusals), but it is named there.

use crate::runtime::Runtime;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The last outcome of each dataset's source.
#[derive(Debug, Default)]
pub struct SourceHealth {
    states: Mutex<BTreeMap<String, State>>,
}

#[derive(Debug)]
struct State {
    /// The last page was fetched (`None`: the last attempt failed with this error).
    error: Option<String>,
    /// When the current state began.
    since: Instant,
    /// Consecutive failures.
    failures: u64,
}

impl SourceHealth {
    /// A page of `dataset` was fetched from its source.
    pub fn ok(&self, dataset: &str) {
        let mut states = crate::sync::lock(&self.states);
        match states.get_mut(dataset) {
            Some(s) if s.error.is_none() => {}
            _ => {
                states.insert(
                    dataset.to_owned(),
                    State {
                        error: None,
                        since: Instant::now(),
                        failures: 0,
                    },
                );
            }
        }
    }

    /// `dataset`'s source failed with `error`.
    pub fn failed(&self, dataset: &str, error: &str) {
        let mut states = crate::sync::lock(&self.states);
        let s = states.entry(dataset.to_owned()).or_insert_with(|| State {
            error: None,
            since: Instant::now(),
            failures: 0,
        });
        if s.error.is_none() {
            s.since = Instant::now();
        }
        s.error = Some(error.chars().take(200).collect());
        s.failures += 1;
    }

    /// One line per configured source: its kind of health and its pool.
    pub fn report(&self, rt: &Runtime) -> Vec<String> {
        let states = crate::sync::lock(&self.states);
        rt.sources
            .iter()
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .map(|(dataset, source)| {
                let health = match states.get(dataset.as_str()) {
                    None => "no page yet".to_owned(),
                    Some(State {
                        error: None, since, ..
                    }) => format!("ok for {}", secs(since.elapsed())),
                    Some(State {
                        error: Some(e),
                        since,
                        failures,
                    }) => format!("failing for {} ({failures} failures): {e}", secs(since.elapsed())),
                };
                let pool = source
                    .pool_status()
                    .map(|p| format!("; pool {} of {} open, {} idle", p.open, p.max, p.idle))
                    .unwrap_or_default();
                format!("source {dataset}: {health}{pool}")
            })
            .collect()
    }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_remembered_until_a_page_succeeds() {
        let h = SourceHealth::default();
        h.failed("a", "connection refused");
        h.failed("a", "connection refused");
        {
            let s = crate::sync::lock(&h.states);
            assert_eq!(s["a"].failures, 2);
            assert_eq!(s["a"].error.as_deref(), Some("connection refused"));
        }
        h.ok("a");
        let s = crate::sync::lock(&h.states);
        assert_eq!(s["a"].error, None);
        assert_eq!(s["a"].failures, 0);
    }
}
