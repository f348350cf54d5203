//! Fixed window: a counter per epoch-aligned window.

use super::codec::tags;
use super::math::{decode_pair, encode_pair};
use super::{Decision, Metadata, Snapshot, Strategy, degenerate, degenerate_stat, never};
use crate::Rate;

/// Counts cost per window of `rate.period()`, windows aligned to the Unix epoch
/// (a "100/min" window always starts on a whole minute), so every process and
/// backend agrees on the boundaries. The default strategy.
///
/// A rejected client is told to wait until the window ends; the counter belongs to
/// that window only, so a retry at exactly that moment is admitted.
///
/// State per key: 16 bytes in memory; on Redis one string of 3 integers (at most
/// 35 bytes). Every decision is O(1) on both.
#[derive(Debug, Clone, Copy, Default)]
pub struct FixedWindow;

/// [`FixedWindow`]'s per-key state: 16 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedWindowState {
    /// Start of the window `count` belongs to.
    pub window_start_ms: u64,
    /// Cost consumed in that window.
    pub count: u64,
}

impl FixedWindow {
    fn window_start(now_ms: u64, rate: Rate) -> u64 {
        now_ms - now_ms % rate.period_ms()
    }

    fn count_in(state: &FixedWindowState, window_start: u64) -> u64 {
        if state.window_start_ms == window_start { state.count } else { 0 }
    }
}

impl Strategy for FixedWindow {
    type State = FixedWindowState;

    fn name(&self) -> &'static str {
        "fixed_window"
    }

    fn decide(&self, state: &mut FixedWindowState, now_ms: u64, rate: Rate, cost: u64) -> Decision {
        if let Some(decision) = degenerate(rate) {
            return decision;
        }
        let start = Self::window_start(now_ms, rate);
        let reset_ms = start + rate.period_ms() - now_ms;
        let count = Self::count_in(state, start);
        if cost > rate.limit() {
            return never(rate.limit().saturating_sub(count), reset_ms);
        }
        if count.saturating_add(cost) > rate.limit() {
            let remaining = rate.limit().saturating_sub(count);
            return Decision { allowed: false, remaining, wait_ms: reset_ms, reset_ms };
        }
        *state = FixedWindowState { window_start_ms: start, count: count + cost };
        Decision { allowed: true, remaining: rate.limit() - count - cost, wait_ms: 0, reset_ms }
    }

    fn stat(&self, state: &FixedWindowState, now_ms: u64, rate: Rate) -> Snapshot {
        if let Some(snapshot) = degenerate_stat(rate) {
            return snapshot;
        }
        let start = Self::window_start(now_ms, rate);
        let end = start + rate.period_ms();
        let count = Self::count_in(state, start).min(rate.limit());
        let remaining = rate.limit() - count;
        Snapshot {
            remaining,
            wait_ms: if remaining == 0 { end - now_ms } else { 0 },
            reset_ms: end - now_ms,
            metadata: Metadata::FixedWindow { window_start_ms: start, window_end_ms: end, current_count: count },
        }
    }

    /// The cost, from the window the hit was counted in, when `since_ms` and `now_ms`
    /// both fall in it (so the hit did too); nothing otherwise: a hit of an ended
    /// window no longer counts.
    fn refund(&self, state: &mut FixedWindowState, now_ms: u64, rate: Rate, cost: u64, since_ms: u64) -> bool {
        if degenerate(rate).is_some() {
            return false;
        }
        let start = Self::window_start(now_ms, rate);
        if Self::window_start(since_ms, rate) != start || state.window_start_ms != start || state.count == 0 {
            return false;
        }
        state.count -= cost.min(state.count);
        true
    }

    fn expires_at(&self, state: &FixedWindowState, rate: Rate) -> u64 {
        state.window_start_ms.saturating_add(rate.period_ms())
    }

    /// `[1, window_start_ms, count]`.
    fn encode(&self, state: &FixedWindowState) -> Option<Vec<i64>> {
        encode_pair(tags::FIXED_WINDOW, state.window_start_ms, state.count)
    }

    fn decode(&self, fields: &[i64]) -> Option<FixedWindowState> {
        decode_pair(tags::FIXED_WINDOW, fields)
            .map(|(window_start_ms, count)| FixedWindowState { window_start_ms, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate::per_second(5);

    #[test]
    fn admits_the_limit_then_rejects_without_consuming() {
        let mut state = FixedWindowState::default();
        for expected_remaining in (0..5).rev() {
            let d = FixedWindow.decide(&mut state, 10_200, RATE, 1);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
        }
        let before = state;
        let d = FixedWindow.decide(&mut state, 10_200, RATE, 1);
        assert_eq!(d, Decision { allowed: false, remaining: 0, wait_ms: 800, reset_ms: 800 });
        assert_eq!(state, before, "a rejection must not consume quota");
    }

    #[test]
    fn retry_after_the_reported_wait_is_admitted() {
        let mut state = FixedWindowState::default();
        assert!(FixedWindow.decide(&mut state, 10_999, Rate::per_second(1), 1).allowed);
        let d = FixedWindow.decide(&mut state, 10_999, Rate::per_second(1), 1);
        assert_eq!(d.wait_ms, 1);
        assert!(FixedWindow.decide(&mut state, 10_999 + d.wait_ms, Rate::per_second(1), 1).allowed);
    }

    #[test]
    fn costs_add_up_exactly() {
        let mut state = FixedWindowState::default();
        let rate = Rate::per_second(10);
        for cost in [3, 3, 4] {
            assert!(FixedWindow.decide(&mut state, 0, rate, cost).allowed);
        }
        assert!(!FixedWindow.decide(&mut state, 0, rate, 1).allowed);
        let stat = FixedWindow.stat(&state, 0, rate);
        assert_eq!((stat.remaining, stat.wait_ms), (0, 1_000));
    }

    #[test]
    fn degenerate_rates_and_oversized_costs_never_panic() {
        let mut state = FixedWindowState::default();
        assert!(FixedWindow.decide(&mut state, 5, Rate::UNLIMITED, 1).allowed);
        let closed = FixedWindow.decide(&mut state, 5, Rate::per_second(0), 1);
        assert_eq!((closed.allowed, closed.wait_ms), (false, 1_000));
        let huge = FixedWindow.decide(&mut state, 5, RATE, 6);
        assert_eq!((huge.allowed, huge.wait_ms, huge.remaining), (false, crate::strategy::NEVER, 5));
        assert_eq!(state, FixedWindowState::default());
        assert_eq!(FixedWindow.stat(&state, 5, Rate::UNLIMITED).remaining, u64::MAX);
    }

    #[test]
    fn codec_round_trips_and_refuses_other_layouts() {
        let state = FixedWindowState { window_start_ms: 60_000, count: 7 };
        assert_eq!(FixedWindow.decode(&FixedWindow.encode(&state).unwrap()), Some(state));
        for bad in [&[][..], &[1, 2], &[2, 60_000, 7], &[1, -1, 7], &[1, 60_000, 7, 0]] {
            assert_eq!(FixedWindow.decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sub_second_windows_roll_over() {
        let rate = Rate::per_millis(3, 50);
        let mut state = FixedWindowState::default();
        for window in 0..5u64 {
            let t = window * 50 + 7;
            for _ in 0..3 {
                assert!(FixedWindow.decide(&mut state, t, rate, 1).allowed);
            }
            let d = FixedWindow.decide(&mut state, t, rate, 1);
            assert_eq!((d.allowed, d.wait_ms), (false, 43));
        }
    }
}
