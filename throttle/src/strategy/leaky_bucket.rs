//! Leaky bucket: a level that leaks at the rate and must stay within the limit.

use super::bucket;
use super::codec::tags;
use super::math::{ceil_div, decode_pair, encode_pair, sat};
use super::{Decision, Metadata, Snapshot, Strategy, degenerate, degenerate_stat};
use crate::Rate;

/// A bucket of size `limit` that leaks continuously at the rate ("10/s": one unit
/// every 100 ms). Each hit pours in its cost; a hit that would overflow is rejected
/// and told exactly when enough will have leaked.
///
/// As a meter this admits exactly what a [`TokenBucket`](super::TokenBucket) of the
/// same size admits (the level is the tokens missing); it reports the level instead
/// of tokens. Unlike the reference library, a first hit is checked like any other:
/// a cost above the limit is never admitted.
///
/// State per key: 16 bytes in memory; on Redis one string of 3 integers (at most
/// 35 bytes). Every decision is O(1) on both.
///
/// ```
/// use throttle::{Rate, backend::{ManualClock, MemoryBackend}};
/// use throttle::strategy::LeakyBucket;
///
/// let clock = ManualClock::new(0);
/// let backend = MemoryBackend::builder().clock(clock.clone()).build()?;
/// let rate = Rate::per_second(4); // leaks one unit per 250 ms
/// assert!(backend.hit_now("k", &LeakyBucket, rate, 4).allowed);
/// assert_eq!(backend.hit_now("k", &LeakyBucket, rate, 2).wait_ms, 500);
/// clock.set(500);
/// assert!(backend.hit_now("k", &LeakyBucket, rate, 2).allowed);
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeakyBucket;

/// [`LeakyBucket`]'s per-key state: 16 bytes. The default is an empty bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeakyBucketState {
    /// When `level` was last updated, ms since the epoch.
    pub last_ms: u64,
    /// Cost in the bucket at `last_ms`, times the period in ms (so a leak of `limit`
    /// per `period` is `limit` units per ms, with no fractions).
    pub level: u64,
}

fn admit_units(rate: Rate) -> u128 {
    u128::from(rate.limit()) * bucket::unit(rate)
}

impl Strategy for LeakyBucket {
    type State = LeakyBucketState;

    fn name(&self) -> &'static str {
        "leaky_bucket"
    }

    fn decide(&self, state: &mut LeakyBucketState, now_ms: u64, rate: Rate, cost: u64) -> Decision {
        if let Some(decision) = degenerate(rate) {
            return decision;
        }
        bucket::decide(&mut state.last_ms, &mut state.level, now_ms, rate, cost, admit_units(rate))
    }

    fn stat(&self, state: &LeakyBucketState, now_ms: u64, rate: Rate) -> Snapshot {
        if let Some(snapshot) = degenerate_stat(rate) {
            return snapshot;
        }
        let view = bucket::view(state.last_ms, state.level, now_ms, rate, admit_units(rate));
        Snapshot {
            remaining: view.remaining,
            wait_ms: view.wait_ms,
            reset_ms: view.reset_ms,
            metadata: Metadata::LeakyBucket {
                level: sat(ceil_div(view.reading.level, bucket::unit(rate))),
                capacity: rate.limit(),
                last_leak_ms: state.last_ms,
                level_units: sat(view.reading.level),
            },
        }
    }

    /// Gives back what the hit still holds: see [`Strategy::refund`].
    fn refund(&self, state: &mut Self::State, now_ms: u64, rate: Rate, cost: u64, since_ms: u64) -> bool {
        degenerate(rate).is_none() && bucket::refund(&mut state.last_ms, &mut state.level, now_ms, rate, cost, since_ms)
    }

    fn expires_at(&self, state: &LeakyBucketState, rate: Rate) -> u64 {
        bucket::empty_at(state.last_ms, state.level, rate)
    }

    /// `[6, last_ms, level]`.
    fn encode(&self, state: &LeakyBucketState) -> Option<Vec<i64>> {
        encode_pair(tags::LEAKY_BUCKET, state.last_ms, state.level)
    }

    fn decode(&self, fields: &[i64]) -> Option<LeakyBucketState> {
        decode_pair(tags::LEAKY_BUCKET, fields).map(|(last_ms, level)| LeakyBucketState { last_ms, level })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::NEVER;

    #[test]
    fn the_level_leaks_at_the_rate() {
        let rate = Rate::per_second(4);
        let mut state = LeakyBucketState::default();
        assert!(LeakyBucket.decide(&mut state, 10_000, rate, 3).allowed);
        let stat = LeakyBucket.stat(&state, 10_100, rate);
        // 100 ms leak 0.4: level 2.6 shows as 3; one more unit fits.
        assert_eq!(
            stat.metadata,
            Metadata::LeakyBucket { level: 3, capacity: 4, last_leak_ms: 10_000, level_units: 2_600 }
        );
        assert_eq!((stat.remaining, stat.wait_ms, stat.reset_ms), (1, 0, 650));
        assert!(LeakyBucket.decide(&mut state, 10_100, rate, 1).allowed);
        let before = state;
        let d = LeakyBucket.decide(&mut state, 10_100, rate, 2);
        assert_eq!((d.allowed, d.wait_ms), (false, 400));
        assert_eq!(state, before);
        assert!(LeakyBucket.decide(&mut state, 10_500, rate, 2).allowed);
    }

    #[test]
    fn a_first_hit_above_the_limit_is_never_admitted() {
        let mut state = LeakyBucketState::default();
        assert_eq!(LeakyBucket.decide(&mut state, 0, Rate::per_second(4), 5).wait_ms, NEVER);
        assert_eq!(state, LeakyBucketState::default());
    }

    #[test]
    fn codec_round_trips() {
        let state = LeakyBucketState { last_ms: 1, level: 2 };
        assert_eq!(LeakyBucket.decode(&LeakyBucket.encode(&state).unwrap()), Some(state));
        assert_eq!(LeakyBucket.decode(&[4, 1, 2]), None);
    }
}
