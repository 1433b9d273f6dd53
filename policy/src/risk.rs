//! Risk warning (风险预警): rules administrators declare at the registry, the signals each
//! gateway counts per licence, and the alert a crossed rule raises.
//!
//! A rule names a [`Signal`], a [`Window`] (a minute or an hour), an absolute `threshold`
//! and, optionally, a `factor` over the licence's rolling baseline (the mean of its recent
//! completed windows): it is crossed when the window's count reaches the threshold **and**,
//! with a factor, `factor × baseline`. A crossed rule raises one [`RiskAlert`] per licence
//! and window; its [`RiskAction`] says whether the gateway only alerts or also suspends the
//! licence at once and asks the registry to suspend it everywhere.
//!
//! [`Tracker`] is the counting, pure and clock-free: the gateway passes the time in.

use crate::problem_code::ProblemCode;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};

/// What a rule counts, per licence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    /// Requests attributed to the licence (refused ones included).
    Requests,
    /// Records delivered.
    Records,
    /// Refused requests (of the rule's `codes` when it lists some): probing.
    Refusals,
    /// Requests outside the rule's `hours`.
    OffHours,
    /// Requests for a page after the first (`after` or `offset`): walking through a dataset.
    Pages,
    /// Distinct records served, by the dataset's `record_key` (counted exactly up to the
    /// rule's threshold, at most [`MAX_DISTINCT_KEYS`]): harvesting a dataset record by record.
    Keys,
}

impl Signal {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Records => "records",
            Self::Refusals => "refusals",
            Self::OffHours => "off-hours",
            Self::Pages => "pages",
            Self::Keys => "keys",
        }
    }
}

/// The counting window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    /// 60 s, aligned to the minute.
    Minute,
    /// 3,600 s, aligned to the hour.
    Hour,
}

impl Window {
    /// Its length in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Self::Minute => 60,
            Self::Hour => 3_600,
        }
    }

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
        }
    }
}

/// What a crossed rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskAction {
    /// Log, count (`sluice_risk_alerts_total`), call the webhook, report to the registry.
    Alert,
    /// As `alert`, and the gateway refuses the licence at once; the registry records a
    /// violation with the evidence and suspends the licence at every gateway.
    Suspend,
}

impl RiskAction {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alert => "alert",
            Self::Suspend => "suspend",
        }
    }
}

/// Most distinct keys one counter remembers (a `keys` rule's threshold is at most this).
pub const MAX_DISTINCT_KEYS: u64 = 1_000_000;

/// Most completed windows a baseline averages.
pub const BASELINE_WINDOWS: usize = 24;

/// A rule, as declared at the registry and carried in the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskRule {
    /// Identifier.
    pub id: String,
    /// What it counts.
    pub signal: Signal,
    /// Over which window.
    pub window: Window,
    /// The count at which it is crossed (at least 1).
    pub threshold: u64,
    /// With a factor, also at least `factor ×` the licence's baseline (the mean count of its
    /// last completed windows, up to [`BASELINE_WINDOWS`]; no baseline yet counts as 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// Only this licence; every licence when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence: Option<String>,
    /// [`Signal::Refusals`]: only refusals with these problem codes (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<ProblemCode>,
    /// [`Signal::OffHours`]: the permitted hours `[from, until)` in UTC (0–24; `from > until`
    /// wraps midnight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<(u8, u8)>,
    /// What a crossing does.
    pub action: RiskAction,
}

impl RiskRule {
    /// What is wrong with the rule, if anything.
    pub fn problem(&self) -> Option<String> {
        if !crate::id::is_valid_id(&self.id) {
            return Some(format!("id {:?} must match [A-Za-z0-9._-]{{1,64}}", self.id));
        }
        if self.threshold == 0 {
            return Some("threshold must be at least 1".to_owned());
        }
        if let Some(f) = self.factor {
            if !(f.is_finite() && (1.0..=1_000_000.0).contains(&f)) {
                return Some("factor must be from 1 to 1000000".to_owned());
            }
        }
        match (self.signal, self.hours) {
            (Signal::OffHours, None) => return Some("an off-hours rule needs hours".to_owned()),
            (Signal::OffHours, Some((a, b))) if a > 24 || b > 24 || a == b => {
                return Some("hours must be two different hours from 0 to 24".to_owned())
            }
            (Signal::OffHours, _) => {}
            (_, Some(_)) => return Some("hours apply to off-hours rules only".to_owned()),
            (_, None) => {}
        }
        if self.signal == Signal::Keys && self.threshold > MAX_DISTINCT_KEYS {
            return Some(format!("a keys rule's threshold is at most {MAX_DISTINCT_KEYS}"));
        }
        if !self.codes.is_empty() && self.signal != Signal::Refusals {
            return Some("codes apply to refusals rules only".to_owned());
        }
        None
    }

