//! Sliding window counter: two epoch-aligned windows, the previous one weighted by
//! how much of it the sliding window still covers.

use super::codec::tags;
use super::math::{ceil_div, div, field, sat, to_field};
use super::{Decision, Metadata, Snapshot, Strategy, degenerate, degenerate_stat, never};
use crate::Rate;

/// Approximates a window sliding with time using two fixed windows: the count of the
/// current window plus the previous window's count weighted by the part of the
/// previous window the sliding window still overlaps (all of it at the start of the
/// current window, none at its end). A hit is admitted while
/// `previous × (period − elapsed) / period + current + cost ≤ limit`, computed
/// exactly in integers.
///
/// It smooths the burst at a fixed window's boundary in 24 bytes per key. Unlike the
/// reference library, rejected hits are not counted (so they do not weigh on the
/// next window) and the wait is the exact time until the hit fits, at most two
/// periods.
///
/// State per key: 24 bytes in memory; on Redis one string of 4 integers (at most
/// 52 bytes). Every decision is O(1) on both.
///
/// ```
/// use throttle::{Rate, backend::{ManualClock, MemoryBackend}};
/// use throttle::strategy::SlidingWindowCounter;
///
/// let clock = ManualClock::new(60_000); // the start of a minute
/// let backend = MemoryBackend::builder().clock(clock.clone()).build()?;
/// let rate = Rate::per_minute(10);
/// assert!(backend.hit_now("k", &SlidingWindowCounter, rate, 10).allowed);
/// // Next window: the previous 10 still weigh 10 × 3/4 at 15 s in, so 2 fit, not 3.
/// clock.set(135_000);
/// assert!(backend.hit_now("k", &SlidingWindowCounter, rate, 2).allowed);
/// // One more fits once the previous window weighs 7: 3 s later.
/// assert_eq!(backend.hit_now("k", &SlidingWindowCounter, rate, 1).wait_ms, 3_000);
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlidingWindowCounter;

/// [`SlidingWindowCounter`]'s per-key state: 24 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlidingWindowCounterState {
    /// Start of the window `current` belongs to (epoch-aligned).
    pub window_start_ms: u64,
    /// Cost admitted in that window.
    pub current: u64,
    /// Cost admitted in the window before it.
    pub previous: u64,
}

/// The two counts as seen from the window containing `now`.
struct Windows {
    start: u64,
    /// Milliseconds into the current window.
    elapsed: u64,
    previous: u64,
    current: u64,
}

impl Windows {
    fn at(state: &SlidingWindowCounterState, now_ms: u64, rate: Rate) -> Windows {
        let period = rate.period_ms();
        let start = now_ms - now_ms % period;
        let (previous, current) = if state.window_start_ms == start {
            (state.previous, state.current)
        } else if state.window_start_ms.checked_add(period) == Some(start) {
            (state.current, 0)
        } else if state.window_start_ms > start {
            // A clock behind the state: keep its counts rather than forget them.
            (state.previous, state.current)
        } else {
            (0, 0)
        };
        Windows { start, elapsed: now_ms - start, previous, current }
    }

    /// `previous × (period − elapsed) + current × period`: the weighted count times
    /// the period.
    fn weighted(&self, period: u128) -> u128 {
        u128::from(self.previous) * (period - u128::from(self.elapsed)) + u128::from(self.current) * period
    }

    /// Exact wait until `cost` fits, absent other hits; 0 if it fits now. `cost` must
    /// be at most the limit.
    fn wait_for(&self, cost: u64, rate: Rate) -> u64 {
        let period = u128::from(rate.period_ms());
        let limit = u128::from(rate.limit());
        let (previous, current, cost) = (u128::from(self.previous), u128::from(self.current), u128::from(cost));
        let left_in_window = period - u128::from(self.elapsed);
        if self.weighted(period) + cost * period <= limit * period {
            return 0;
        }
        if current + cost <= limit {
            // It fits once the previous window's weight has fallen far enough:
            // previous × (left_in_window − w) ≤ (limit − current − cost) × period.
            // (previous > 0 here, or it would have fitted.)
            let slack = (limit - current - cost) * period;
            return sat(left_in_window - div(slack, previous));
        }
        // Not before the next window, where the current count becomes the previous
        // one (current > 0 here, as cost ≤ limit): current × (period − e) ≤ (limit − cost) × period.
        let slack = (limit - cost) * period;
        sat(left_in_window + period - div(slack, current))
    }

