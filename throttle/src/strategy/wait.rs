//! How long until a hit of any cost fits, from what a stat reads.
//!
//! A [`Snapshot`] carries the wait of a hit of cost 1. For a cost `c` the built-in
//! strategies answer exactly:
//!
//! - the meters (token buckets, leaky buckets, GCRA) from their exact level
//!   (`level_units` in the metadata): `c` fits once the level is at most
//!   `capacity × period − c × period`, and it drains `limit` units per millisecond;
//! - the fixed window: `c` fits now, or when the window ends;
//! - the sliding windows count cost against the limit, so `c` fits exactly when a
//!   cost of 1 would under a limit `c − 1` lower: their answer is the wait of a stat
//!   at that rate, on the same state (one more read).
//!
//! A strategy of your own answers 0 when `c` is at most what remains, its own wait for
//! a cost of 1, and otherwise the time until its quota is whole again (an upper bound).

use super::math::{ceil_div, sat};
use super::{
    DynStrategy, FixedWindow, Gcra, LeakyBucket, LeakyBucketQueue, Metadata, SlidingWindowCounter, SlidingWindowLog,
    StrategyStat, TokenBucket, TokenBucketDebt,
};
use crate::Rate;

/// How long until a hit of some cost fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CostWait {
    /// Known from the stat: this many milliseconds (0: it fits now).
    Known(u64),
    /// The wait of a cost-1 stat at this rate, on the same state.
    StatAt(Rate),
}

/// How long until a hit of `cost` fits, for a stat made with `strategy` at
/// `stat.rate`. `cost` must be at least 1 and at most the strategy's capacity, and
/// the rate limited.
pub(crate) fn wait_for(strategy: &dyn DynStrategy, stat: &StrategyStat, cost: u64) -> CostWait {
    let rate = stat.rate;
    if let Some(level) = meter_level(strategy, &stat.metadata) {
        return CostWait::Known(meter_wait(level, strategy.capacity(rate), stat.reset_ms, rate, cost));
    }
    if cost <= stat.hits_remaining {
        return CostWait::Known(0);
    }
    let any = strategy.as_any();
    if any.is::<FixedWindow>() {
        // Over what remains: not before the window ends, and then the whole limit.
        return CostWait::Known(stat.reset_ms);
    }
    if any.is::<SlidingWindowCounter>() || any.is::<SlidingWindowLog>() {
        let limit = rate.limit().saturating_sub(cost - 1).max(1);
        return CostWait::StatAt(Rate::__from_parts(limit, rate.period_ms()));
    }
    CostWait::Known(if cost == 1 { stat.wait_ms } else { stat.wait_ms.max(stat.reset_ms) })
}

/// Whether a hit of `cost` fits now: exact for every built-in strategy.
pub(crate) fn fits_now(strategy: &dyn DynStrategy, stat: &StrategyStat, cost: u64) -> bool {
    match meter_level(strategy, &stat.metadata) {
        Some(level) => meter_wait(level, strategy.capacity(stat.rate), stat.reset_ms, stat.rate, cost) == 0,
        None => cost <= stat.hits_remaining,
    }
}

/// The exact level of a built-in meter, from its metadata.
fn meter_level(strategy: &dyn DynStrategy, metadata: &Metadata) -> Option<u64> {
    let any = strategy.as_any();
    match *metadata {
        Metadata::TokenBucket { level_units, .. } if any.is::<TokenBucket>() => Some(level_units),
        Metadata::TokenBucketDebt { level_units, .. } if any.is::<TokenBucketDebt>() => Some(level_units),
        Metadata::LeakyBucket { level_units, .. } if any.is::<LeakyBucket>() => Some(level_units),
        Metadata::LeakyBucketQueue { level_units, .. } if any.is::<LeakyBucketQueue>() => Some(level_units),
        Metadata::Gcra { level_units, .. } if any.is::<Gcra>() => Some(level_units),
        _ => None,
    }
}

