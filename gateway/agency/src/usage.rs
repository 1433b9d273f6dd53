//! Usage counters: requests, records delivered, refusals (by problem code) and masked field
//! values per (licensee, dataset, licence),
//! counted where the data plane records each outcome and drained by
//! [`usage_report`](crate::usage_report) for the registry.
//!
//! The hot path locks one of [`SHARDS`] small maps chosen by the key's hash, never a global
//! lock. Memory is bounded: at most `max_keys` distinct keys are held; counts for a further new
//! key are folded into the [`OVERFLOW`] key (licensee and dataset `_overflow`, no licence), so
//! totals stay right even when the breakdown is lost, and [`UsageCounters::overflowed`] says
//! how often that happened.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Number of independently locked maps.
pub const SHARDS: usize = 16;

/// Most distinct keys held (the overflow key included): the registry's limit of rows per
/// report, so one report always carries everything held.
pub const MAX_KEYS: usize = 10_000;

/// Licensee and dataset of the key that absorbs counts past the key limit.
pub const OVERFLOW: &str = "_overflow";

/// Dataset of requests that named no dataset (the catalog, unknown routes).
pub const NO_DATASET: &str = "-";

/// What the counts are about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsageKey {
    /// Licensee id (from the client certificate).
    pub licensee: String,
    /// Dataset id, or [`NO_DATASET`].
    pub dataset: String,
    /// The licence the request was decided under; `None` before one was found.
    pub licence: Option<String>,
}

impl UsageKey {
    /// The key absorbing counts past the key limit.
    pub fn overflow() -> Self {
        Self {
            licensee: OVERFLOW.into(),
            dataset: OVERFLOW.into(),
            licence: None,
        }
    }

    fn is_overflow(&self) -> bool {
        self.licensee == OVERFLOW && self.dataset == OVERFLOW && self.licence.is_none()
    }
}

/// Counts for one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests attributed to the licensee (refused ones included).
    pub requests: u64,
    /// Records delivered after masking (partial counts of aborted streams included).
    pub records: u64,
    /// Problem responses.
    pub refusals: u64,
    /// Differential-privacy loss spent by aggregate answers, in millionths of ε.
    pub epsilon_micros: u64,
    /// The problem responses by problem code (their sum is `refusals`).
    pub refusals_by_code: BTreeMap<&'static str, u64>,
    /// Field values of the delivered records masked by a rule or dropped as not granted
    /// (`MaskStats::fields_masked + fields_dropped`).
    pub masked_fields: u64,
}

impl Counts {
    /// Adds `other` (saturating).
    pub fn add(&mut self, other: Counts) {
        self.requests = self.requests.saturating_add(other.requests);
        self.records = self.records.saturating_add(other.records);
        self.refusals = self.refusals.saturating_add(other.refusals);
        self.epsilon_micros = self.epsilon_micros.saturating_add(other.epsilon_micros);
        self.masked_fields = self.masked_fields.saturating_add(other.masked_fields);
        for (code, n) in other.refusals_by_code {
            let c = self.refusals_by_code.entry(code).or_default();
            *c = c.saturating_add(n);
        }
    }

    /// Whether everything is zero.
    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }
}

/// A drained set of counts, ordered by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageTable(pub BTreeMap<UsageKey, Counts>);

impl UsageTable {
    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sum over all keys.
    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for c in self.0.values() {
            t.add(c.clone());
        }
        t
    }
}

/// The live counters of one gateway.
pub struct UsageCounters {
    shards: Box<[Mutex<HashMap<UsageKey, Counts>>]>,
    hasher: RandomState,
    max_keys: usize,
    /// Distinct keys held, the overflow key excluded.
    keys: AtomicUsize,
    overflowed: AtomicU64,
}

impl Default for UsageCounters {
    fn default() -> Self {
        Self::new(MAX_KEYS)
    }
}