    /// What makes `alert` one this rule could not have raised, if anything: another rule id,
    /// a licence the rule does not cover, another signal, window or action, a threshold other
    /// than the rule's, or a count below it. The registry acts on a gateway's alert only when
    /// this is `None`, so a gateway cannot suspend a licence no `suspend` rule covers.
    pub fn mismatch(&self, alert: &RiskAlert) -> Option<String> {
        let why = if alert.rule != self.id {
            format!("the alert names rule {}, not {}", alert.rule, self.id)
        } else if !self.applies_to(&alert.licence) {
            format!("rule {} does not cover licence {}", self.id, alert.licence)
        } else if (alert.signal, alert.window) != (self.signal, self.window) {
            format!(
                "rule {} counts {} per {}, not {} per {}",
                self.id,
                self.signal.as_str(),
                self.window.as_str(),
                alert.signal.as_str(),
                alert.window.as_str()
            )
        } else if alert.action != self.action {
            format!("rule {} does not {}", self.id, alert.action.as_str())
        } else if alert.threshold != self.threshold || alert.value < self.threshold {
            format!(
                "rule {} is crossed at {}, the alert says {} of threshold {}",
                self.id, self.threshold, alert.value, alert.threshold
            )
        } else {
            return None;
        };
        Some(why)
    }

    fn applies_to(&self, licence: &str) -> bool {
        self.licence.as_deref().is_none_or(|l| l == licence)
    }

    /// How much one request adds to this rule's count.
    fn count(&self, e: &Event<'_>) -> u64 {
        match self.signal {
            Signal::Requests => 1,
            Signal::Records => e.records,
            Signal::Refusals => match e.refusal {
                Some(c) if self.codes.is_empty() || self.codes.contains(&c) => 1,
                _ => 0,
            },
            Signal::OffHours => {
                let hour = u8::try_from(e.at.rem_euclid(86_400) / 3_600).unwrap_or(0);
                let (from, until) = self.hours.unwrap_or((0, 24));
                let inside = if from < until {
                    hour >= from && hour < until
                } else {
                    hour >= from || hour < until
                };
                u64::from(!inside)
            }
            Signal::Pages => u64::from(e.continuation),
            // Counted by [`Tracker::observe_keys`].
            Signal::Keys => 0,
        }
    }
}

/// One request's outcome, as the signals see it.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// The licence it was attributed to.
    pub licence: &'a str,
    /// Unix seconds.
    pub at: i64,
    /// Records delivered.
    pub records: u64,
    /// The problem code when it was refused.
    pub refusal: Option<ProblemCode>,
    /// It asked for a later page (`after` or `offset`).
    pub continuation: bool,
}

/// A crossed rule: what the gateway logs, sends to the webhook and reports to the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskAlert {
    /// Unique per gateway, licence, rule and window (a retry carries the same id).
    pub id: String,
    /// The rule.
    pub rule: String,
    /// The licence.
    pub licence: String,
    /// What was counted.
    pub signal: Signal,
    /// The window.
    pub window: Window,
    /// When the window began (unix seconds).
    pub window_start: i64,
    /// The count when the rule was crossed.
    pub value: u64,
    /// The rule's threshold.
    pub threshold: u64,
    /// The licence's baseline for the rule then (mean count per completed window).
    pub baseline: f64,
    /// The rule's action.
    pub action: RiskAction,
    /// When it was crossed (unix seconds).
    pub at: i64,
}

impl RiskAlert {
    /// One line naming what happened, for logs and the violation register.
    pub fn evidence(&self) -> String {
        format!(
            "risk rule {}: {} {} per {} (threshold {}, baseline {:.1}) in the window from {} on licence {}",
            self.rule,
            self.value,
            self.signal.as_str(),
            self.window.as_str(),
            self.threshold,
            self.baseline,
            self.window_start,
            self.licence
        )
    }
}

/// One licence's count for one rule: the current window and the completed ones before it.
#[derive(Debug, Default, Clone)]
struct Counter {
    start: i64,
    count: u64,
    fired: bool,
    history: VecDeque<u64>,
    /// A `keys` rule's distinct keys in this window (64 bits of each key's hash).
    seen: HashSet<u64>,
}

