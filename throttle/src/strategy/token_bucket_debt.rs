//! Token bucket with debt: tokens may go below zero, down to `-max_debt`.

use super::InvalidStrategyParam;
use super::bucket;
use super::codec::tags;
use super::math::{decode_pair, encode_pair, sat};
use super::token_bucket::{burst_or_limit, check_burst};
use super::{Decision, Metadata, Snapshot, Strategy, TokenBucketState, degenerate, degenerate_stat};
use crate::Rate;

/// A [`TokenBucket`](super::TokenBucket) whose tokens may go negative, down to
/// `-max_debt`: a client can borrow against future refills, then waits until the
/// bucket has refilled past what it borrowed. Refill stops at `burst` as usual.
///
/// A single hit may cost up to `burst + max_debt` (its [`capacity`](Strategy::capacity)).
/// `remaining` is `tokens + max_debt`, capped at the limit.
///
/// State per key: 16 bytes in memory; on Redis one string of 3 integers (at most
/// 35 bytes). Every decision is O(1) on both.
///
/// ```
/// use throttle::{Rate, backend::MemoryBackend};
/// use throttle::strategy::TokenBucketDebt;
///
/// let debt = TokenBucketDebt::new(15)?; // burst: the limit
/// let backend = MemoryBackend::new();
/// let rate = Rate::per_second(10);
/// for cost in [10, 5, 8] {
///     assert!(backend.hit_now("k", &debt, rate, cost).allowed); // 13 tokens in debt
/// }
/// assert!(!backend.hit_now("k", &debt, rate, 3).allowed); // would be 16 in debt
/// assert!(backend.hit_now("k", &debt, rate, 2).allowed); // 15 in debt: the maximum
/// # Ok::<(), throttle::strategy::InvalidStrategyParam>(())
/// ```
///
/// The default is a burst of the limit and no debt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenBucketDebt {
    /// 0: the rate's limit.
    burst: u64,
    max_debt: u64,
}

impl TokenBucketDebt {
    /// A bucket the size of the rate's limit that may owe up to `max_debt` tokens
    /// (at most [`Rate::MAX`]; 0 makes it a plain token bucket).
    pub const fn new(max_debt: u64) -> Result<Self, InvalidStrategyParam> {
        if max_debt > Rate::MAX {
            return Err(InvalidStrategyParam::TooLarge { param: "max_debt", value: max_debt });
        }
        Ok(TokenBucketDebt { burst: 0, max_debt })
    }

    /// A bucket of `burst` tokens (at least 1) that may owe up to `max_debt`.
    ///
    /// ```
    /// use throttle::Rate;
    /// use throttle::strategy::{Strategy, TokenBucketDebt};
    /// let debt = TokenBucketDebt::with_burst(20, 5)?;
    /// assert_eq!(debt.capacity(Rate::per_second(10)), 25);
    /// assert!(TokenBucketDebt::with_burst(0, 5).is_err());
    /// # Ok::<(), throttle::strategy::InvalidStrategyParam>(())
    /// ```
    pub const fn with_burst(burst: u64, max_debt: u64) -> Result<Self, InvalidStrategyParam> {
        let burst = match check_burst(burst) {
            Ok(burst) => burst,
            Err(e) => return Err(e),
        };
        match Self::new(max_debt) {
            Ok(debt) => Ok(TokenBucketDebt { burst, max_debt: debt.max_debt }),
            Err(e) => Err(e),
        }
    }

    /// The burst set with [`with_burst`](Self::with_burst), if any.
    pub const fn burst(&self) -> Option<u64> {
        if self.burst == 0 { None } else { Some(self.burst) }
    }

    /// How many tokens the bucket may owe.
    pub const fn max_debt(&self) -> u64 {
        self.max_debt
    }

    fn admit_units(&self, rate: Rate) -> u128 {
        u128::from(Strategy::capacity(self, rate)) * bucket::unit(rate)
    }
}

impl Strategy for TokenBucketDebt {
    type State = TokenBucketState;

