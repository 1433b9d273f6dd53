//! Differential-privacy budgets of aggregate licences: the ε a licence may spend per UTC day,
//! reserved before an answer is computed (the quota pattern), and the noisy answers already
//! given, so that asking the same question again returns the same answer without spending
//! again (averaging repeated answers would otherwise wear the noise away).
//!
//! Kept in this process, or in Redis when `[limits] redis_url` is set, where every replica
//! spends from one budget and reads the same cached answers. ε is counted in millionths, so
//! sums are exact.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;

/// What a reservation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spend {
    /// The same question was answered today: send this answer again; nothing is spent.
    Cached(Bytes),
    /// The ε is reserved: compute the answer, then [`keep`](PrivacyBudgets::keep) it.
    Charged,
    /// The budget cannot pay for the answer; `remaining` millionths of ε are left today.
    Exhausted {
        /// ε left today, in millionths.
        remaining: u64,
    },
}

/// One licence's day: ε spent and the answers given.
#[derive(Debug, Default)]
struct Day {
    spent: u64,
    answers: HashMap<[u8; 32], Bytes>,
}

/// Budgets kept in this process.
#[derive(Debug, Default)]
pub struct LocalBudgets {
    days: Mutex<HashMap<(String, i64), Day>>,
}

impl LocalBudgets {
    /// Reserves `cost` millionths of ε of the licence's `budget` for `day`, unless the same
    /// question (`question`) was answered that day.
    pub fn spend(&self, licence: &str, day: i64, question: [u8; 32], cost: u64, budget: u64) -> Spend {
        let mut days = self.days.lock().unwrap_or_else(|p| p.into_inner());
        // Yesterday's answers are no longer needed.
        days.retain(|(_, d), _| *d >= day - 1);
        let entry = days.entry((licence.to_owned(), day)).or_default();
        if let Some(a) = entry.answers.get(&question) {
            return Spend::Cached(a.clone());
        }
        match entry.spent.checked_add(cost) {
            Some(total) if total <= budget => {
                entry.spent = total;
                Spend::Charged
            }
            _ => Spend::Exhausted {
                remaining: budget.saturating_sub(entry.spent),
            },
        }
    }

    /// Keeps the answer to `question`; returns the answer to send (the one kept first).
    pub fn keep(&self, licence: &str, day: i64, question: [u8; 32], answer: Bytes) -> Bytes {
        let mut days = self.days.lock().unwrap_or_else(|p| p.into_inner());
        let entry = days.entry((licence.to_owned(), day)).or_default();
        entry.answers.entry(question).or_insert(answer).clone()
    }

    /// ε spent by the licence on `day`, in millionths.
    pub fn spent(&self, licence: &str, day: i64) -> u64 {
        let days = self.days.lock().unwrap_or_else(|p| p.into_inner());
        days.get(&(licence.to_owned(), day)).map_or(0, |d| d.spent)
    }
}

/// The Lua script reserving ε in Redis: a cached answer wins, else the spend is checked and
/// counted in one step.
pub(super) const SPEND: &str = r"
local cached = redis.call('GET', KEYS[1])
if cached then return {2, cached} end
local cost = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local spent = tonumber(redis.call('GET', KEYS[2]) or '0')
if spent + cost > budget then return {-1, tostring(budget - spent)} end
redis.call('INCRBY', KEYS[2], cost)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
return {1, ''}
";

/// The Lua script keeping an answer: the first one kept stays, and is returned.
pub(super) const KEEP: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', tonumber(ARGV[2])) then return ARGV[1] end
return redis.call('GET', KEYS[1])
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_pays_for_what_its_budget_holds_and_repeats_cost_nothing() {
        let b = LocalBudgets::default();
        let (q1, q2, q3) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        assert_eq!(b.spend("l", 10, q1, 400_000, 1_000_000), Spend::Charged);
        assert_eq!(b.keep("l", 10, q1, Bytes::from_static(b"a1")), "a1");
        // The same question again: the same answer, free.
        assert_eq!(
            b.spend("l", 10, q1, 400_000, 1_000_000),
            Spend::Cached(Bytes::from_static(b"a1"))
        );
        assert_eq!(b.spend("l", 10, q2, 400_000, 1_000_000), Spend::Charged);
        // A second answer kept for the same question does not replace the first.
        assert_eq!(b.keep("l", 10, q2, Bytes::from_static(b"a2")), "a2");
        assert_eq!(b.keep("l", 10, q2, Bytes::from_static(b"other")), "a2");
        assert_eq!(
            b.spend("l", 10, q3, 400_000, 1_000_000),
            Spend::Exhausted { remaining: 200_000 }
        );
        assert_eq!(b.spent("l", 10), 800_000);
        // Another licence, another day: their own budgets.
        assert_eq!(b.spend("m", 10, q3, 400_000, 1_000_000), Spend::Charged);
        assert_eq!(b.spend("l", 11, q3, 400_000, 1_000_000), Spend::Charged);
    }
}
