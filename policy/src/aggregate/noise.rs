//! Differential-privacy noise for released counts and sums (optional per licence), the
//! privacy cost of one answer, and a budget ledger.
//!
//! **Mechanism.** The discrete Laplace mechanism: each released integer (a count, or a sum
//! in nano-units) gets integer noise `Y` with `P(Y = y) ∝ exp(−|y| / scale)`, sampled
//! *exactly* by the algorithm of Canonne, Kamath and Steinke (2020, "The Discrete Gaussian
//! for Differential Privacy", Algorithm 2) from uniform integers and exact
//! `Bernoulli(exp(−n/d))` trials on `u128` rationals. No floating point touches a sample:
//! the textbook `−scale · ln(U)` on `f64` leaks through the holes and rounding of
//! floating-point numbers (Mironov 2012, "On significance of the least significant bits
//! for differential privacy"). Randomness is a parameter, `CryptoRng + RngCore`: the
//! gateway passes the operating system's generator; tests pass a seeded ChaCha.
//!
//! **Sensitivity and budget split.** Neighbouring data sets differ by one record, which
//! falls in at most one released cell (cells are disjoint), so each cell is noised
//! independently at the full per-statistic budget (parallel composition). A count moves by
//! at most 1. A sum moves by at most `max(|lower|, |upper|)` when every measure was clamped
//! into `[lower, upper]` before it was summed: the table must have been built under the
//! licence's [`DpParams::clamp`] ([`super::BasePlan::with_clamp`]), or [`add_noise`]
//! refuses. One answer costs [`DpParams::epsilon`] in all: `count` spends all of it on the
//! counts; `sum` splits it in halves (counts, sums); `avg` in thirds (counts, numeric
//! counts, sums), the average being the noisy sum over the noisy numeric count. `min` and
//! `max` have no bounded sensitivity and are refused. Scale = sensitivity / share of ε;
//! the ε used is rounded down to a millionth, which only adds noise.
//!
//! **Post-processing.** Noisy counts below zero are released as zero, so counts stay
//! non-negative integers; this and the average are post-processing and cost nothing.
//!
//! **Limits, stated plainly.** Which cells are released at all is decided on the true
//! counts (`k` suppression), so the *set* of released cells and the suppressed count are
//! not differentially private; the noise protects the released values. Answers with
//! margins over all records are refused (a record would touch up to four noisy numbers).
//! Asking the same question twice would average the noise away: answer a repeated query
//! from a cache keyed by [`super::query_fingerprint`], and charge every new one to the
//! licence's [`Budget`].

use super::decimal::Decimal;
use super::query::Metric;
use super::release::{metric_value, Released, Totals};
use super::table::{BaseCell, Clamp};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

/// The smallest ε a licence may set per answer.
pub const MIN_EPSILON: f64 = 0.001;
/// The largest ε a licence may set per answer.
pub const MAX_EPSILON: f64 = 10.0;
/// ε is used in millionths.
const MICROS: u128 = 1_000_000;

/// A licence's differential-privacy parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpParams {
    /// The privacy loss of one answer, in [`MIN_EPSILON`]`..=`[`MAX_EPSILON`].
    pub epsilon: f64,
    /// The bounds each record's measure is clamped to (needed for sums and averages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clamp: Option<Clamp>,
}

/// A licence's differential-privacy policy: the ε one answer spends, the ε a UTC day
/// allows, and the bounds each record's measure is clamped to (needed for sums and averages).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpPolicy {
    /// The privacy loss of one answer.
    pub epsilon: f64,
    /// The privacy loss a licence may spend per UTC day, across every gateway.
    pub budget_per_day: f64,
    /// Each record's measure is clamped to these bounds before it is summed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clamp: Option<Clamp>,
}

impl DpPolicy {
    /// The noise parameters of one answer.
    pub fn params(&self) -> DpParams {
        DpParams {
            epsilon: self.epsilon,
            clamp: self.clamp,
        }
    }

