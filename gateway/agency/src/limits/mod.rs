//! Limits: the one [`Limiter`] the data plane asks, which owns whether per-licence rate limits
//! and daily quotas live in this process ([`local`]) or are shared by replicas through Redis
//! ([`shared`]), plus the public listener's per-IP limit.
//!
//! Quotas *reserve* records before a response streams; the unused part is refunded when it
//! ends, so concurrent requests can never exceed a quota together.

pub mod local;
pub mod privacy;
pub mod shared;

pub use local::{
    seconds_to_midnight, DailyQuotas, DayUsage, OverLimit, PublicLimits, QuotaExceeded, RateLimits,
};
pub use shared::{RedisLimits, SharedLimitsDown};

use sluice_policy::licence::{Quota, RateLimit};
use std::net::IpAddr;
use std::sync::Arc;

/// Why a request was not admitted.
#[derive(Debug, Clone)]
pub enum Refused {
    /// Over the request rate (per licence, or per IP on the public listener).
    Rate(OverLimit),
    /// A daily quota is used up.
    Quota(QuotaExceeded),
    /// The shared limits could not be reached (fail closed).
    Down(SharedLimitsDown),
}

/// Rate limits and daily quotas, local or shared; admission and refunds.
pub struct Limiter {
    rate: RateLimits,
    quotas: DailyQuotas,
    budgets: privacy::LocalBudgets,
    shared: Option<Arc<RedisLimits>>,
    per_ip: Option<PublicLimits>,
}

impl Limiter {
    /// Limits kept in this process, or in Redis when `shared` is given; `per_ip` limits the
    /// public listener.
    pub fn new(shared: Option<RedisLimits>, per_ip: Option<PublicLimits>) -> Self {
        Self {
            rate: RateLimits::default(),
            quotas: DailyQuotas::default(),
            budgets: privacy::LocalBudgets::default(),
            shared: shared.map(Arc::new),
            per_ip,
        }
    }

    /// Takes one request from the client IP's bucket (public listener).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        match &self.per_ip {
            Some(p) => p.check(ip).map_err(Refused::Rate),
            None => Ok(()),
        }
    }

    /// Takes one request from the licence's rate, then admits it against the daily quota,
    /// reserving up to `want` records. Returns the records granted.
    pub async fn admit(
        &self,
        licence: &str,
        rate: RateLimit,
        quota: Quota,
        day: i64,
        want: u64,
    ) -> Result<u64, Refused> {
        match &self.shared {
            Some(s) => {
                s.check_rate(licence, rate)
                    .await
                    .map_err(Refused::Down)?
                    .map_err(Refused::Rate)?;
                s.admit(licence, quota, day, want)
                    .await
                    .map_err(Refused::Down)?
                    .map_err(Refused::Quota)
            }
            None => {
                self.rate.check(licence, rate).map_err(Refused::Rate)?;
                self.quotas
                    .admit(licence, quota, day, want)
                    .map_err(Refused::Quota)
            }
        }
    }

    /// Reserves `cost` millionths of ε of the licence's daily `budget`, unless the same
    /// `question` (a [`query_fingerprint`](sluice_policy::aggregate::query_fingerprint)) was
    /// answered today ([`privacy`]).
    pub async fn spend_privacy(
        &self,
        licence: &str,
        day: i64,
        question: [u8; 32],
        cost: u64,
        budget: u64,
    ) -> Result<privacy::Spend, Refused> {
        match &self.shared {
            Some(s) => s
                .spend_privacy(licence, day, &hex::encode(question), cost, budget)
                .await
                .map_err(Refused::Down),
            None => Ok(self.budgets.spend(licence, day, question, cost, budget)),
        }
    }

    /// Keeps today's answer to `question`; returns the answer to send (the first one kept,
    /// by any replica).
    pub async fn keep_answer(
        &self,
        licence: &str,
        day: i64,
        question: [u8; 32],
        answer: bytes::Bytes,
    ) -> Result<bytes::Bytes, Refused> {
        match &self.shared {
            Some(s) => s
                .keep_answer(licence, day, &hex::encode(question), answer)
                .await
                .map_err(Refused::Down),
            None => Ok(self.budgets.keep(licence, day, question, answer)),
        }
    }

    /// Returns reserved records that were not delivered. A shared refund runs in the
    /// background; if Redis is down the records stay counted (the safe side).
    pub fn refund(&self, licence: &str, day: i64, records: u64) {
        match &self.shared {
            None => self.quotas.refund(licence, day, records),
            Some(shared) => {
                let shared = Arc::clone(shared);
                let licence = licence.to_owned();
                tokio::spawn(async move {
                    if let Err(e) = shared.refund(&licence, day, records).await {
                        tracing::warn!(error = %e, licence, records, "quota refund lost");
                    }
                });
            }
        }
    }

    /// Forgets idle per-IP keys; call periodically.
    pub fn retain_recent(&self) {
        if let Some(p) = &self.per_ip {
            p.retain_recent();
        }
    }

    /// A licence's local usage today (not the shared one).
    pub fn local_usage(&self, licence: &str) -> Option<DayUsage> {
        self.quotas.usage(licence)
    }
}