impl UsageCounters {
    /// Counters holding at most `max_keys` distinct keys (at least 2: one is the overflow key).
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            max_keys: max_keys.max(2),
            keys: AtomicUsize::new(0),
            overflowed: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &UsageKey) -> &Mutex<HashMap<UsageKey, Counts>> {
        let i = (self.hasher.hash_one(key) as usize) % self.shards.len();
        &self.shards[i]
    }

    /// Adds `counts` to `key`.
    pub fn record(&self, key: UsageKey, counts: Counts) {
        {
            let mut map = self.shard(&key).lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = map.get_mut(&key) {
                c.add(counts);
                return;
            }
            // A new key: take a slot (the last one is reserved for the overflow key).
            if key.is_overflow() || self.keys.fetch_add(1, Ordering::Relaxed) < self.max_keys - 1 {
                map.insert(key, counts);
                return;
            }
            self.keys.fetch_sub(1, Ordering::Relaxed);
        }
        self.overflowed.fetch_add(1, Ordering::Relaxed);
        let overflow = UsageKey::overflow();
        let mut map = self.shard(&overflow).lock().unwrap_or_else(|p| p.into_inner());
        map.entry(overflow).or_default().add(counts);
    }

    /// Takes everything counted so far, leaving the counters empty. Counts recorded while it
    /// runs land either in this table or in the next one, never in neither.
    pub fn take(&self) -> UsageTable {
        let mut out = BTreeMap::new();
        for shard in self.shards.iter() {
            let drained = std::mem::take(&mut *shard.lock().unwrap_or_else(|p| p.into_inner()));
            out.extend(drained);
        }
        // Slots are freed only once every shard is drained, so one table never holds more than
        // `max_keys` keys even while new keys arrive during the drain.
        let held = out.keys().filter(|k| !k.is_overflow()).count();
        self.keys.fetch_sub(held, Ordering::Relaxed);
        UsageTable(out)
    }

    /// How many times counts were folded into the overflow key since start.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(licensee: &str, dataset: &str, licence: Option<&str>) -> UsageKey {
        UsageKey {
            licensee: licensee.into(),
            dataset: dataset.into(),
            licence: licence.map(str::to_owned),
        }
    }

    fn c(requests: u64, records: u64, refusals: u64) -> Counts {
        Counts {
            requests,
            records,
            refusals,
            ..Counts::default()
        }
    }

    #[test]
    fn counts_of_one_key_add_up_and_take_empties() {
        let u = UsageCounters::default();
        u.record(key("acme", "hydrants", Some("l1")), c(1, 10, 0));
        u.record(key("acme", "hydrants", Some("l1")), c(1, 5, 0));
        u.record(key("acme", "hydrants", None), c(1, 0, 1));
        u.record(key("bob", "hydrants", None), c(1, 0, 1));
        let t = u.take();
        assert_eq!(t.0.len(), 3);
        assert_eq!(t.0[&key("acme", "hydrants", Some("l1"))], c(2, 15, 0));
        assert_eq!(t.0[&key("acme", "hydrants", None)], c(1, 0, 1));
        assert_eq!(t.total(), c(4, 15, 2));
        assert!(u.take().is_empty());
    }

    /// Issue 14, item 9: refusals by code and masked field values add up per key.
    #[test]
    fn refusal_codes_and_masked_fields_add_up() {
        let u = UsageCounters::default();
        let refused = |code| Counts {
            requests: 1,
            refusals: 1,
            refusals_by_code: BTreeMap::from([(code, 1)]),
            ..Counts::default()
        };
        let k = key("acme", "hydrants", None);
        u.record(k.clone(), refused("scenario-not-licensed"));
        u.record(k.clone(), refused("scenario-not-licensed"));
        u.record(k.clone(), refused("quota-exceeded"));
        u.record(
            k.clone(),
            Counts {
                requests: 1,
                records: 10,
                masked_fields: 20,
                ..Counts::default()
            },
        );
        let t = u.take();
        let got = &t.0[&k];
        assert_eq!((got.requests, got.refusals, got.masked_fields), (4, 3, 20));
        assert_eq!(
            got.refusals_by_code,
            BTreeMap::from([("quota-exceeded", 1), ("scenario-not-licensed", 2)])
        );
        assert_eq!(t.total().refusals_by_code.values().sum::<u64>(), 3);
    }

    #[test]
    fn keys_past_the_limit_fold_into_the_overflow_key_and_totals_stay_right() {
        let u = UsageCounters::new(4);
        for i in 0..10 {
            u.record(key(&format!("l{i}"), "d", None), c(1, 2, 0));
        }
        // A key already held keeps counting under its own name.
        u.record(key("l0", "d", None), c(1, 1, 1));
        let t = u.take();
        assert_eq!(t.0.len(), 4, "{t:?}");
        assert_eq!(t.0[&key("l0", "d", None)], c(2, 3, 1));
        assert_eq!(t.0[&UsageKey::overflow()], c(7, 14, 0));
        assert_eq!(t.total(), c(11, 21, 1));
        assert_eq!(u.overflowed(), 7);
        // Taking frees the slots.
        for i in 0..3 {
            u.record(key(&format!("m{i}"), "d", None), c(1, 0, 0));
        }
        let t = u.take();
        assert_eq!(t.0.len(), 3);
        assert!(!t.0.contains_key(&UsageKey::overflow()));
    }

    #[test]
    fn concurrent_recording_and_taking_lose_nothing() {
        let u = std::sync::Arc::new(UsageCounters::new(64));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let u = u.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000u64 {
                        u.record(key(&format!("w{w}"), &format!("d{}", i % 40), None), c(1, 3, 0));
                    }
                })
            })
            .collect();
        let mut total = Counts::default();
        let mut max_keys = 0;
        while !writers.iter().all(|w| w.is_finished()) {
            let t = u.take();
            max_keys = max_keys.max(t.0.len());
            total.add(t.total());
        }
        for w in writers {
            w.join().unwrap();
        }
        total.add(u.take().total());
        assert_eq!(total, c(20_000, 60_000, 0));
        assert!(max_keys <= 64, "{max_keys}");
    }
}