    /// Checks ε, the clamp, and that the daily budget holds at least one answer.
    pub fn validate(&self) -> Result<(), NoiseError> {
        self.params().validate()?;
        if !(self.budget_per_day >= self.epsilon && self.budget_per_day.is_finite()) {
            return Err(NoiseError::BudgetBelowEpsilon);
        }
        Ok(())
    }
}

/// Why noise was not added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoiseError {
    /// ε outside [`MIN_EPSILON`]`..=`[`MAX_EPSILON`] (or not a number).
    #[error("epsilon must be between {MIN_EPSILON} and {MAX_EPSILON}")]
    BadEpsilon,
    /// A clamp with `lower > upper`.
    #[error("the clamp's lower bound is above its upper bound")]
    BadClamp,
    /// A daily budget smaller than one answer's ε (or not a number).
    #[error("the daily privacy budget must be at least one answer's epsilon")]
    BudgetBelowEpsilon,
    /// `min` or `max`, whose sensitivity is unbounded.
    #[error("differential privacy is not available for {metric}")]
    UnsupportedMetric {
        /// The metric.
        metric: String,
    },
    /// A sum or average from a table not clamped to the licence's bounds.
    #[error("sums under differential privacy need the measure clamped to the licence's bounds")]
    NotClamped,
    /// An answer with totals over all records.
    #[error("differential privacy is not available with totals over all records")]
    AllRecords,
    /// Noise was already added to this answer.
    #[error("noise was already added to this answer")]
    AlreadyNoised,
    /// A sample or a noisy sum left the integer range (practically unreachable).
    #[error("noise sampling overflowed")]
    Overflow,
}

impl DpParams {
    /// Checks ε's range and the clamp's order.
    pub fn validate(&self) -> Result<(), NoiseError> {
        if !(MIN_EPSILON..=MAX_EPSILON).contains(&self.epsilon) {
            return Err(NoiseError::BadEpsilon);
        }
        if self.clamp.is_some_and(|c| c.lower > c.upper) {
            return Err(NoiseError::BadClamp);
        }
        Ok(())
    }

    /// ε in millionths, rounded down (at least 1000 once validated).
    fn epsilon_micros(&self) -> u128 {
        // In range after validate(): 1_000 ..= 10_000_000.
        let micros = (self.epsilon * 1e6).floor();
        if micros.is_finite() && micros >= 1.0 {
            micros as u128
        } else {
            1
        }
    }

    /// A sum's sensitivity in nano-units: `max(|lower|, |upper|)`.
    fn sum_sensitivity(&self) -> Option<u128> {
        self.clamp
            .map(|c| c.lower.abs().max(c.upper.abs()).units().unsigned_abs())
    }
}

/// The privacy loss (ε) one noised answer spends under `dp`, whatever its metric.
pub fn cost(dp: &DpParams) -> f64 {
    dp.epsilon
}

/// What noise an answer carries, published with it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NoiseInfo {
    /// Always `"discrete-laplace"`.
    pub mechanism: &'static str,
    /// The ε this answer spent.
    pub epsilon: f64,
    /// The Laplace scale of each count's noise.
    pub count_scale: f64,
    /// The Laplace scale of each sum's noise (in the measure's units), for sums and
    /// averages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum_scale: Option<f64>,
}

/// A discrete Laplace scale as the exact rational `num / den`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Scale {
    pub(super) num: u128,
    pub(super) den: u128,
}

impl Scale {
    fn as_f64(self, unit: f64) -> f64 {
        self.num as f64 / self.den as f64 * unit
    }
}

