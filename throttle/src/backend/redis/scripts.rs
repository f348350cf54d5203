//! The Lua script of each built-in strategy, its parameters, and the generic state
//! script (reads and compare-and-set).

use crate::Rate;
use crate::strategy::{
    DynStrategy, FixedWindow, Gcra, LeakyBucket, LeakyBucketQueue, SlidingWindowCounter, SlidingWindowLog, TokenBucket,
    TokenBucketDebt,
};
use ::redis::Script;
use std::sync::LazyLock;

macro_rules! script {
    ($($file:literal),+) => {
        LazyLock::new(|| Script::new(concat!(include_str!("lua/prelude.lua"), $(include_str!($file)),+)))
    };
}

static FIXED_WINDOW: LazyLock<Script> = script!("lua/fixed_window.lua", "lua/main.lua");
static SLIDING_WINDOW_COUNTER: LazyLock<Script> = script!("lua/sliding_window_counter.lua", "lua/main.lua");
static SLIDING_WINDOW_LOG: LazyLock<Script> = script!("lua/entries.lua", "lua/sliding_window_log.lua", "lua/main.lua");
static TOKEN_BUCKET: LazyLock<Script> = script!("lua/bucket.lua", "lua/token_bucket.lua", "lua/main.lua");
static TOKEN_BUCKET_DEBT: LazyLock<Script> = script!("lua/bucket.lua", "lua/token_bucket_debt.lua", "lua/main.lua");
static LEAKY_BUCKET: LazyLock<Script> = script!("lua/bucket.lua", "lua/leaky_bucket.lua", "lua/main.lua");
static LEAKY_BUCKET_QUEUE: LazyLock<Script> =
    script!("lua/bucket.lua", "lua/entries.lua", "lua/leaky_bucket_queue.lua", "lua/main.lua");
static GCRA: LazyLock<Script> = script!("lua/bucket.lua", "lua/gcra.lua", "lua/main.lua");

/// The prelude, the shared helpers and `DECIDE[tag]`: every built-in strategy's
/// `decide`, by codec tag, for the scripts that decide several hits in one call.
macro_rules! decide_by_tag {
    ($($tail:expr),*) => {
        concat!(
            include_str!("lua/prelude.lua"),
            include_str!("lua/bucket.lua"),
            include_str!("lua/entries.lua"),
            "local DECIDE = {}\n",
            "DECIDE[1] = (function()\n",
            include_str!("lua/fixed_window.lua"),
            "\nreturn decide end)()\nDECIDE[2] = (function()\n",
            include_str!("lua/sliding_window_counter.lua"),
            "\nreturn decide end)()\nDECIDE[3] = (function()\n",
            include_str!("lua/sliding_window_log.lua"),
            "\nreturn decide end)()\nDECIDE[4] = (function()\n",
            include_str!("lua/token_bucket.lua"),
            "\nreturn decide end)()\nDECIDE[5] = (function()\n",
            include_str!("lua/token_bucket_debt.lua"),
            "\nreturn decide end)()\nDECIDE[6] = (function()\n",
            include_str!("lua/leaky_bucket.lua"),
            "\nreturn decide end)()\nDECIDE[7] = (function()\n",
            include_str!("lua/leaky_bucket_queue.lua"),
            "\nreturn decide end)()\nDECIDE[8] = (function()\n",
            include_str!("lua/gcra.lua"),
            "\nreturn decide end)()\n",
            $($tail),*
        )
    };
}

/// Every built-in strategy in one script, by codec tag: several hits decided as one
/// (stacked limits on one client's keys, which share a hash tag and so a slot).
pub(super) static MULTI: LazyLock<Script> =
    LazyLock::new(|| Script::new(decide_by_tag!(include_str!("lua/multi.lua"))));

/// Every built-in strategy in one script, by codec tag: independent decisions of
/// concurrent callers carried by one call and made in order (see [`batch`](super::batch)).
pub(super) static BATCH: LazyLock<Script> =
    LazyLock::new(|| Script::new(decide_by_tag!(include_str!("lua/batch.lua"))));

