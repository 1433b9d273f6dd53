//! Per-licence rate limits and daily quotas shared by gateway replicas through Redis
//! (`[limits] redis_url`).
//!
//! Each operation is one Lua script, so it is atomic across replicas:
//! - the rate limit is GCRA (generic cell rate algorithm): one key per licence holding the
//!   theoretical arrival time, in microseconds of Redis's own clock (`TIME`), so replica clocks
//!   do not matter;
//! - the daily quotas are two counters per licence and UTC day (requests, records); admission
//!   checks both and reserves records in one step, refunds never go below zero; the keys expire
//!   two days after they were last written.
//!
//! Every call has a short timeout. When Redis cannot be reached the caller fails closed.

use super::local::{rate_headers, OverLimit, QuotaExceeded};
use redis::aio::ConnectionManager;
use redis::Script;
use sluice_policy::licence::{Quota, RateLimit};
use std::time::Duration;
use tokio::sync::OnceCell;

/// Longest wait for one Redis operation (connection included).
const CALL_TIMEOUT: Duration = Duration::from_millis(750);
/// Lifetime of the daily counters after their last write.
const DAY_TTL_S: u64 = 2 * 86_400;

const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if allow_at > now then
  return allow_at - now
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return 0
";

const ADMIT: &str = r"
local max_req = tonumber(ARGV[1])
local max_rec = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local req = tonumber(redis.call('GET', KEYS[1]) or '0')
if max_req >= 0 and req >= max_req then return {-1, max_req} end
local rec = tonumber(redis.call('GET', KEYS[2]) or '0')
local granted = want
if max_rec >= 0 then
  if rec >= max_rec then return {-2, max_rec} end
  if max_rec - rec < granted then granted = max_rec - rec end
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('INCRBY', KEYS[2], granted)
redis.call('EXPIRE', KEYS[2], ttl)
return {1, granted}
";

const REFUND: &str = r"
local rec = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = math.min(rec, tonumber(ARGV[1]))
if n > 0 then redis.call('DECRBY', KEYS[1], n) end
return n
";

/// Redis could not be used; the request must be refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("shared limits (Redis): {0}")]
pub struct SharedLimitsDown(pub String);

impl From<redis::RedisError> for SharedLimitsDown {
    fn from(e: redis::RedisError) -> Self {
        Self(e.to_string())
    }
}

/// Limits shared through Redis.
pub struct RedisLimits {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    prefix: String,
    gcra: Script,
    admit: Script,
    refund: Script,
    spend: Script,
    keep: Script,
}

