//! Sliding window log: every admitted hit is logged for one period.

use super::codec::tags;
use super::math::{field, sat, to_field};
use super::{Decision, Metadata, Snapshot, Strategy, degenerate, degenerate_stat, never};
use crate::Rate;
use std::collections::VecDeque;

/// Logs each admitted hit's time and cost; a hit is admitted while the cost logged
/// in the last period (`(now − period, now]`) plus its own stays within the limit.
/// Exact, with no boundary burst, and the wait is the exact time until enough logged
/// cost has aged out.
///
/// Memory is one `(ms, cost)` entry per millisecond in which hits were admitted
/// (hits in the same millisecond share an entry), so at most `limit` entries per
/// key: prefer [`SlidingWindowCounter`](super::SlidingWindowCounter) or a bucket for
/// large limits.
///
/// State per key, worst case: in memory 40 bytes plus 16 per entry (the deque may
/// keep as much again in spare capacity); on Redis a string of 7 integers (at most
/// 119 bytes) plus a list of the entries beside it, about 13 bytes each. The running
/// total kept beside the entries makes a decision cheap on both: in memory,
/// admission is O(1) amortised (each entry is dropped once) and a rejection walks
/// only entries that have aged out since the last admission or that its wait needs;
/// on Redis a rejection of cost 1 on a full log reads the 7 integers alone, any other
/// call reads O(log d) entries near the old end of the list (d: how far in the
/// answer lies), and admissions trim what has aged out.
///
/// ```
/// use throttle::{Rate, backend::{ManualClock, MemoryBackend}};
/// use throttle::strategy::SlidingWindowLog;
///
/// let clock = ManualClock::new(0);
/// let backend = MemoryBackend::builder().clock(clock.clone()).build()?;
/// let rate = Rate::per_second(3);
/// for t in [0, 400, 800] {
///     clock.set(t);
///     assert!(backend.hit_now("k", &SlidingWindowLog, rate, 1).allowed);
/// }
/// // A hit of 2 fits once the hits at 0 and 400 ms have aged out, at 1 400 ms.
/// assert_eq!(backend.hit_now("k", &SlidingWindowLog, rate, 2).wait_ms, 600);
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlidingWindowLog;

/// [`SlidingWindowLog`]'s per-key state: the log and its total. The default is an
/// empty log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlidingWindowLogState {
    entries: VecDeque<(u64, u64)>,
    /// The cost of every entry, so admission never walks the log.
    total: u64,
}

impl SlidingWindowLogState {
    /// `(ms since the epoch, cost)` of admitted hits, oldest first; entries that
    /// have aged out may linger until the next admission.
    pub fn entries(&self) -> &VecDeque<(u64, u64)> {
        &self.entries
    }

    /// Entries that have aged out at `now_eff`, and their cost.
    fn expired(&self, now_eff: u64, rate: Rate) -> (usize, u64) {
        let period = rate.period_ms();
        let mut cost = 0u64;
        let count = self
            .entries
            .iter()
            .take_while(|&&(t, c)| {
                let gone = t.saturating_add(period) <= now_eff;
                if gone {
                    cost = cost.saturating_add(c);
                }
                gone
            })
            .count();
        (count, cost)
    }

    /// `max(now, newest entry)`: a clock behind the log reads it as of its newest entry.
    fn now_eff(&self, now_ms: u64) -> u64 {
        self.entries.back().map_or(now_ms, |&(t, _)| now_ms.max(t))
    }

    /// Entries still in the window at `now_eff`: those after `now_eff − period`.
    fn live(&self, now_eff: u64, rate: Rate) -> impl Iterator<Item = &(u64, u64)> {
        self.entries.iter().skip(self.expired(now_eff, rate).0)
    }

    /// Cost logged in the window at `now_eff`.
    fn sum(&self, now_eff: u64, rate: Rate) -> u128 {
        u128::from(self.total.saturating_sub(self.expired(now_eff, rate).1))
    }