impl Counter {
    /// Moves to the window holding `at`, keeping the counts of completed windows (empty
    /// windows in between count as 0).
    fn roll(&mut self, at: i64, len: i64) {
        let start = at - at.rem_euclid(len);
        if start == self.start {
            return;
        }
        if self.start != 0 {
            self.history.push_back(self.count);
            let skipped = ((start - self.start) / len - 1).clamp(0, BASELINE_WINDOWS as i64);
            for _ in 0..skipped {
                self.history.push_back(0);
            }
            while self.history.len() > BASELINE_WINDOWS {
                self.history.pop_front();
            }
        }
        self.start = start;
        self.count = 0;
        self.fired = false;
        self.seen = HashSet::new();
    }

    /// The alert when this window's count crosses `rule` now (once per window).
    fn crossed(&mut self, rule: &RiskRule, licence: &str, at: i64) -> Option<RiskAlert> {
        if self.fired || self.count < rule.threshold {
            return None;
        }
        let baseline = self.baseline();
        if rule.factor.is_some_and(|f| (self.count as f64) < f * baseline) {
            return None;
        }
        self.fired = true;
        Some(RiskAlert {
            id: format!("{licence}.{}.{}", rule.id, self.start),
            rule: rule.id.clone(),
            licence: licence.to_owned(),
            signal: rule.signal,
            window: rule.window,
            window_start: self.start,
            value: self.count,
            threshold: rule.threshold,
            baseline,
            action: rule.action,
            at,
        })
    }

    fn baseline(&self) -> f64 {
        if self.history.is_empty() {
            0.0
        } else {
            self.history.iter().sum::<u64>() as f64 / self.history.len() as f64
        }
    }
}

/// Most (licence, rule) counters a tracker keeps; the oldest window's are dropped first.
pub const MAX_COUNTERS: usize = 100_000;

/// Counts every rule's signal per licence and says which rules a request crossed.
#[derive(Debug, Default)]
pub struct Tracker {
    counters: HashMap<(String, String), Counter>,
}

impl Tracker {
    /// Counts `e` against `rules`; returns an alert for each rule it crossed in this window
    /// (once per licence, rule and window).
    pub fn observe(&mut self, rules: &[RiskRule], e: &Event<'_>) -> Vec<RiskAlert> {
        let mut alerts = Vec::new();
        for rule in rules.iter().filter(|r| r.applies_to(e.licence)) {
            let add = rule.count(e);
            let key = (e.licence.to_owned(), rule.id.clone());
            if add == 0 && !self.counters.contains_key(&key) {
                continue;
            }
            let c = self.counter(key, e.at);
            c.roll(e.at, rule.window.seconds());
            c.count = c.count.saturating_add(add);
            alerts.extend(c.crossed(rule, e.licence, e.at));
        }
        alerts
    }

    /// Counts the record keys (their XXH3-128 hashes, as [`crate::served::ServedKeys`]
    /// holds them) one response served under `licence` against the `keys` rules.
    pub fn observe_keys(
        &mut self,
        rules: &[RiskRule],
        licence: &str,
        at: i64,
        keys: &[u128],
    ) -> Vec<RiskAlert> {
        let mut alerts = Vec::new();
        if keys.is_empty() {
            return alerts;
        }
        for rule in rules
            .iter()
            .filter(|r| r.signal == Signal::Keys && r.applies_to(licence))
        {
            let c = self.counter((licence.to_owned(), rule.id.clone()), at);
            c.roll(at, rule.window.seconds());
            if c.fired {
                continue;
            }
            // Enough to decide the rule: its threshold, or its factor times the baseline.
            let needed = rule
                .factor
                .map_or(0.0, |f| (f * c.baseline()).ceil())
                .max(rule.threshold as f64)
                .min(MAX_DISTINCT_KEYS as f64) as usize;
            for h in keys {
                if c.seen.len() >= needed {
                    break;
                }
                c.seen.insert(*h as u64);
            }
            c.count = c.seen.len() as u64;
            alerts.extend(c.crossed(rule, licence, at));
        }
        alerts
    }

    fn counter(&mut self, key: (String, String), at: i64) -> &mut Counter {
        if self.counters.len() >= MAX_COUNTERS && !self.counters.contains_key(&key) {
            self.evict(at);
        }
        self.counters.entry(key).or_default()
    }