    /// Time until the weighted count is 0.
    fn reset_ms(&self, period: u64) -> u64 {
        let left = period - self.elapsed;
        if self.current > 0 {
            left + period
        } else if self.previous > 0 {
            left
        } else {
            0
        }
    }

    fn remaining(&self, rate: Rate) -> u64 {
        let period = u128::from(rate.period_ms());
        let capacity = u128::from(rate.limit()) * period;
        sat(div(capacity.saturating_sub(self.weighted(period)), period))
    }
}

impl Strategy for SlidingWindowCounter {
    type State = SlidingWindowCounterState;

    fn name(&self) -> &'static str {
        "sliding_window_counter"
    }

    fn decide(&self, state: &mut SlidingWindowCounterState, now_ms: u64, rate: Rate, cost: u64) -> Decision {
        if let Some(decision) = degenerate(rate) {
            return decision;
        }
        let windows = Windows::at(state, now_ms, rate);
        if cost > rate.limit() {
            return never(windows.remaining(rate), windows.reset_ms(rate.period_ms()));
        }
        let wait_ms = windows.wait_for(cost, rate);
        if wait_ms > 0 {
            return Decision {
                allowed: false,
                remaining: windows.remaining(rate),
                wait_ms,
                reset_ms: windows.reset_ms(rate.period_ms()),
            };
        }
        let windows = Windows { current: windows.current + cost, ..windows };
        *state = SlidingWindowCounterState {
            window_start_ms: windows.start,
            current: windows.current,
            previous: windows.previous,
        };
        Decision {
            allowed: true,
            remaining: windows.remaining(rate),
            wait_ms: 0,
            reset_ms: windows.reset_ms(rate.period_ms()),
        }
    }

    fn stat(&self, state: &SlidingWindowCounterState, now_ms: u64, rate: Rate) -> Snapshot {
        if let Some(snapshot) = degenerate_stat(rate) {
            return snapshot;
        }
        let windows = Windows::at(state, now_ms, rate);
        let period = rate.period_ms();
        let left = period - windows.elapsed;
        Snapshot {
            remaining: windows.remaining(rate),
            wait_ms: windows.wait_for(1, rate),
            reset_ms: windows.reset_ms(period),
            metadata: Metadata::SlidingWindowCounter {
                window_start_ms: windows.start,
                window_end_ms: windows.start + period,
                current_count: windows.current,
                previous_count: windows.previous,
                previous_weight_permille: sat(u128::from(left) * 1_000 / u128::from(period)),
                weighted_count: sat(ceil_div(windows.weighted(u128::from(period)), u128::from(period))),
            },
        }
    }

    /// The cost, from the current window when `since_ms` falls in it (so the hit
    /// did), else from the previous one when `since_ms` falls there: the hit was
    /// counted in one of the two, and the previous window weighs less, so that errs
    /// toward counting.
    fn refund(&self, state: &mut SlidingWindowCounterState, now_ms: u64, rate: Rate, cost: u64, since_ms: u64) -> bool {
        if degenerate(rate).is_some() {
            return false;
        }
        let windows = Windows::at(state, now_ms, rate);
        if state.window_start_ms > windows.start {
            return false; // a clock behind the state: leave it alone
        }
        let period = rate.period_ms();
        let since_start = since_ms - since_ms % period;
        let Windows { start, mut previous, mut current, .. } = windows;
        let given = if since_start == start {
            let given = cost.min(current);
            current -= given;
            given
        } else if since_start.checked_add(period) == Some(start) {
            let given = cost.min(previous);
            previous -= given;
            given
        } else {
            0
        };
        if given == 0 {
            return false;
        }
        *state = SlidingWindowCounterState { window_start_ms: start, current, previous };
        true
    }

    fn expires_at(&self, state: &SlidingWindowCounterState, rate: Rate) -> u64 {
        state.window_start_ms.saturating_add(rate.period_ms().saturating_mul(2))
    }

    /// `[2, window_start_ms, current, previous]`.
    fn encode(&self, state: &SlidingWindowCounterState) -> Option<Vec<i64>> {
        Some(vec![
            tags::SLIDING_WINDOW_COUNTER,
            to_field(state.window_start_ms),
            to_field(state.current),
            to_field(state.previous),
        ])
    }

    fn decode(&self, fields: &[i64]) -> Option<SlidingWindowCounterState> {
        match fields {
            [tags::SLIDING_WINDOW_COUNTER, _, _, _] => Some(SlidingWindowCounterState {
                window_start_ms: field(fields, 1)?,
                current: field(fields, 2)?,
                previous: field(fields, 3)?,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::NEVER;

    const RATE: Rate = Rate::per_second(10);

    fn hit(state: &mut SlidingWindowCounterState, now: u64, cost: u64) -> Decision {
        SlidingWindowCounter.decide(state, now, RATE, cost)
    }

    #[test]
    fn the_previous_window_weighs_less_as_the_window_slides() {
        let mut state = SlidingWindowCounterState::default();
        assert!(hit(&mut state, 5_500, 10).allowed);
        assert_eq!(hit(&mut state, 5_500, 1).wait_ms, 500 + 100, "next window, once 1 of the 10 has slid out");
        // 6 200: the previous 10 weigh 8.
        assert!(hit(&mut state, 6_200, 2).allowed);
        let rejected = hit(&mut state, 6_200, 1);
        // 8 + 2 + 1 fits once the previous weight is below 7: 10 × (800 − w) ≤ 7 000.
        assert_eq!((rejected.allowed, rejected.remaining, rejected.wait_ms), (false, 0, 100));
        assert!(!hit(&mut state, 6_299, 1).allowed);
        assert!(hit(&mut state, 6_300, 1).allowed);
        let stat = SlidingWindowCounter.stat(&state, 6_300, RATE);
        assert_eq!(
            stat.metadata,
            Metadata::SlidingWindowCounter {
                window_start_ms: 6_000,
                window_end_ms: 7_000,
                current_count: 3,
                previous_count: 10,
                previous_weight_permille: 700,
                weighted_count: 10,
            }
        );
        assert_eq!(stat.reset_ms, 1_700);
    }

    #[test]
    fn rejected_hits_do_not_count_in_the_next_window() {
        let mut state = SlidingWindowCounterState::default();
        assert!(hit(&mut state, 0, 5).allowed);
        for _ in 0..20 {
            assert!(!hit(&mut state, 0, 6).allowed);
        }
        assert_eq!(state, SlidingWindowCounterState { window_start_ms: 0, current: 5, previous: 0 });
        let stat = SlidingWindowCounter.stat(&state, 1_000, RATE);
        assert_eq!(stat.remaining, 5);
    }

    #[test]
    fn a_full_current_window_waits_into_the_next_one() {
        let mut state = SlidingWindowCounterState::default();
        assert!(hit(&mut state, 1_250, 4).allowed);
        assert!(hit(&mut state, 1_900, 6).allowed);
        // Next window: 10 × (1 000 − e) ≤ (10 − 3) × 1 000 from e = 300, i.e. at 2 300.
        assert_eq!(hit(&mut state, 1_900, 3).wait_ms, 400);
        assert!(!hit(&mut state, 2_299, 3).allowed);
        assert!(hit(&mut state, 2_300, 3).allowed);
    }

    #[test]
    fn windows_older_than_one_period_are_forgotten() {
        let mut state = SlidingWindowCounterState::default();
        assert!(hit(&mut state, 0, 10).allowed);
        assert_eq!(SlidingWindowCounter.stat(&state, 2_000, RATE).remaining, 10);
        assert_eq!(SlidingWindowCounter.expires_at(&state, RATE), 2_000);
        assert!(hit(&mut state, 2_000, 10).allowed);
        assert_eq!(hit(&mut state, 0, 11).wait_ms, NEVER);
    }
}