/// A meter at `level` admits `cost` once `level + cost × period ≤ capacity × period`.
/// The stat's `reset_ms` is `shift + ⌈level / limit⌉`, where `shift` is how far a
/// clock behind the state's is (the meters read the state as of its own time): waits
/// are measured from the caller's clock, so they carry it too.
fn meter_wait(level: u64, capacity: u64, reset_ms: u64, rate: Rate, cost: u64) -> u64 {
    let limit = u128::from(rate.limit());
    let period = u128::from(rate.period_ms());
    let level = u128::from(level);
    let after = level + u128::from(cost) * period;
    let admit = u128::from(capacity) * period;
    if after <= admit {
        return 0;
    }
    let shift = reset_ms.saturating_sub(sat(ceil_div(level, limit)));
    shift.saturating_add(sat(ceil_div(after - admit, limit)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{Decision, GcraState, LeakyBucketQueueState, Strategy, TokenBucketState};

    /// The stat of `strategy` on `state` at `now`, as a throttle sees it.
    fn stat_of<S: Strategy>(strategy: &S, state: &S::State, now: u64, rate: Rate) -> StrategyStat {
        StrategyStat::from_snapshot("t".into(), "k".into(), rate, strategy.name(), strategy.stat(state, now, rate))
    }

    /// The answer for `cost`, reading the state again at the reduced rate when asked.
    fn answer<S: Strategy>(strategy: &S, state: &S::State, now: u64, rate: Rate, cost: u64) -> u64 {
        match wait_for(strategy, &stat_of(strategy, state, now, rate), cost) {
            CostWait::Known(wait) => wait,
            CostWait::StatAt(reduced) => strategy.stat(state, now, reduced).wait_ms,
        }
    }

    /// What a rejected decision says, or 0 when the hit would be admitted.
    fn decided<S: Strategy>(strategy: &S, state: &mut S::State, now: u64, rate: Rate, cost: u64) -> Decision {
        strategy.decide(state, now, rate, cost)
    }

    /// For every cost up to the capacity and many moments: the answer is the wait a
    /// rejected hit of that cost reports (0 when it would be admitted), and the hit is
    /// admitted exactly at that wait, not a millisecond before.
    fn answers_exactly<S: Strategy>(strategy: &S, rate: Rate, state: S::State)
    where
        S::State: Clone,
    {
        // From the last hit of `busy` on: a clock behind the state is tested below.
        for now in (1_400..1_400 + 3 * rate.period_ms()).step_by(37) {
            for cost in 1..=strategy.capacity(rate) {
                let wait = answer(strategy, &state, now, rate, cost);
                let decision = decided(strategy, &mut state.clone(), now, rate, cost);
                let expected = if decision.allowed { 0 } else { decision.wait_ms };
                assert_eq!(wait, expected, "{} cost {cost} at {now}", strategy.name());
                let stat = stat_of(strategy, &state, now, rate);
                assert_eq!(
                    fits_now(strategy, &stat, cost),
                    decision.allowed,
                    "{} fits {cost} at {now}",
                    strategy.name()
                );
                if wait > 0 {
                    let at = |t| decided(strategy, &mut state.clone(), t, rate, cost).allowed;
                    assert!(at(now + wait), "{} cost {cost} at {now} + {wait}", strategy.name());
                    assert!(!at(now + wait - 1), "{} cost {cost} at {now} + {wait} - 1", strategy.name());
                }
            }
        }
    }

    /// A key some hits have gone through.
    fn busy<S: Strategy>(strategy: &S, rate: Rate) -> S::State {
        let mut state = S::State::default();
        for (now, cost) in [(0, 3), (120, 2), (530, 1), (1_010, 4), (1_400, 2)] {
            let _ = strategy.decide(&mut state, now, rate, cost.min(strategy.capacity(rate)));
        }
        state
    }

    #[test]
    fn every_built_in_strategy_answers_exactly_for_every_cost() {
        let rate = Rate::per_second(7);
        fn check<S: Strategy>(strategy: S, rate: Rate)
        where
            S::State: Clone,
        {
            answers_exactly(&strategy, rate, busy(&strategy, rate));
            answers_exactly(&strategy, rate, S::State::default());
        }
        check(FixedWindow, rate);
        check(SlidingWindowCounter, rate);
        check(SlidingWindowLog, rate);
        check(TokenBucket::new(), rate);
        check(TokenBucket::with_burst(11).expect("a burst"), rate);
        check(TokenBucketDebt::with_burst(5, 3).expect("a burst and a debt"), rate);
        check(LeakyBucket, rate);
        check(LeakyBucketQueue, rate);
        check(Gcra::new(), rate);
        check(Gcra::with_burst(3).expect("a burst"), rate);
    }

    #[test]
    fn a_clock_behind_the_state_waits_from_the_callers_clock() {
        let rate = Rate::per_second(4);
        let mut state = TokenBucketState::default();
        assert!(TokenBucket::new().decide(&mut state, 5_000, rate, 4).allowed);
        // Read 300 ms before the state's own time: 300 ms more for every cost.
        assert_eq!(answer(&TokenBucket::new(), &state, 4_700, rate, 1), 550);
        assert_eq!(answer(&TokenBucket::new(), &state, 4_700, rate, 3), 1_050);
        assert_eq!(TokenBucket::new().decide(&mut state.clone(), 4_700, rate, 3).wait_ms, 1_050);
        let mut queue = LeakyBucketQueueState::default();
        assert!(LeakyBucketQueue.decide(&mut queue, 5_000, rate, 4).allowed);
        assert_eq!(answer(&LeakyBucketQueue, &queue, 4_700, rate, 2), 800);
        let mut gcra = GcraState::default();
        assert!(Gcra::new().decide(&mut gcra, 5_000, rate, 4).allowed);
        assert_eq!(answer(&Gcra::new(), &gcra, 5_000, rate, 2), 500);
    }
}
