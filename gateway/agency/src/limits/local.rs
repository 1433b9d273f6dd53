//! Local limits: rate limits (governor) and daily quotas per licence, in this process; per
//! client IP on the public listener.
//!
//! Rate limiters live in a moka cache keyed by licence id and its rate, so a changed licence
//! gets a fresh limiter and idle ones are evicted. Daily quotas are counted per UTC day;
//! records are *reserved* before a response streams and unused reservations refunded, so
//! concurrent requests can never exceed the quota together.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota as GQuota, RateLimiter};
use sluice_policy::licence::{Quota, RateLimit};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request over a limit, with what the client should be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverLimit {
    /// Seconds until a retry can succeed.
    pub retry_after: Duration,
    /// `RateLimit-Policy` header value.
    pub policy: String,
    /// `RateLimit` header value.
    pub state: String,
}

/// Rate limiters per licence.
pub struct RateLimits {
    limiters: moka::sync::Cache<(String, u32, u32), Arc<DefaultDirectRateLimiter>>,
    clock: DefaultClock,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            limiters: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            clock: DefaultClock::default(),
        }
    }
}

impl RateLimits {
    /// Takes one request from the licence's bucket.
    pub fn check(&self, licence: &str, rate: RateLimit) -> Result<(), OverLimit> {
        let per_second = NonZeroU32::new(rate.per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(rate.burst.max(rate.per_second).max(1)).unwrap_or(NonZeroU32::MIN);
        let limiter = self
            .limiters
            .get_with((licence.to_owned(), per_second.get(), burst.get()), || {
                Arc::new(RateLimiter::direct(
                    GQuota::per_second(per_second).allow_burst(burst),
                ))
            });
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            rate_headers("licence", per_second.get(), burst.get(), wait)
        })
    }
}

/// Per-IP limiter of the public listener.
pub struct PublicLimits {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    per_second: u32,
    burst: u32,
    clock: DefaultClock,
}

impl PublicLimits {
    /// A limiter allowing `per_second` with `burst` per client IP.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let ps = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let b = NonZeroU32::new(burst.max(per_second).max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::keyed(GQuota::per_second(ps).allow_burst(b)),
            per_second: ps.get(),
            burst: b.get(),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request for `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), OverLimit> {
        self.limiter.check_key(&ip).map_err(|nu| {
            rate_headers(
                "per-ip",
                self.per_second,
                self.burst,
                nu.wait_time_from(self.clock.now()),
            )
        })
    }

    /// Forgets idle keys; call periodically.
    pub fn retain_recent(&self) {
        self.limiter.retain_recent();
    }
}

pub(crate) fn rate_headers(name: &str, per_second: u32, burst: u32, wait: Duration) -> OverLimit {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    OverLimit {
        retry_after: Duration::from_secs(secs.max(1)),
        policy: format!("\"{name}\";q={burst};w=1, \"{name}-sustained\";q={per_second};w=1"),
        state: format!("\"{name}\";r=0;t={}", secs.max(1)),
    }
}

/// Daily usage of one licence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayUsage {
    /// UTC day number (days since 1970-01-01).
    pub day: i64,
    /// Requests admitted.
    pub requests: u64,
    /// Records reserved or delivered.
    pub records: u64,
}

/// Which daily quota is used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaExceeded {
    /// `requests_per_day`.
    Requests(u64),
    /// `records_per_day`.
    Records(u64),
}

/// Daily quota counters for the licences of this gateway (local; shared through Redis when
/// replicas are configured to share them).
#[derive(Default)]
pub struct DailyQuotas {
    usage: Mutex<HashMap<String, DayUsage>>,
}

impl DailyQuotas {
    /// Admits one request and reserves up to `want` records. Returns the records granted
    /// (at least one when the request is admitted).
    pub fn admit(&self, licence: &str, quota: Quota, day: i64, want: u64) -> Result<u64, QuotaExceeded> {
        let mut map = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let u = map.entry(licence.to_owned()).or_default();
        if u.day != day {
            *u = DayUsage {
                day,
                ..DayUsage::default()
            };
        }
        if let Some(max) = quota.requests_per_day {
            if u.requests >= max {
                return Err(QuotaExceeded::Requests(max));
            }
        }
        let granted = match quota.records_per_day {
            Some(max) if u.records >= max => return Err(QuotaExceeded::Records(max)),
            Some(max) => want.min(max - u.records),
            None => want,
        };
        u.requests += 1;
        u.records += granted;
        Ok(granted)
    }

    /// Returns records reserved but not delivered.
    pub fn refund(&self, licence: &str, day: i64, records: u64) {
        let mut map = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = map.get_mut(licence) {
            if u.day == day {
                u.records = u.records.saturating_sub(records);
            }
        }
    }

    /// Usage of a licence today.
    pub fn usage(&self, licence: &str) -> Option<DayUsage> {
        self.usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(licence)
            .copied()
    }
}

/// Seconds until the next UTC midnight, for `Retry-After` on quota refusals.
pub fn seconds_to_midnight(now_unix: i64) -> u64 {
    (86_400 - now_unix.rem_euclid(86_400)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refuse() {
        let r = RateLimits::default();
        let rate = RateLimit {
            per_second: 1,
            burst: 3,
        };
        for _ in 0..3 {
            assert!(r.check("l1", rate).is_ok());
        }
        let over = r.check("l1", rate).unwrap_err();
        assert!(over.retry_after >= Duration::from_secs(1));
        assert!(over.policy.contains("q=3"));
        // Another licence has its own bucket.
        assert!(r.check("l2", rate).is_ok());
    }

    #[test]
    fn quotas_reserve_and_refund() {
        let q = DailyQuotas::default();
        let quota = Quota {
            requests_per_day: Some(3),
            records_per_day: Some(250),
        };
        assert_eq!(q.admit("l", quota, 10, 100), Ok(100));
        assert_eq!(q.admit("l", quota, 10, 100), Ok(100));
        q.refund("l", 10, 40);
        assert_eq!(q.admit("l", quota, 10, 100), Ok(90));
        assert_eq!(q.admit("l", quota, 10, 1), Err(QuotaExceeded::Requests(3)));
        // A new day starts afresh.
        assert_eq!(q.admit("l", quota, 11, 300), Ok(250));
        assert_eq!(q.admit("l", quota, 11, 1), Err(QuotaExceeded::Records(250)));
    }

    #[test]
    fn public_limits_are_per_ip() {
        let p = PublicLimits::new(1, 1);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        assert!(p.check(a).is_ok());
        assert!(p.check(a).is_err());
        assert!(p.check(b).is_ok());
        p.retain_recent();
    }

    #[test]
    fn midnight() {
        assert_eq!(seconds_to_midnight(86_400 * 5 + 86_399), 1);
        assert_eq!(seconds_to_midnight(0), 86_400);
    }
}