/// Stats of the strategies with an entries key (the sliding log and the queue), by
/// codec tag, computed in the script from a few entries.
pub(super) static ENTRIES_STAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/prelude.lua"),
        include_str!("lua/bucket.lua"),
        include_str!("lua/entries.lua"),
        "local STAT = {}\n",
        "STAT[3] = (function()\n",
        include_str!("lua/sliding_window_log.lua"),
        "\nreturn stat end)()\nSTAT[7] = (function()\n",
        include_str!("lua/leaky_bucket_queue.lua"),
        "\nreturn stat end)()\n",
        include_str!("lua/stat.lua"),
    ))
});

/// Refunds of the strategies with an entries key (the sliding log and the queue), by
/// codec tag, atomic with the entries they change.
pub(super) static ENTRIES_REFUND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/prelude.lua"),
        include_str!("lua/bucket.lua"),
        include_str!("lua/entries.lua"),
        "local REFUND = {}\n",
        "REFUND[3] = (function()\n",
        include_str!("lua/sliding_window_log.lua"),
        "\nreturn refund end)()\nREFUND[7] = (function()\n",
        include_str!("lua/leaky_bucket_queue.lua"),
        "\nreturn refund end)()\n",
        include_str!("lua/refund.lua"),
    ))
});

/// Reads (for stats) and compare-and-set (for strategies decided in Rust).
pub(super) static STATE: LazyLock<Script> = script!("lua/state.lua");

/// Products a script computes must stay below this for doubles to be exact: 2^53,
/// with room for the additions and timestamps around them.
const EXACT_PRODUCT: u128 = 1 << 50;

/// Codec tags of the strategies that keep their entries in a second key.
const LOG_TAG: u8 = 3;
const QUEUE_TAG: u8 = 7;

/// A built-in strategy's script and how to call it.
#[derive(Clone, Copy)]
pub(super) struct Scripted {
    pub(super) script: &'static Script,
    /// `ARGV[6]`, if the script takes a parameter.
    pub(super) param: Option<u64>,
    /// The strategy's codec tag, which names it in [`MULTI`] and [`ENTRIES_STAT`].
    pub(super) tag: u8,
}

impl Scripted {
    /// Whether the strategy keeps its entries in a sorted set beside the state key
    /// (`KEYS[2]`, see [`entries_key`](super::entries_key)): the sliding log and the
    /// queue, so that no call reads more than a few of them.
    pub(super) fn has_entries(&self) -> bool {
        matches!(self.tag, LOG_TAG | QUEUE_TAG)
    }
}

/// How a decision runs.
pub(super) enum Plan {
    /// One EVALSHA of the strategy's script.
    Script(Scripted),
    /// Read, decide in Rust with the strategy's codec, compare-and-set.
    CompareAndSet,
}