/// Adds discrete Laplace noise to every released cell of `released` (see the module
/// documentation), replacing the exact values, which are not kept.
pub fn add_noise<R: CryptoRng + RngCore + ?Sized>(
    released: &mut Released,
    dp: &DpParams,
    rng: &mut R,
) -> Result<(), NoiseError> {
    dp.validate()?;
    if released.noise.is_some() {
        return Err(NoiseError::AlreadyNoised);
    }
    if released.totals == Totals::AllRecords || !released.margins.is_empty() {
        return Err(NoiseError::AllRecords);
    }
    let parts: u128 = match released.metric {
        Metric::Count => 1,
        Metric::Sum(_) => 2,
        Metric::Avg(_) => 3,
        Metric::Min(_) | Metric::Max(_) => {
            return Err(NoiseError::UnsupportedMetric {
                metric: released.metric.to_string(),
            })
        }
    };
    let eps = dp.epsilon_micros();
    let count_scale = Scale {
        num: parts * MICROS,
        den: eps,
    };
    let sum_scale = if parts > 1 {
        if dp.clamp.is_none() || released.clamp() != dp.clamp {
            return Err(NoiseError::NotClamped);
        }
        let sensitivity = dp.sum_sensitivity().ok_or(NoiseError::NotClamped)?;
        let num = sensitivity
            .checked_mul(parts * MICROS)
            .ok_or(NoiseError::Overflow)?;
        Some(Scale { num, den: eps })
    } else {
        None
    };
    for cell in &mut released.cells {
        // The exact values are replaced, not kept beside the noisy ones.
        let count = noisy_count(cell.exact.count, count_scale, rng)?;
        let mut noisy = BaseCell {
            count,
            measured: count,
            ..BaseCell::default()
        };
        if let Some(scale) = sum_scale {
            let noise = discrete_laplace(rng, scale)?;
            noisy.sum = cell
                .exact
                .sum
                .checked_add(Decimal::from_units(noise))
                .ok_or(NoiseError::Overflow)?;
            if let Metric::Avg(_) = released.metric {
                noisy.measured = noisy_count(cell.exact.measured, count_scale, rng)?.max(1);
            }
        }
        cell.count = noisy.count;
        cell.value = metric_value(&released.metric, &noisy);
        cell.exact = noisy;
    }
    released.non_numeric = 0;
    released.noise = Some(NoiseInfo {
        mechanism: "discrete-laplace",
        epsilon: cost(dp),
        count_scale: count_scale.as_f64(1.0),
        sum_scale: sum_scale.map(|s| s.as_f64(1e-9)),
    });
    Ok(())
}

/// `count` plus discrete Laplace noise, floored at zero.
fn noisy_count<R: RngCore + ?Sized>(count: u64, scale: Scale, rng: &mut R) -> Result<u64, NoiseError> {
    let noisy = i128::from(count)
        .checked_add(discrete_laplace(rng, scale)?)
        .ok_or(NoiseError::Overflow)?;
    Ok(u64::try_from(noisy.max(0)).unwrap_or(u64::MAX))
}

/// A uniform integer in `0..m` (`m > 0`), by rejection of 128-bit draws masked to `m`'s
/// bit length (fewer than two draws expected).
fn uniform_below<R: RngCore + ?Sized>(rng: &mut R, m: u128) -> u128 {
    if m <= 1 {
        return 0;
    }
    let bits = 128 - (m - 1).leading_zeros();
    let mask = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    loop {
        let draw = (u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64())) & mask;
        if draw < m {
            return draw;
        }
    }
}

/// `Bernoulli(n / d)`, exactly (`n <= d`, `d > 0`).
fn bernoulli_rational<R: RngCore + ?Sized>(rng: &mut R, n: u128, d: u128) -> bool {
    uniform_below(rng, d) < n
}