impl std::fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimits")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisLimits {
    /// Parses the URL; connects lazily on first use (so the gateway starts while Redis is down).
    pub fn new(url: &str, prefix: &str) -> Result<Self, SharedLimitsDown> {
        Ok(Self {
            client: redis::Client::open(url)?,
            conn: OnceCell::new(),
            prefix: prefix.to_owned(),
            gcra: Script::new(GCRA),
            admit: Script::new(ADMIT),
            refund: Script::new(REFUND),
            spend: Script::new(super::privacy::SPEND),
            keep: Script::new(super::privacy::KEEP),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, SharedLimitsDown> {
        let cm = self
            .conn
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await?;
        Ok(cm.clone())
    }

    async fn call<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[i64],
    ) -> Result<T, SharedLimitsDown> {
        let fut = async {
            let mut conn = self.conn().await?;
            let mut inv = script.prepare_invoke();
            for k in keys {
                inv.key(k);
            }
            for a in args {
                inv.arg(*a);
            }
            Ok::<T, SharedLimitsDown>(inv.invoke_async(&mut conn).await?)
        };
        tokio::time::timeout(CALL_TIMEOUT, fut)
            .await
            .map_err(|_| SharedLimitsDown(format!("no answer within {CALL_TIMEOUT:?}")))?
    }

    fn day_key(&self, licence: &str, day: i64, what: &str) -> String {
        format!("{}:{{q:{licence}:{day}}}:{what}", self.prefix)
    }

    /// Takes one request from the licence's shared GCRA bucket.
    pub async fn check_rate(
        &self,
        licence: &str,
        rate: RateLimit,
    ) -> Result<Result<(), OverLimit>, SharedLimitsDown> {
        let per_second = rate.per_second.max(1);
        let burst = rate.burst.max(per_second).max(1);
        let interval_us = 1_000_000 / i64::from(per_second);
        let key = format!("{}:rate:{licence}:{per_second}:{burst}", self.prefix);
        let wait_us: i64 = self
            .call(&self.gcra, &[key], &[interval_us.max(1), i64::from(burst)])
            .await?;
        Ok(if wait_us > 0 {
            let wait = Duration::from_micros(u64::try_from(wait_us).unwrap_or(u64::MAX));
            Err(rate_headers("licence", per_second, burst, wait))
        } else {
            Ok(())
        })
    }

    /// Admits one request and reserves up to `want` records of the licence's shared quota.
    pub async fn admit(
        &self,
        licence: &str,
        quota: Quota,
        day: i64,
        want: u64,
    ) -> Result<Result<u64, QuotaExceeded>, SharedLimitsDown> {
        let as_arg = |v: Option<u64>| v.map(|n| i64::try_from(n).unwrap_or(i64::MAX)).unwrap_or(-1);
        let keys = [
            self.day_key(licence, day, "requests"),
            self.day_key(licence, day, "records"),
        ];
        let args = [
            as_arg(quota.requests_per_day),
            as_arg(quota.records_per_day),
            i64::try_from(want).unwrap_or(i64::MAX),
            DAY_TTL_S as i64,
        ];
        let (code, n): (i64, i64) = self.call(&self.admit, &keys, &args).await?;
        let n = u64::try_from(n).unwrap_or(0);
        Ok(match code {
            -1 => Err(QuotaExceeded::Requests(n)),
            -2 => Err(QuotaExceeded::Records(n)),
            _ => Ok(n),
        })
    }

    /// Reserves `cost` millionths of ε of the licence's `budget` for `day` across replicas,
    /// unless the same question was answered that day by any of them.
    pub async fn spend_privacy(
        &self,
        licence: &str,
        day: i64,
        question: &str,
        cost: u64,
        budget: u64,
    ) -> Result<super::privacy::Spend, SharedLimitsDown> {
        use super::privacy::Spend;
        let keys = [
            self.day_key(licence, day, &format!("answer:{question}")),
            self.day_key(licence, day, "epsilon"),
        ];
        let fut = async {
            let mut conn = self.conn().await?;
            let (code, text): (i64, Vec<u8>) = self
                .spend
                .key(&keys[0])
                .key(&keys[1])
                .arg(i64::try_from(cost).unwrap_or(i64::MAX))
                .arg(i64::try_from(budget).unwrap_or(i64::MAX))
                .arg(DAY_TTL_S as i64)
                .invoke_async(&mut conn)
                .await?;
            Ok::<_, SharedLimitsDown>(match code {
                2 => Spend::Cached(bytes::Bytes::from(text)),
                1 => Spend::Charged,
                _ => Spend::Exhausted {
                    remaining: std::str::from_utf8(&text)
                        .ok()
                        .and_then(|t| t.parse::<i64>().ok())
                        .map_or(0, |r| u64::try_from(r).unwrap_or(0)),
                },
            })
        };
        tokio::time::timeout(CALL_TIMEOUT, fut)
            .await
            .map_err(|_| SharedLimitsDown(format!("no answer within {CALL_TIMEOUT:?}")))?
    }

    /// Keeps the answer to a question for the day; returns the answer every replica sends
    /// (the one kept first).
    pub async fn keep_answer(
        &self,
        licence: &str,
        day: i64,
        question: &str,
        answer: bytes::Bytes,
    ) -> Result<bytes::Bytes, SharedLimitsDown> {
        let key = self.day_key(licence, day, &format!("answer:{question}"));
        let fut = async {
            let mut conn = self.conn().await?;
            let kept: Vec<u8> = self
                .keep
                .key(&key)
                .arg(answer.as_ref())
                .arg(DAY_TTL_S as i64)
                .invoke_async(&mut conn)
                .await?;
            Ok::<_, SharedLimitsDown>(bytes::Bytes::from(kept))
        };
        tokio::time::timeout(CALL_TIMEOUT, fut)
            .await
            .map_err(|_| SharedLimitsDown(format!("no answer within {CALL_TIMEOUT:?}")))?
    }

    /// Returns reserved records that were not delivered.
    pub async fn refund(&self, licence: &str, day: i64, records: u64) -> Result<(), SharedLimitsDown> {
        if records == 0 {
            return Ok(());
        }
        let key = self.day_key(licence, day, "records");
        let _: i64 = self
            .call(
                &self.refund,
                &[key],
                &[i64::try_from(records).unwrap_or(i64::MAX)],
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn prefix() -> String {
        format!("sluice-unit-{}", uuid::Uuid::now_v7())
    }

    /// Needs Redis on 127.0.0.1:6379 (running here and in CI).
    #[tokio::test]
    async fn shared_quota_and_rate() {
        let a = RedisLimits::new("redis://127.0.0.1:6379", &prefix()).unwrap();
        let quota = Quota {
            requests_per_day: Some(3),
            records_per_day: Some(250),
        };
        assert_eq!(a.admit("l", quota, 10, 100).await.unwrap(), Ok(100));
        assert_eq!(a.admit("l", quota, 10, 100).await.unwrap(), Ok(100));
        a.refund("l", 10, 40).await.unwrap();
        assert_eq!(a.admit("l", quota, 10, 100).await.unwrap(), Ok(90));
        assert_eq!(
            a.admit("l", quota, 10, 1).await.unwrap(),
            Err(QuotaExceeded::Requests(3))
        );
        let rate = RateLimit {
            per_second: 1,
            burst: 3,
        };
        for _ in 0..3 {
            assert!(a.check_rate("l", rate).await.unwrap().is_ok());
        }
        let over = a.check_rate("l", rate).await.unwrap().unwrap_err();
        assert!(over.retry_after >= Duration::from_secs(1));
    }

    #[tokio::test]
    async fn unreachable_redis_is_an_error() {
        let a = RedisLimits::new("redis://127.0.0.1:1", &prefix()).unwrap();
        assert!(a.admit("l", Quota::default(), 1, 1).await.is_err());
    }
}