    /// Forgets a licence's counts (after a suspension, so a resumed licence starts afresh).
    pub fn forget(&mut self, licence: &str) {
        self.counters.retain(|(l, _), _| l != licence);
    }

    fn evict(&mut self, now: i64) {
        self.counters.retain(|_, c| now - c.start < 3_600);
        if self.counters.len() >= MAX_COUNTERS {
            self.counters.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(signal: Signal, threshold: u64) -> RiskRule {
        RiskRule {
            id: "r1".into(),
            signal,
            window: Window::Minute,
            threshold,
            factor: None,
            licence: None,
            codes: vec![],
            hours: None,
            action: RiskAction::Suspend,
        }
    }

    fn ev(at: i64, records: u64) -> Event<'static> {
        Event {
            licence: "l1",
            at,
            records,
            refusal: None,
            continuation: false,
        }
    }

    #[test]
    fn a_rule_fires_once_per_window_when_its_count_reaches_the_threshold() {
        let rules = [rule(Signal::Records, 100)];
        let mut t = Tracker::default();
        assert!(t.observe(&rules, &ev(60, 60)).is_empty());
        let a = t.observe(&rules, &ev(61, 40));
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].value, a[0].window_start, a[0].id.as_str()),
            (100, 60, "l1.r1.60")
        );
        assert!(t.observe(&rules, &ev(62, 500)).is_empty(), "once per window");
        // The next window starts from zero.
        assert!(t.observe(&rules, &ev(120, 99)).is_empty());
        assert_eq!(t.observe(&rules, &ev(179, 1)).len(), 1);
        // Another licence has its own count.
        let other = Event {
            licence: "l2",
            ..ev(180, 99)
        };
        assert!(t.observe(&rules, &other).is_empty());
    }

    /// Distinct keys: the same record served again counts once; other signals ignore keys
    /// and a keys rule ignores plain requests.
    #[test]
    fn a_keys_rule_counts_distinct_records_served() {
        let hash = |k: &str| xxhash_rust::xxh3::xxh3_128(k.as_bytes());
        let keys = |from: usize, to: usize| (from..to).map(|i| hash(&format!("HY-{i}"))).collect::<Vec<_>>();
        let rules = [rule(Signal::Keys, 100), {
            let mut r = rule(Signal::Requests, 1_000);
            r.id = "req".into();
            r
        }];
        let mut t = Tracker::default();
        assert!(t.observe(&rules, &ev(60, 500)).is_empty(), "records are not keys");
        assert!(t.observe_keys(&rules, "l1", 60, &keys(0, 60)).is_empty());
        // The same 60 again, and 39 more: 99 distinct.
        assert!(t.observe_keys(&rules, "l1", 61, &keys(0, 99)).is_empty());
        let a = t.observe_keys(&rules, "l1", 62, &keys(90, 150));
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].rule.as_str(), a[0].signal, a[0].value),
            ("r1", Signal::Keys, 100)
        );
        assert_eq!(rules[0].mismatch(&a[0]), None);
        // Another licence, and the next window, count afresh.
        assert!(t.observe_keys(&rules, "l2", 62, &keys(0, 99)).is_empty());
        assert!(t.observe_keys(&rules, "l1", 120, &keys(0, 99)).is_empty());
        let mut big = rule(Signal::Keys, MAX_DISTINCT_KEYS + 1);
        assert!(big.problem().is_some());
        big.threshold = MAX_DISTINCT_KEYS;
        assert_eq!(big.problem(), None);
    }

    /// Only an alert the rule itself would raise is one the registry acts on.
    #[test]
    fn an_alert_must_be_one_its_rule_raises() {
        let mut r = rule(Signal::Records, 100);
        r.licence = Some("l1".into());
        let rules = [r.clone()];
        let mut t = Tracker::default();
        let a = t.observe(&rules, &ev(60, 150)).remove(0);
        assert_eq!(r.mismatch(&a), None);
        let cases: [(&str, RiskAlert); 7] = [
            (
                "rule",
                RiskAlert {
                    rule: "r2".into(),
                    ..a.clone()
                },
            ),
            (
                "licence",
                RiskAlert {
                    licence: "l2".into(),
                    ..a.clone()
                },
            ),
            (
                "signal",
                RiskAlert {
                    signal: Signal::Requests,
                    ..a.clone()
                },
            ),
            (
                "window",
                RiskAlert {
                    window: Window::Hour,
                    ..a.clone()
                },
            ),
            (
                "action",
                RiskAlert {
                    action: RiskAction::Alert,
                    ..a.clone()
                },
            ),
            (
                "threshold",
                RiskAlert {
                    threshold: 1,
                    ..a.clone()
                },
            ),
            (
                "count",
                RiskAlert {
                    value: 99,
                    ..a.clone()
                },
            ),
        ];
        for (what, bad) in cases {
            assert!(r.mismatch(&bad).is_some(), "{what}");
        }
        // A rule for every licence covers any.
        r.licence = None;
        assert_eq!(
            r.mismatch(&RiskAlert {
                licence: "l2".into(),
                ..a
            }),
            None
        );
    }

    #[test]
    fn a_factor_compares_with_the_licence_s_own_baseline() {
        let mut r = rule(Signal::Requests, 5);
        r.factor = Some(3.0);
        let rules = [r];
        let mut t = Tracker::default();
        // Ten requests a minute for three minutes: a baseline of 10.
        for m in 0..3 {
            for s in 0..10 {
                let fired = t.observe(&rules, &ev(600 + m * 60 + s, 0));
                if m == 0 && s == 4 {
                    assert_eq!(fired.len(), 1, "no baseline yet: the threshold decides");
                    continue;
                }
                assert!(fired.is_empty() || m == 0, "minute {m}: {fired:?}");
            }
        }
        // The fourth minute: 29 requests are below 3 × 10, the 30th crosses.
        for s in 0..29 {
            assert!(t.observe(&rules, &ev(780 + s, 0)).is_empty(), "request {s}");
        }
        let a = t.observe(&rules, &ev(810, 0));
        assert_eq!(a.len(), 1);
        assert!((a[0].baseline - 10.0).abs() < 1e-9, "{}", a[0].baseline);
    }

    #[test]
    fn refusals_off_hours_and_pages_count_what_they_name() {
        let mut refusals = rule(Signal::Refusals, 2);
        refusals.codes = vec![ProblemCode::FieldNotFilterable];
        let mut off = rule(Signal::OffHours, 1);
        off.id = "night".into();
        off.hours = Some((8, 20));
        let mut pages = rule(Signal::Pages, 2);
        pages.id = "walk".into();
        let rules = [refusals, off, pages];
        let mut t = Tracker::default();
        let at = 10 * 3_600; // 10:00 UTC: inside the hours
        let refused = |code| Event {
            refusal: Some(code),
            ..ev(at, 0)
        };
        assert!(t.observe(&rules, &refused(ProblemCode::RateLimited)).is_empty());
        assert!(t
            .observe(&rules, &refused(ProblemCode::FieldNotFilterable))
            .is_empty());
        let a = t.observe(&rules, &refused(ProblemCode::FieldNotFilterable));
        assert_eq!(a.iter().map(|a| a.rule.as_str()).collect::<Vec<_>>(), ["r1"]);
        let night = t.observe(&rules, &ev(23 * 3_600, 0));
        assert_eq!(
            night.iter().map(|a| a.rule.as_str()).collect::<Vec<_>>(),
            ["night"]
        );
        let next = Event {
            continuation: true,
            ..ev(at + 1, 0)
        };
        assert!(t.observe(&rules, &next).is_empty());
        assert_eq!(t.observe(&rules, &next).len(), 1);
        // Wrapping hours: 22–06 permits 23:00, not 12:00.
        let mut wrap = rule(Signal::OffHours, 1);
        wrap.hours = Some((22, 6));
        assert_eq!(wrap.count(&ev(23 * 3_600, 0)), 0);
        assert_eq!(wrap.count(&ev(12 * 3_600, 0)), 1);
    }

    #[test]
    fn rules_are_checked() {
        assert!(rule(Signal::Records, 1).problem().is_none());
        assert!(rule(Signal::Records, 0).problem().is_some());
        let mut r = rule(Signal::OffHours, 1);
        assert!(r.problem().is_some());
        r.hours = Some((8, 8));
        assert!(r.problem().is_some());
        let mut r = rule(Signal::Records, 1);
        r.factor = Some(0.5);
        assert!(r.problem().is_some());
        r.factor = None;
        r.codes = vec![ProblemCode::RateLimited];
        assert!(r.problem().is_some());
    }

    #[test]
    fn forgetting_a_licence_restarts_its_counts() {
        let rules = [rule(Signal::Records, 10)];
        let mut t = Tracker::default();
        assert_eq!(t.observe(&rules, &ev(60, 10)).len(), 1);
        t.forget("l1");
        assert_eq!(t.observe(&rules, &ev(61, 10)).len(), 1);
    }
}