    fn name(&self) -> &'static str {
        "token_bucket_debt"
    }

    fn decide(&self, state: &mut TokenBucketState, now_ms: u64, rate: Rate, cost: u64) -> Decision {
        if let Some(decision) = degenerate(rate) {
            return decision;
        }
        bucket::decide(&mut state.last_ms, &mut state.missing, now_ms, rate, cost, self.admit_units(rate))
    }

    fn stat(&self, state: &TokenBucketState, now_ms: u64, rate: Rate) -> Snapshot {
        if let Some(snapshot) = degenerate_stat(rate) {
            return snapshot;
        }
        let view = bucket::view(state.last_ms, state.missing, now_ms, rate, self.admit_units(rate));
        let unit = bucket::unit(rate) as i128;
        let burst = burst_or_limit(self.burst, rate);
        // Tokens = burst - missing / unit, rounded down (toward more debt).
        let tokens_units = i128::from(burst) * unit - view.reading.level as i128;
        let tokens = tokens_units.div_euclid(unit);
        Snapshot {
            remaining: view.remaining,
            wait_ms: view.wait_ms,
            reset_ms: view.reset_ms,
            metadata: Metadata::TokenBucketDebt {
                tokens: i64::try_from(tokens).unwrap_or(i64::MIN),
                capacity: burst,
                max_debt: self.max_debt,
                debt: u64::try_from(-tokens.min(0)).unwrap_or(u64::MAX),
                last_refill_ms: state.last_ms,
                level_units: sat(view.reading.level),
            },
        }
    }

    /// Gives back what the hit still holds: see [`Strategy::refund`].
    fn refund(&self, state: &mut Self::State, now_ms: u64, rate: Rate, cost: u64, since_ms: u64) -> bool {
        degenerate(rate).is_none()
            && bucket::refund(&mut state.last_ms, &mut state.missing, now_ms, rate, cost, since_ms)
    }

    fn expires_at(&self, state: &TokenBucketState, rate: Rate) -> u64 {
        bucket::empty_at(state.last_ms, state.missing, rate)
    }

    /// `burst + max_debt`: the most a hit on a full bucket can borrow.
    fn capacity(&self, rate: Rate) -> u64 {
        match burst_or_limit(self.burst, rate) {
            0 => 0,
            burst => burst + self.max_debt,
        }
    }

    /// `[5, last_ms, missing]`.
    fn encode(&self, state: &TokenBucketState) -> Option<Vec<i64>> {
        encode_pair(tags::TOKEN_BUCKET_DEBT, state.last_ms, state.missing)
    }

    fn decode(&self, fields: &[i64]) -> Option<TokenBucketState> {
        decode_pair(tags::TOKEN_BUCKET_DEBT, fields).map(|(last_ms, missing)| TokenBucketState { last_ms, missing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate::per_second(10);

    fn meta(debt: &TokenBucketDebt, state: &TokenBucketState, now: u64) -> (i64, u64, u64) {
        match debt.stat(state, now, RATE).metadata {
            Metadata::TokenBucketDebt { tokens, debt, max_debt, .. } => (tokens, debt, max_debt),
            other => panic!("unexpected metadata {other:?}"),
        }
    }

    #[test]
    fn debt_is_tracked_and_repaid_by_refill() {
        let debt = TokenBucketDebt::new(15).unwrap();
        let mut state = TokenBucketState::default();
        for cost in [10, 5, 8] {
            assert!(debt.decide(&mut state, 0, RATE, cost).allowed);
        }
        assert_eq!(meta(&debt, &state, 0), (-13, 13, 15));
        let rejected = debt.decide(&mut state, 0, RATE, 3);
        assert_eq!((rejected.allowed, rejected.remaining, rejected.wait_ms), (false, 2, 100));
        assert!(debt.decide(&mut state, 0, RATE, 2).allowed);
        assert_eq!(meta(&debt, &state, 0), (-15, 15, 15));
        // 150 ms repays 1.5 tokens: -13.5 shows as -14 tokens.
        assert_eq!(meta(&debt, &state, 150), (-14, 14, 15));
        // Refill stops at the burst: 10 tokens however long the wait.
        assert_eq!(meta(&debt, &state, 60_000), (10, 0, 15));
        assert_eq!(debt.stat(&state, 60_000, RATE).remaining, 10);
    }

    #[test]
    fn zero_debt_is_a_plain_token_bucket() {
        let debt = TokenBucketDebt::new(0).unwrap();
        let plain = super::super::TokenBucket::new();
        let (mut a, mut b) = (TokenBucketState::default(), TokenBucketState::default());
        for (now, cost) in [(0, 4), (0, 6), (0, 1), (50, 1), (100, 1), (250, 3), (260, 1)] {
            assert_eq!(debt.decide(&mut a, now, RATE, cost), plain.decide(&mut b, now, RATE, cost));
        }
    }

    #[test]
    fn params_are_checked() {
        assert!(TokenBucketDebt::new(Rate::MAX + 1).is_err());
        assert_eq!(TokenBucketDebt::with_burst(0, 1), Err(InvalidStrategyParam::ZeroBurst));
        let d = TokenBucketDebt::with_burst(3, 2).unwrap();
        assert_eq!((d.burst(), d.max_debt(), Strategy::capacity(&d, RATE)), (Some(3), 2, 5));
        assert_eq!(Strategy::capacity(&d, Rate::per_second(0)), 0);
    }
}
