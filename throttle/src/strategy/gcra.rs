//! GCRA, the generic cell rate algorithm: one timestamp per key.

use super::InvalidStrategyParam;
use super::bucket;
use super::codec::tags;
use super::math::{ceil_div, decode_pair, div, encode_pair, rem, sat};
use super::token_bucket::{burst_or_limit, check_burst};
use super::{Decision, Metadata, Snapshot, Strategy, degenerate, degenerate_stat, never};
use crate::Rate;

/// The generic cell rate algorithm (as in `governor`): each key keeps a theoretical
/// arrival time (TAT), which every admitted hit pushes `cost × T` later, with the
/// emission interval `T = period / limit`. A hit is admitted while the TAT it would
/// leave is at most `burst × T` ahead of now.
///
/// The burst defaults to the limit, so "100/min" admits 100 at once, then one hit
/// per 600 ms; [`with_burst`](Self::with_burst) narrows it (a burst of 1 spaces every
/// hit `T` apart). Unlike the reference library, the burst is the limit by default,
/// waits are exact, and a fresh key reports its full quota.
///
/// State per key: 16 bytes in memory; on Redis one string of 3 integers (at most
/// 35 bytes). Every decision is O(1) on both.
///
/// ```
/// use throttle::{Rate, backend::{ManualClock, MemoryBackend}};
/// use throttle::strategy::Gcra;
///
/// let clock = ManualClock::new(0);
/// let backend = MemoryBackend::builder().clock(clock.clone()).build()?;
/// let rate = Rate::per_minute(100);
/// for _ in 0..100 {
///     assert!(backend.hit_now("k", &Gcra::new(), rate, 1).allowed);
/// }
/// assert_eq!(backend.hit_now("k", &Gcra::new(), rate, 1).wait_ms, 600);
/// clock.set(600);
/// assert!(backend.hit_now("k", &Gcra::new(), rate, 1).allowed);
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gcra {
    /// 0: the rate's limit.
    burst: u64,
}

/// [`Gcra`]'s per-key state: 16 bytes, the TAT as an exact fraction of a
/// millisecond. The default (a TAT at the epoch) is a key at rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcraState {
    /// Whole milliseconds of the TAT.
    pub tat_ms: u64,
    /// The TAT's fraction of a millisecond, in `1 / limit` ms (below the limit).
    pub tat_rem: u64,
}

impl Gcra {
    /// GCRA with a burst of the rate's limit.
    pub const fn new() -> Self {
        Gcra { burst: 0 }
    }

    /// GCRA admitting at most `burst` hits at once (at least 1, at most
    /// [`Rate::MAX`]).
    ///
    /// ```
    /// use throttle::{Rate, backend::MemoryBackend};
    /// use throttle::strategy::Gcra;
    ///
    /// let smooth = Gcra::with_burst(1)?;
    /// let backend = MemoryBackend::new();
    /// let rate = Rate::per_minute(5);
    /// assert!(backend.hit_now("k", &smooth, rate, 1).allowed);
    /// assert_eq!(backend.hit_now("k", &smooth, rate, 1).wait_ms, 12_000);
    /// # Ok::<(), throttle::strategy::InvalidStrategyParam>(())
    /// ```
    pub const fn with_burst(burst: u64) -> Result<Self, InvalidStrategyParam> {
        match check_burst(burst) {
            Ok(burst) => Ok(Gcra { burst }),
            Err(e) => Err(e),
        }
    }

    /// The burst set with [`with_burst`](Self::with_burst), if any.
    pub const fn burst(&self) -> Option<u64> {
        if self.burst == 0 { None } else { Some(self.burst) }
    }
}

/// Times in units of `1 / limit` ms, relative to `now`.
struct Tat {
    /// `max(TAT, now) - now`, in units: how far ahead of now the TAT is.
    ahead: u128,
}

impl Tat {
    fn read(state: &GcraState, now_ms: u64, limit: u128) -> Tat {
        let rem = u128::from(state.tat_rem).min(limit - 1);
        let ahead = if state.tat_ms < now_ms { 0 } else { u128::from(state.tat_ms - now_ms) * limit + rem };
        Tat { ahead }
    }
}

impl Strategy for Gcra {
    type State = GcraState;