/// `Bernoulli(exp(−n / d))`, exactly (`d > 0`): CKS20 Algorithm 1. For `n/d <= 1`, draw
/// `Bernoulli(γ/k)` for k = 1, 2, … until one fails and answer whether that k is odd;
/// above 1, it is the product of `Bernoulli(exp(−1))` trials and one for the remainder.
pub(super) fn bernoulli_exp<R: RngCore + ?Sized>(
    rng: &mut R,
    mut n: u128,
    d: u128,
) -> Result<bool, NoiseError> {
    while n > d {
        if !bernoulli_exp(rng, 1, 1)? {
            return Ok(false);
        }
        n -= d;
    }
    let mut k: u128 = 1;
    loop {
        let dk = d.checked_mul(k).ok_or(NoiseError::Overflow)?;
        if !bernoulli_rational(rng, n, dk) {
            return Ok(k % 2 == 1);
        }
        k += 1;
    }
}

/// One sample of the discrete Laplace distribution of scale `num / den` on the integers:
/// CKS20 Algorithm 2 with `t = num`, `s = den`. `U` uniform in `0..t` kept with probability
/// `exp(−U/t)`, `V` geometric with ratio `exp(−1)`, magnitude `⌊(U + tV) / s⌋`, a fair sign,
/// and negative zero rejected.
pub(super) fn discrete_laplace<R: RngCore + ?Sized>(rng: &mut R, scale: Scale) -> Result<i128, NoiseError> {
    let (t, s) = (scale.num, scale.den);
    if t == 0 || s == 0 {
        return Ok(0);
    }
    loop {
        let u = uniform_below(rng, t);
        if !bernoulli_exp(rng, u, t)? {
            continue;
        }
        let mut v: u128 = 0;
        while bernoulli_exp(rng, 1, 1)? {
            v += 1;
        }
        let x = t
            .checked_mul(v)
            .and_then(|tv| tv.checked_add(u))
            .ok_or(NoiseError::Overflow)?;
        let y = i128::try_from(x / s).map_err(|_| NoiseError::Overflow)?;
        let negative = rng.next_u32() & 1 == 1;
        if negative && y == 0 {
            continue;
        }
        return Ok(if negative { -y } else { y });
    }
}

/// A licence's privacy budget: the ε it may spend and has spent, kept in millionths so
/// repeated charges add up exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    limit_micros: u64,
    spent_micros: u64,
}

/// A charge that would exceed the budget.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("privacy budget exhausted: {remaining} of ε left, {asked} asked")]
pub struct BudgetExhausted {
    /// ε left.
    pub remaining: f64,
    /// ε the refused answer would have cost.
    pub asked: f64,
}

impl Budget {
    /// A budget of `limit` ε (rounded down to a millionth), of which `spent` is used
    /// (rounded up).
    pub fn new(limit: f64, spent: f64) -> Self {
        Self {
            limit_micros: to_micros(limit, f64::floor),
            spent_micros: to_micros(spent, f64::ceil),
        }
    }

    /// ε left.
    pub fn remaining(&self) -> f64 {
        self.limit_micros.saturating_sub(self.spent_micros) as f64 / 1e6
    }

    /// ε spent.
    pub fn spent(&self) -> f64 {
        self.spent_micros as f64 / 1e6
    }

    /// Spends `epsilon` (rounded up to a millionth), or refuses without spending anything.
    pub fn charge(&mut self, epsilon: f64) -> Result<(), BudgetExhausted> {
        let asked = to_micros(epsilon, f64::ceil);
        match self.spent_micros.checked_add(asked) {
            Some(total) if total <= self.limit_micros => {
                self.spent_micros = total;
                Ok(())
            }
            _ => Err(BudgetExhausted {
                remaining: self.remaining(),
                asked: epsilon,
            }),
        }
    }
}

/// `epsilon` in millionths, rounded by `round`; NaN and negatives are 0, and +∞ saturates.
fn to_micros(epsilon: f64, round: fn(f64) -> f64) -> u64 {
    let micros = round(epsilon * 1e6);
    if micros.is_nan() || micros <= 0.0 {
        0
    } else if micros >= u64::MAX as f64 {
        u64::MAX
    } else {
        micros as u64
    }
}
