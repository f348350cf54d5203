//! Token bucket: a bucket of `burst` tokens refilled at the rate.

use super::InvalidStrategyParam;
use super::bucket;
use super::codec::tags;
use super::math::{decode_pair, encode_pair, sat};
use super::{Decision, Metadata, Snapshot, Strategy, degenerate, degenerate_stat};
use crate::Rate;

/// A bucket holding up to `burst` tokens (the rate's limit unless set), refilled
/// continuously at the rate ("10/s": one token per 100 ms). A hit takes `cost`
/// tokens, or is rejected and told exactly when enough will have refilled.
///
/// A fresh key starts full, so it admits `burst` at once, then the sustained rate.
/// `remaining` is the whole tokens in the bucket, capped at the limit when the burst
/// is larger (the metadata carries the true count).
///
/// State per key: 16 bytes in memory; on Redis one string of 3 integers (at most
/// 35 bytes). Every decision is O(1) on both.
///
/// ```
/// use throttle::{Rate, backend::{ManualClock, MemoryBackend}};
/// use throttle::strategy::TokenBucket;
///
/// const BUCKET: TokenBucket = match TokenBucket::with_burst(15) {
///     Ok(bucket) => bucket,
///     Err(_) => panic!("burst must be at least 1"),
/// };
/// let clock = ManualClock::new(0);
/// let backend = MemoryBackend::builder().clock(clock.clone()).build()?;
/// let rate = Rate::per_second(10);
/// assert!(backend.hit_now("k", &BUCKET, rate, 15).allowed); // the whole burst at once
/// let rejected = backend.hit_now("k", &BUCKET, rate, 2);
/// assert_eq!(rejected.wait_ms, 200); // two tokens refill in 200 ms
/// clock.set(200);
/// assert!(backend.hit_now("k", &BUCKET, rate, 2).allowed);
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenBucket {
    /// 0: the rate's limit.
    burst: u64,
}

/// The state of [`TokenBucket`] and [`TokenBucketDebt`](super::TokenBucketDebt):
/// 16 bytes. The default is a full bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenBucketState {
    /// When `missing` was last updated, ms since the epoch.
    pub last_ms: u64,
    /// Tokens missing from a full bucket at `last_ms`, times the period in ms (so a
    /// refill of `limit` per `period` is `limit` units per ms, with no fractions).
    pub missing: u64,
}

impl TokenBucket {
    /// A bucket the size of the rate's limit.
    pub const fn new() -> Self {
        TokenBucket { burst: 0 }
    }

    /// A bucket of `burst` tokens, whatever the rate: at least 1, at most
    /// [`Rate::MAX`].
    ///
    /// ```
    /// use throttle::strategy::{InvalidStrategyParam, TokenBucket};
    /// assert!(TokenBucket::with_burst(15).is_ok());
    /// assert_eq!(TokenBucket::with_burst(0), Err(InvalidStrategyParam::ZeroBurst));
    /// ```
    pub const fn with_burst(burst: u64) -> Result<Self, InvalidStrategyParam> {
        match check_burst(burst) {
            Ok(burst) => Ok(TokenBucket { burst }),
            Err(e) => Err(e),
        }
    }

    /// The burst set with [`with_burst`](Self::with_burst), if any.
    pub const fn burst(&self) -> Option<u64> {
        if self.burst == 0 { None } else { Some(self.burst) }
    }

    fn admit_units(&self, rate: Rate) -> u128 {
        u128::from(Strategy::capacity(self, rate)) * bucket::unit(rate)
    }
}

/// Checks a burst parameter: at least 1, at most [`Rate::MAX`].
pub(super) const fn check_burst(burst: u64) -> Result<u64, InvalidStrategyParam> {
    if burst == 0 {
        Err(InvalidStrategyParam::ZeroBurst)
    } else if burst > Rate::MAX {
        Err(InvalidStrategyParam::TooLarge { param: "burst", value: burst })
    } else {
        Ok(burst)
    }
}

/// The burst in use: the parameter, or the limit.
pub(super) fn burst_or_limit(burst: u64, rate: Rate) -> u64 {
    match (rate.limit(), burst) {
        (0, _) => 0,
        (limit, 0) => limit,
        (_, burst) => burst,
    }
}

impl Strategy for TokenBucket {
    type State = TokenBucketState;