    fn name(&self) -> &'static str {
        "gcra"
    }

    fn decide(&self, state: &mut GcraState, now_ms: u64, rate: Rate, cost: u64) -> Decision {
        if let Some(decision) = degenerate(rate) {
            return decision;
        }
        let limit = u128::from(rate.limit());
        let period = u128::from(rate.period_ms());
        let tolerance = u128::from(Strategy::capacity(self, rate)) * period; // burst × T, in units
        let remaining = |ahead: u128| bucket::remaining(ahead, tolerance, rate);
        let current = Tat::read(state, now_ms, limit).ahead;
        let increment = u128::from(cost) * period; // cost × T, in units
        if increment > tolerance {
            return never(remaining(current), sat(ceil_div(current, limit)));
        }
        let ahead = current + increment;
        if ahead > tolerance {
            return Decision {
                allowed: false,
                remaining: remaining(current),
                wait_ms: sat(ceil_div(ahead - tolerance, limit)),
                reset_ms: sat(ceil_div(current, limit)),
            };
        }
        *state = GcraState { tat_ms: now_ms.saturating_add(sat(div(ahead, limit))), tat_rem: sat(rem(ahead, limit)) };
        Decision { allowed: true, remaining: remaining(ahead), wait_ms: 0, reset_ms: sat(ceil_div(ahead, limit)) }
    }

    fn stat(&self, state: &GcraState, now_ms: u64, rate: Rate) -> Snapshot {
        if let Some(snapshot) = degenerate_stat(rate) {
            return snapshot;
        }
        let limit = u128::from(rate.limit());
        let period = u128::from(rate.period_ms());
        let burst = Strategy::capacity(self, rate);
        let tolerance = u128::from(burst) * period;
        let ahead = Tat::read(state, now_ms, limit).ahead;
        let next = ahead + period;
        let wait_ms = if next > tolerance { sat(ceil_div(next - tolerance, limit)) } else { 0 };
        Snapshot {
            remaining: bucket::remaining(ahead, tolerance, rate),
            wait_ms,
            reset_ms: sat(ceil_div(ahead, limit)),
            metadata: Metadata::Gcra {
                tat_ms: state.tat_ms + u64::from(state.tat_rem > 0),
                emission_interval_us: sat(period * 1_000 / limit),
                burst,
                level_units: sat(ahead),
            },
        }
    }

    /// The hit's `cost × T` less how far the TAT has caught up since `since_ms`, at
    /// most how far it runs ahead: what the hit still provably holds (see the bucket
    /// strategies, the same meter).
    fn refund(&self, state: &mut GcraState, now_ms: u64, rate: Rate, cost: u64, since_ms: u64) -> bool {
        if degenerate(rate).is_some() {
            return false;
        }
        let limit = u128::from(rate.limit());
        let ahead = Tat::read(state, now_ms, limit).ahead;
        let caught_up = u128::from(now_ms.saturating_sub(since_ms)) * limit;
        let give = (u128::from(cost) * u128::from(rate.period_ms())).saturating_sub(caught_up).min(ahead);
        if give == 0 {
            return false;
        }
        let ahead = ahead - give;
        *state = GcraState { tat_ms: now_ms.saturating_add(sat(div(ahead, limit))), tat_rem: sat(rem(ahead, limit)) };
        true
    }

    fn expires_at(&self, state: &GcraState, _rate: Rate) -> u64 {
        state.tat_ms.saturating_add(u64::from(state.tat_rem > 0))
    }

    /// The burst, or the limit.
    fn capacity(&self, rate: Rate) -> u64 {
        burst_or_limit(self.burst, rate)
    }

    /// `[8, tat_ms, tat_rem]`.
    fn encode(&self, state: &GcraState) -> Option<Vec<i64>> {
        encode_pair(tags::GCRA, state.tat_ms, state.tat_rem)
    }

    fn decode(&self, fields: &[i64]) -> Option<GcraState> {
        decode_pair(tags::GCRA, fields).map(|(tat_ms, tat_rem)| GcraState { tat_ms, tat_rem })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::NEVER;

    #[test]
    fn the_burst_defaults_to_the_limit_then_hits_are_spaced() {
        let rate = Rate::per_minute(100);
        let mut state = GcraState::default();
        let start = 1_700_000_000_000;
        for expected in (0..100).rev() {
            let d = Gcra::new().decide(&mut state, start, rate, 1);
            assert_eq!((d.allowed, d.remaining), (true, expected));
        }
        let before = state;
        let d = Gcra::new().decide(&mut state, start, rate, 1);
        assert_eq!(d, Decision { allowed: false, remaining: 0, wait_ms: 600, reset_ms: 60_000 });
        assert_eq!(state, before);
        for i in 1..=3 {
            assert!(!Gcra::new().decide(&mut state, start + 600 * i - 1, rate, 1).allowed);
            assert!(Gcra::new().decide(&mut state, start + 600 * i, rate, 1).allowed);
        }
    }

    #[test]
    fn a_fresh_key_reports_its_full_quota() {
        let stat = Gcra::new().stat(&GcraState::default(), 5_000, Rate::per_minute(5));
        assert_eq!((stat.remaining, stat.wait_ms, stat.reset_ms), (5, 0, 0));
        assert_eq!(
            stat.metadata,
            Metadata::Gcra { tat_ms: 0, emission_interval_us: 12_000_000, burst: 5, level_units: 0 }
        );
    }

    #[test]
    fn fractional_emission_intervals_are_exact() {
        // 3 per second: T = 333⅓ ms. After the burst, hits are due at 333⅓, 666⅔, 1000
        // and 1333⅓ ms: waits round up to the millisecond without drifting.
        let rate = Rate::per_second(3);
        let mut state = GcraState::default();
        let mut now = 10_000;
        assert!(Gcra::new().decide(&mut state, now, rate, 3).allowed);
        for expected_wait in [334, 333, 333, 334] {
            let d = Gcra::new().decide(&mut state, now, rate, 1);
            assert_eq!(d.wait_ms, expected_wait, "at {now}");
            now += d.wait_ms;
            assert!(Gcra::new().decide(&mut state, now, rate, 1).allowed);
        }
        assert_eq!(now, 11_334);
    }

    #[test]
    fn costs_space_hits_by_cost_times_the_interval() {
        let rate = Rate::per_second(10);
        let gcra = Gcra::with_burst(5).unwrap();
        let mut state = GcraState::default();
        assert!(gcra.decide(&mut state, 0, rate, 5).allowed);
        assert_eq!(gcra.decide(&mut state, 0, rate, 3).wait_ms, 300);
        assert_eq!(gcra.decide(&mut state, 0, rate, 6).wait_ms, NEVER);
        assert!(gcra.decide(&mut state, 300, rate, 3).allowed);
        let stat = gcra.stat(&state, 300, rate);
        assert_eq!((stat.remaining, stat.wait_ms, stat.reset_ms), (0, 100, 500));
    }

    #[test]
    fn an_out_of_range_fraction_is_harmless() {
        let mut state = GcraState { tat_ms: 100, tat_rem: u64::MAX };
        let d = Gcra::new().decide(&mut state, 100, Rate::per_second(10), 1);
        assert!(d.allowed);
        assert!(state.tat_rem < 10);
    }
}
