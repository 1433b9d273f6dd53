//! Phase: limit. The licence's request rate and daily quotas (records reserved now, the
//! unused part refunded when the response ends); the client IP's rate on the public listener.

use crate::limits::{seconds_to_midnight, Limiter, OverLimit, QuotaExceeded, Refused};
use http::header::{self, HeaderName};
use http::HeaderValue;
use sluice_net::problem::{Problem, ProblemCode};
use sluice_policy::Permit;
use std::net::IpAddr;
use std::sync::Arc;

/// Records reserved for one response, and how to give back what it does not use.
pub struct Grant {
    limiter: Arc<Limiter>,
    licence: Option<String>,
    day: i64,
    /// Records the response may carry.
    pub records: u64,
}

impl Grant {
    /// A grant of `records` outside any licence (tests of later phases).
    #[cfg(test)]
    pub(crate) fn unlicensed(limiter: Arc<Limiter>, records: u64) -> Grant {
        Grant {
            limiter,
            licence: None,
            day: 0,
            records,
        }
    }

    /// Returns the reservation minus what was delivered.
    pub fn settle(&self, delivered: u64) {
        if let Some(l) = &self.licence {
            self.limiter
                .refund(l, self.day, self.records.saturating_sub(delivered));
        }
    }
}

/// Takes one request from the client IP's bucket (public listener).
pub fn per_ip(limiter: &Limiter, ip: IpAddr) -> Result<(), Problem> {
    limiter.check_ip(ip).map_err(refused)
}

/// Admits the request under its licence's rate and quotas, reserving up to `want` records.
/// Unlicensed (unconditional) data is limited per IP only.
pub async fn admit(limiter: &Arc<Limiter>, permit: &Permit, want: u64) -> Result<Grant, Problem> {
    let day = today();
    let Some(licence) = &permit.licence else {
        return Ok(Grant {
            limiter: limiter.clone(),
            licence: None,
            day,
            records: want,
        });
    };
    let records = limiter
        .admit(&licence.id, licence.rate, licence.quota, day, want)
        .await
        .map_err(refused)?;
    Ok(Grant {
        limiter: limiter.clone(),
        licence: Some(licence.id.clone()),
        day,
        records,
    })
}

/// The problem of a request the limits refused.
pub(super) fn refused(r: Refused) -> Problem {
    match r {
        Refused::Rate(o) => rate_limited(o),
        Refused::Quota(q) => quota_exhausted(q),
        Refused::Down(e) => {
            tracing::error!(error = %e, "shared limits unreachable; refusing licensed requests");
            Problem::new(
                ProblemCode::Unavailable,
                "the gateway cannot check the shared rate limits and quotas; try later",
            )
        }
    }
}

fn rate_limited(o: OverLimit) -> Problem {
    let p = Problem::new(
        ProblemCode::RateLimited,
        format!("too many requests; retry after {} s", o.retry_after.as_secs()),
    );
    with_headers(
        p,
        &[
            (header::RETRY_AFTER, o.retry_after.as_secs().to_string()),
            (HeaderName::from_static("ratelimit-policy"), o.policy),
            (HeaderName::from_static("ratelimit"), o.state),
        ],
    )
}

/// Today's UTC day number, the key of daily quotas and privacy budgets.
pub(super) fn today() -> i64 {
    time::OffsetDateTime::now_utc()
        .unix_timestamp()
        .div_euclid(86_400)
}

/// The licence's privacy budget for the day cannot pay for another answer.
pub(super) fn budget_exhausted(remaining_micros: u64, epsilon: f64) -> Problem {
    let secs = seconds_to_midnight(time::OffsetDateTime::now_utc().unix_timestamp());
    let p = Problem::new(
        ProblemCode::PrivacyBudgetExhausted,
        format!(
            "the licence's privacy budget for today has {} of ε left and an answer costs {epsilon}; it resets at 00:00 UTC",
            remaining_micros as f64 / 1e6
        ),
    );
    with_headers(p, &[(header::RETRY_AFTER, secs.to_string())])
}

fn quota_exhausted(q: QuotaExceeded) -> Problem {
    let secs = seconds_to_midnight(time::OffsetDateTime::now_utc().unix_timestamp());
    let (what, max) = match q {
        QuotaExceeded::Requests(m) => ("requests", m),
        QuotaExceeded::Records(m) => ("records", m),
    };
    let p = Problem::new(
        ProblemCode::QuotaExhausted,
        format!("the daily quota of {max} {what} is used up; it resets at 00:00 UTC"),
    );
    with_headers(
        p,
        &[
            (header::RETRY_AFTER, secs.to_string()),
            (
                HeaderName::from_static("ratelimit-policy"),
                format!("\"daily-{what}\";q={max};w=86400"),
            ),
            (
                HeaderName::from_static("ratelimit"),
                format!("\"daily-{what}\";r=0;t={secs}"),
            ),
        ],
    )
}

fn with_headers(mut p: Problem, headers: &[(HeaderName, String)]) -> Problem {
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            p = p.with_header(name.clone(), v);
        }
    }
    p
}