    fn name(&self) -> &'static str {
        "token_bucket"
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
        let admit = self.admit_units(rate);
        let view = bucket::view(state.last_ms, state.missing, now_ms, rate, admit);
        let tokens = (admit - view.reading.level.min(admit)) / bucket::unit(rate);
        Snapshot {
            remaining: view.remaining,
            wait_ms: view.wait_ms,
            reset_ms: view.reset_ms,
            metadata: Metadata::TokenBucket {
                tokens: tokens as u64,
                capacity: Strategy::capacity(self, rate),
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

    /// The burst, or the limit.
    fn capacity(&self, rate: Rate) -> u64 {
        burst_or_limit(self.burst, rate)
    }

    /// `[4, last_ms, missing]`.
    fn encode(&self, state: &TokenBucketState) -> Option<Vec<i64>> {
        encode_pair(tags::TOKEN_BUCKET, state.last_ms, state.missing)
    }

    fn decode(&self, fields: &[i64]) -> Option<TokenBucketState> {
        decode_pair(tags::TOKEN_BUCKET, fields).map(|(last_ms, missing)| TokenBucketState { last_ms, missing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::NEVER;

    const RATE: Rate = Rate::per_second(10);

    #[test]
    fn a_fresh_bucket_is_full_then_refills_one_token_per_interval() {
        let mut state = TokenBucketState::default();
        for expected in (0..10).rev() {
            let d = TokenBucket::new().decide(&mut state, 1_000, RATE, 1);
            assert_eq!((d.allowed, d.remaining), (true, expected));
        }
        let before = state;
        let d = TokenBucket::new().decide(&mut state, 1_000, RATE, 1);
        assert_eq!(d, Decision { allowed: false, remaining: 0, wait_ms: 100, reset_ms: 1_000 });
        assert_eq!(state, before, "a rejection must not consume tokens");
        assert!(!TokenBucket::new().decide(&mut state, 1_099, RATE, 1).allowed);
        assert!(TokenBucket::new().decide(&mut state, 1_100, RATE, 1).allowed);
        let stat = TokenBucket::new().stat(&state, 1_650, RATE);
        assert_eq!((stat.remaining, stat.wait_ms, stat.reset_ms), (5, 0, 450));
    }

    #[test]
    fn fractional_refill_is_exact() {
        // 3 per second: one token every 333.33 ms; three tokens take exactly 1000 ms.
        let rate = Rate::per_second(3);
        let mut state = TokenBucketState::default();
        assert!(TokenBucket::new().decide(&mut state, 0, rate, 3).allowed);
        let d = TokenBucket::new().decide(&mut state, 0, rate, 1);
        assert_eq!(d.wait_ms, 334);
        assert!(!TokenBucket::new().decide(&mut state, 333, rate, 1).allowed);
        assert!(TokenBucket::new().decide(&mut state, 334, rate, 1).allowed);
        assert_eq!(TokenBucket::new().decide(&mut state, 334, rate, 2).wait_ms, 666);
        assert!(TokenBucket::new().decide(&mut state, 1_000, rate, 2).allowed);
    }

    #[test]
    fn burst_is_the_capacity_and_remaining_stays_within_the_limit() {
        let bucket = TokenBucket::with_burst(15).unwrap();
        assert_eq!(Strategy::capacity(&bucket, RATE), 15);
        let mut state = TokenBucketState::default();
        let d = bucket.decide(&mut state, 0, RATE, 1);
        assert_eq!(d.remaining, 10, "14 tokens, shown as at most the limit");
        let stat = bucket.stat(&state, 0, RATE);
        assert_eq!(
            stat.metadata,
            Metadata::TokenBucket { tokens: 14, capacity: 15, last_refill_ms: 0, level_units: 1_000 }
        );
        assert!(bucket.decide(&mut state, 0, RATE, 14).allowed);
        assert!(!bucket.decide(&mut state, 0, RATE, 1).allowed);
    }

    #[test]
    fn oversized_costs_and_bad_params_are_refused() {
        let mut state = TokenBucketState::default();
        assert_eq!(TokenBucket::new().decide(&mut state, 0, RATE, 11).wait_ms, NEVER);
        assert_eq!(state, TokenBucketState::default());
        assert_eq!(
            TokenBucket::with_burst(Rate::MAX + 1),
            Err(InvalidStrategyParam::TooLarge { param: "burst", value: Rate::MAX + 1 })
        );
    }

    #[test]
    fn a_clock_behind_the_state_reads_the_state_as_of_its_time() {
        let mut state = TokenBucketState::default();
        assert!(TokenBucket::new().decide(&mut state, 5_000, RATE, 10).allowed);
        let d = TokenBucket::new().decide(&mut state, 4_990, RATE, 1);
        assert_eq!(d.wait_ms, 110, "10 ms to catch up with the state, then 100 ms of refill");
        assert!(TokenBucket::new().decide(&mut state, 4_990 + d.wait_ms, RATE, 1).allowed);
    }

    #[test]
    fn codec_round_trips() {
        let state = TokenBucketState { last_ms: 123, missing: 4_000 };
        assert_eq!(TokenBucket::new().decode(&TokenBucket::new().encode(&state).unwrap()), Some(state));
        assert_eq!(TokenBucket::new().decode(&[5, 123, 4_000]), None);
        assert_eq!(TokenBucket::new().decode(&[4, 123]), None);
    }
}