    /// Exact wait (from `now_ms`) until `cost` fits, absent other hits; 0 if it fits now.
    /// `cost` must be at most the limit.
    fn wait_for(&self, now_ms: u64, cost: u64, rate: Rate) -> u64 {
        let now_eff = self.now_eff(now_ms);
        let limit = u128::from(rate.limit());
        let mut logged = self.sum(now_eff, rate);
        if logged + u128::from(cost) <= limit {
            return 0;
        }
        for &(t, c) in self.live(now_eff, rate) {
            logged -= u128::from(c);
            if logged + u128::from(cost) <= limit {
                return t.saturating_add(rate.period_ms()) - now_ms;
            }
        }
        // Unreachable for cost ≤ limit: once every entry has aged out, it fits.
        self.reset_ms(now_ms, rate)
    }

    /// Time until the newest entry has aged out.
    fn reset_ms(&self, now_ms: u64, rate: Rate) -> u64 {
        self.entries.back().map_or(0, |&(t, _)| t.saturating_add(rate.period_ms()).saturating_sub(now_ms))
    }

    fn remaining(&self, now_eff: u64, rate: Rate) -> u64 {
        sat(u128::from(rate.limit()).saturating_sub(self.sum(now_eff, rate)))
    }
}

impl Strategy for SlidingWindowLog {
    type State = SlidingWindowLogState;