/// The plan for `strategy` at `rate` (not a degenerate rate). Built-in strategies are
/// recognised by type, never by name; a rate so large that a script's numbers could
/// pass 2^53 runs through compare-and-set, where Rust decides as in memory.
pub(super) fn plan(strategy: &dyn DynStrategy, rate: Rate) -> Plan {
    let any = strategy.as_any();
    let capacity = strategy.capacity(rate);
    let (script, param, tag): (&'static Script, Option<u64>, u8) = if any.is::<FixedWindow>() {
        (&FIXED_WINDOW, None, 1)
    } else if any.is::<SlidingWindowCounter>() {
        (&SLIDING_WINDOW_COUNTER, None, 2)
    } else if any.is::<SlidingWindowLog>() {
        (&SLIDING_WINDOW_LOG, None, LOG_TAG)
    } else if any.is::<TokenBucket>() {
        (&TOKEN_BUCKET, Some(capacity), 4)
    } else if any.is::<TokenBucketDebt>() {
        (&TOKEN_BUCKET_DEBT, Some(capacity), 5)
    } else if any.is::<LeakyBucket>() {
        (&LEAKY_BUCKET, None, 6)
    } else if any.is::<LeakyBucketQueue>() {
        (&LEAKY_BUCKET_QUEUE, None, QUEUE_TAG)
    } else if any.is::<Gcra>() {
        (&GCRA, Some(capacity), 8)
    } else {
        return Plan::CompareAndSet;
    };
    // The log multiplies nothing: it adds costs (running totals stay below 2^52) and
    // periods to times. Every other script multiplies a limit by the period.
    let exact = if tag == LOG_TAG {
        u128::from(rate.limit()) < EXACT_PRODUCT && u128::from(rate.period_ms()) < EXACT_PRODUCT
    } else {
        u128::from(rate.limit().max(capacity)) * u128::from(rate.period_ms()) < EXACT_PRODUCT
    };
    if exact { Plan::Script(Scripted { script, param, tag }) } else { Plan::CompareAndSet }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{StrategyKind, from_name};

    #[test]
    fn every_built_in_has_a_script_and_a_lookalike_does_not() {
        for kind in StrategyKind::ALL {
            assert!(matches!(plan(&*kind.build(), Rate::per_minute(100)), Plan::Script(..)), "{kind}");
        }
        /// A user strategy that borrows a built-in's name.
        #[derive(Debug)]
        struct Impostor;
        impl crate::strategy::Strategy for Impostor {
            type State = u64;
            fn name(&self) -> &'static str {
                "gcra"
            }
            fn decide(&self, _: &mut u64, _: u64, _: Rate, _: u64) -> crate::strategy::Decision {
                crate::strategy::Decision { allowed: true, remaining: 0, wait_ms: 0, reset_ms: 0 }
            }
            fn stat(&self, _: &u64, _: u64, _: Rate) -> crate::strategy::Snapshot {
                crate::strategy::Snapshot {
                    remaining: 0,
                    wait_ms: 0,
                    reset_ms: 0,
                    metadata: crate::strategy::Metadata::None,
                }
            }
            fn expires_at(&self, _: &u64, _: Rate) -> u64 {
                0
            }
        }
        assert!(matches!(plan(&Impostor, Rate::per_minute(100)), Plan::CompareAndSet));
    }

    #[test]
    fn parameters_are_the_capacity() {
        let rate = Rate::per_second(10);
        for (spec, expected) in [("token_bucket(burst = 15)", Some(15)), ("gcra", Some(10)), ("leaky_bucket", None)] {
            match plan(&*from_name(spec).unwrap(), rate) {
                Plan::Script(scripted) => assert_eq!(scripted.param, expected, "{spec}"),
                Plan::CompareAndSet => panic!("{spec} has a script"),
            }
        }
        assert!(matches!(
            plan(&*from_name("token_bucket_debt(max_debt = 5)").unwrap(), rate),
            Plan::Script(Scripted { param: Some(15), .. })
        ));
    }

    #[test]
    fn rates_too_large_for_doubles_use_compare_and_set() {
        let huge = Rate::per_day(Rate::MAX / 1_000);
        assert!(matches!(plan(&FixedWindow, huge), Plan::CompareAndSet));
        let a_million_a_day = Rate::per_day(1_000_000);
        assert!(matches!(plan(&Gcra::new(), a_million_a_day), Plan::Script(..)));
        // The log only adds, so it keeps its script (and its bounded cost) at any rate
        // whose limit and period stay below 2^50.
        assert!(matches!(plan(&SlidingWindowLog, Rate::per_day(1 << 40)), Plan::Script(..)));
        assert!(matches!(plan(&SlidingWindowLog, huge), Plan::Script(..)));
        assert!(matches!(plan(&SlidingWindowLog, Rate::per_day(1 << 50)), Plan::CompareAndSet));
        assert!(matches!(plan(&LeakyBucketQueue, Rate::per_day(1 << 40)), Plan::CompareAndSet));
    }
}
