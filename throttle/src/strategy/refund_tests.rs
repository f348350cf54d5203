//! Refunds never give back more than the hit still holds: after a refund, every hit
//! the key would admit, it would also admit had the refunded hit never been made.

use super::{AnyState, DynStrategy, StrategyKind};
use crate::Rate;
use proptest::prelude::*;
use std::sync::Arc;

/// Every built-in strategy gives something back.
fn refunding() -> Vec<Arc<dyn DynStrategy>> {
    StrategyKind::ALL.iter().map(|kind| kind.build_with(&[]).expect("defaults build")).collect()
}

/// Applies `hits` (time, cost) to a fresh state; the admitted ones, in order.
fn run(strategy: &dyn DynStrategy, rate: Rate, hits: &[(u64, u64)]) -> (AnyState, Vec<(u64, u64)>) {
    let mut state = strategy.new_state();
    let mut admitted = Vec::new();
    for &(t, cost) in hits {
        if strategy.decide_any(&mut state, t, rate, cost).0.allowed {
            admitted.push((t, cost));
        }
    }
    (state, admitted)
}

/// Whether a hit of `cost` at `at` would be admitted (on a copy of the state).
fn admits(strategy: &dyn DynStrategy, state: &AnyState, at: u64, rate: Rate, cost: u64) -> bool {
    let fields = strategy.encode_any(state).expect("built-ins have a codec");
    let mut copy = strategy.decode_any(&fields).expect("own encoding decodes");
    strategy.decide_any(&mut copy, at, rate, cost).0.allowed
}

const START: u64 = 1_700_000_000_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_refund_never_gives_back_more_than_the_hit_holds(
        limit in 1u64..6,
        period in 1u64..3_000,
        hits in prop::collection::vec((0u64..1_500, 1u64..4), 1..16),
        pick in any::<prop::sample::Index>(),
        back_off in 0u64..800,
        delay in 0u64..4_000,
    ) {
        let rate = Rate::new(limit, std::time::Duration::from_millis(period)).expect("a valid rate");
        let mut t = START;
        let timed: Vec<(u64, u64)> = hits.iter().map(|&(gap, cost)| { t += gap; (t, cost.min(limit)) }).collect();
        for strategy in refunding() {
            let strategy = &*strategy;
            let (_, admitted) = run(strategy, rate, &timed);
            if admitted.is_empty() {
                continue;
            }
            let k = pick.index(admitted.len());
            let (t_k, cost_k) = admitted[k];
            let refund_at = t_k + delay;
            // Everything up to the refund, then the refund, with a `since` at or before the hit.
            let before: Vec<(u64, u64)> = timed.iter().copied().filter(|&(t, _)| t <= refund_at).collect();
            let (mut refunded, admitted_before) = run(strategy, rate, &before);
            strategy.refund_any(&mut refunded, refund_at, rate, cost_k, t_k.saturating_sub(back_off));
            // The same admitted hits but the refunded one: each is still admitted.
            let mut without_k = admitted_before.clone();
            let position = without_k.iter().position(|&hit| hit == (t_k, cost_k)).expect("the hit is before the refund");
            without_k.remove(position);
            let (replayed, readmitted) = run(strategy, rate, &without_k);
            prop_assert_eq!(&readmitted, &without_k, "{}: fewer hits are never refused", strategy.name());
            for at in [refund_at, refund_at + 1, refund_at + period / 2, refund_at + period, refund_at + 2 * period] {
                for cost in 1..=limit {
                    if admits(strategy, &refunded, at, rate, cost) {
                        prop_assert!(
                            admits(strategy, &replayed, at, rate, cost),
                            "{}: after the refund a hit of {cost} at +{} ms is admitted, as if more than the hit was given back",
                            strategy.name(),
                            at - refund_at
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_refund_at_once_restores_the_quota_exactly(
        limit in 1u64..6,
        period in 1u64..3_000,
        hits in prop::collection::vec((0u64..1_500, 1u64..4), 0..12),
        last_cost in 1u64..4,
    ) {
        let rate = Rate::new(limit, std::time::Duration::from_millis(period)).expect("a valid rate");
        let mut t = START;
        let timed: Vec<(u64, u64)> = hits.iter().map(|&(gap, cost)| { t += gap; (t, cost.min(limit)) }).collect();
        let now = t + 1;
        for strategy in refunding() {
            let strategy = &*strategy;
            let (mut state, _) = run(strategy, rate, &timed);
            let (untouched, _) = run(strategy, rate, &timed);
            let cost = last_cost.min(limit);
            if !strategy.decide_any(&mut state, now, rate, cost).0.allowed {
                continue;
            }
            prop_assert!(strategy.refund_any(&mut state, now, rate, cost, now).is_some(), "{}", strategy.name());
            for at in [now, now + 1, now + period / 2, now + period, now + 2 * period] {
                for cost in 1..=limit {
                    prop_assert_eq!(
                        admits(strategy, &state, at, rate, cost),
                        admits(strategy, &untouched, at, rate, cost),
                        "{}: a hit of {} at +{} ms", strategy.name(), cost, at - now
                    );
                }
            }
        }
    }
}

#[test]
fn a_fixed_window_refunds_only_in_the_window_the_hit_was_counted_in() {
    let strategy = StrategyKind::FixedWindow.build_with(&[]).unwrap();
    let rate = Rate::per_minute(2);
    let window = START - START % 60_000;
    let mut state = strategy.new_state();
    assert!(strategy.decide_any(&mut state, window + 59_999, rate, 2).0.allowed);
    assert!(strategy.refund_any(&mut state, window + 60_000, rate, 1, window + 59_999).is_none(), "the window ended");
    assert!(strategy.refund_any(&mut state, window + 59_999, rate, 1, window - 1).is_none(), "maybe another window");
    assert!(strategy.refund_any(&mut state, window + 59_999, rate, 1, window + 59_000).is_some());
    assert!(strategy.decide_any(&mut state, window + 59_999, rate, 1).0.allowed);
    assert!(!strategy.decide_any(&mut state, window + 59_999, rate, 1).0.allowed);
}

#[test]
fn degenerate_rates_and_fresh_states_give_nothing_back() {
    for strategy in refunding() {
        let mut state = strategy.new_state();
        assert!(strategy.refund_any(&mut state, START, Rate::UNLIMITED, 1, START).is_none());
        assert!(
            strategy.refund_any(&mut state, START, Rate::per_second(5), 1, START).is_none(),
            "nothing to give back"
        );
    }
}