    fn name(&self) -> &'static str {
        "sliding_window_log"
    }

    fn decide(&self, state: &mut SlidingWindowLogState, now_ms: u64, rate: Rate, cost: u64) -> Decision {
        if let Some(decision) = degenerate(rate) {
            return decision;
        }
        let now_eff = state.now_eff(now_ms);
        if cost > rate.limit() {
            return never(state.remaining(now_eff, rate), state.reset_ms(now_ms, rate));
        }
        let wait_ms = state.wait_for(now_ms, cost, rate);
        if wait_ms > 0 {
            return Decision {
                allowed: false,
                remaining: state.remaining(now_eff, rate),
                wait_ms,
                reset_ms: state.reset_ms(now_ms, rate),
            };
        }
        let (expired, expired_cost) = state.expired(now_eff, rate);
        state.entries.drain(..expired);
        state.total = state.total.saturating_sub(expired_cost).saturating_add(cost);
        match state.entries.back_mut() {
            Some((t, c)) if *t == now_eff => *c += cost,
            _ => state.entries.push_back((now_eff, cost)),
        }
        Decision {
            allowed: true,
            remaining: state.remaining(now_eff, rate),
            wait_ms: 0,
            reset_ms: state.reset_ms(now_ms, rate),
        }
    }

    fn stat(&self, state: &SlidingWindowLogState, now_ms: u64, rate: Rate) -> Snapshot {
        if let Some(snapshot) = degenerate_stat(rate) {
            return snapshot;
        }
        let now_eff = state.now_eff(now_ms);
        let live: Vec<_> = state.live(now_eff, rate).collect();
        Snapshot {
            remaining: state.remaining(now_eff, rate),
            wait_ms: state.wait_for(now_ms, 1, rate),
            reset_ms: state.reset_ms(now_ms, rate),
            metadata: Metadata::SlidingWindowLog {
                window_start_ms: now_eff.saturating_sub(rate.period_ms()),
                entry_count: live.len() as u64,
                current_count: sat(state.sum(now_eff, rate)),
                oldest_entry_ms: live.first().map_or(0, |&&(t, _)| t),
            },
        }
    }

    /// The cost, from the entries logged at or after `since_ms`, earliest first (the
    /// hit's own entry is among them; taking from an earlier one instead keeps cost
    /// logged longer, which errs toward counting). Nothing once a whole period has
    /// passed since `since_ms`: the hit may have aged out.
    fn refund(&self, state: &mut SlidingWindowLogState, now_ms: u64, rate: Rate, cost: u64, since_ms: u64) -> bool {
        if degenerate(rate).is_some() || now_ms.saturating_sub(since_ms) >= rate.period_ms() {
            return false;
        }
        let first = state.entries.partition_point(|&(t, _)| t < since_ms);
        let mut left = cost;
        for (_, c) in state.entries.range_mut(first..) {
            let take = left.min(*c);
            *c -= take;
            left -= take;
            if left == 0 {
                break;
            }
        }
        let given = cost - left;
        if given == 0 {
            return false;
        }
        state.entries.retain(|&(_, c)| c > 0);
        state.total = state.total.saturating_sub(given);
        true
    }

    fn expires_at(&self, state: &SlidingWindowLogState, rate: Rate) -> u64 {
        state.entries.back().map_or(0, |&(t, _)| t.saturating_add(rate.period_ms()))
    }

    /// `[3, ms₁, cost₁, ms₂, cost₂, …]`, oldest first.
    fn encode(&self, state: &SlidingWindowLogState) -> Option<Vec<i64>> {
        let mut fields = Vec::with_capacity(1 + 2 * state.entries.len());
        fields.push(tags::SLIDING_WINDOW_LOG);
        for &(t, c) in &state.entries {
            fields.extend([to_field(t), to_field(c)]);
        }
        Some(fields)
    }

    /// Refuses entries out of time order, as no valid log has them.
    fn decode(&self, fields: &[i64]) -> Option<SlidingWindowLogState> {
        let (&tag, pairs) = fields.split_first()?;
        if tag != tags::SLIDING_WINDOW_LOG || pairs.len() % 2 != 0 {
            return None;
        }
        let entries = (0..pairs.len() / 2)
            .map(|i| Some((field(pairs, 2 * i)?, field(pairs, 2 * i + 1)?)))
            .collect::<Option<VecDeque<_>>>()?;
        let ordered = entries.iter().zip(entries.iter().skip(1)).all(|(a, b)| a.0 < b.0);
        let total = entries.iter().try_fold(0u64, |sum, &(_, c)| sum.checked_add(c))?;
        ordered.then_some(SlidingWindowLogState { entries, total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate::per_second(5);

    #[test]
    fn the_window_slides_with_each_entry() {
        let mut state = SlidingWindowLogState::default();
        for (t, cost) in [(100, 2), (300, 1), (300, 1), (700, 1)] {
            assert!(SlidingWindowLog.decide(&mut state, t, RATE, cost).allowed);
        }
        assert_eq!(state.entries, [(100, 2), (300, 2), (700, 1)], "same-ms hits share an entry");
        let d = SlidingWindowLog.decide(&mut state, 800, RATE, 3);
        // 2 + 2 + 1 logged: cost 3 fits once the entries at 100 and 300 age out (at 1 300).
        assert_eq!((d.allowed, d.remaining, d.wait_ms, d.reset_ms), (false, 0, 500, 900));
        assert!(!SlidingWindowLog.decide(&mut state, 1_299, RATE, 3).allowed);
        assert!(SlidingWindowLog.decide(&mut state, 1_300, RATE, 3).allowed);
        assert_eq!(state.entries, [(700, 1), (1_300, 3)]);
        let stat = SlidingWindowLog.stat(&state, 1_650, RATE);
        assert_eq!(
            stat.metadata,
            Metadata::SlidingWindowLog { window_start_ms: 650, entry_count: 2, current_count: 4, oldest_entry_ms: 700 }
        );
        assert_eq!((stat.remaining, stat.wait_ms, stat.reset_ms), (1, 0, 650));
    }

    #[test]
    fn sub_second_windows() {
        let rate = Rate::per_millis(3, 50);
        let mut state = SlidingWindowLogState::default();
        for window in 0..5u64 {
            let t = 1_000 + window * 50;
            for _ in 0..3 {
                assert!(SlidingWindowLog.decide(&mut state, t, rate, 1).allowed);
            }
            assert_eq!(SlidingWindowLog.decide(&mut state, t, rate, 1).wait_ms, 50);
        }
    }

    #[test]
    fn decode_refuses_malformed_logs() {
        let state = SlidingWindowLogState { entries: [(1, 2), (3, 4)].into(), total: 6 };
        assert_eq!(SlidingWindowLog.decode(&SlidingWindowLog.encode(&state).unwrap()), Some(state));
        for bad in [&[][..], &[3, 1], &[3, 5, 1, 4, 1], &[3, -1, 1], &[4, 1, 1]] {
            assert_eq!(SlidingWindowLog.decode(bad), None, "{bad:?}");
        }
        assert_eq!(SlidingWindowLog.decode(&[3]), Some(SlidingWindowLogState::default()));
    }
}
