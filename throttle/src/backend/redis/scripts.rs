//! The Lua twins of the built-in strategies, assembled from `lua/`, and how each
//! decision runs (a script, or compare-and-set in Rust).
//!
//! Each built-in strategy has a file in `lua/` that reproduces its Rust twin in
//! `strategy/` step for step (each file names its twin);
//! `tests/tests/redis_differential.rs` checks that both decide alike. The codec tags
//! that name the stored layouts are written once, in `strategy::codec::tags`: the
//! scripts receive them here as `TAG` and `HEADER_TAG`, and `HAS_ENTRIES`, and never
//! spell a tag out (a test below holds them to it).

use super::compare_and_set::EXACT;
use crate::Rate;
use crate::strategy::codec::tags;
use crate::strategy::{
    DynStrategy, FixedWindow, Gcra, LeakyBucket, LeakyBucketQueue, SlidingWindowCounter, SlidingWindowLog, TokenBucket,
    TokenBucketDebt,
};
use ::redis::Script;
use std::fmt::Write;
use std::sync::LazyLock;

const PRELUDE: &str = include_str!("lua/prelude.lua");
const BUCKET: &str = include_str!("lua/bucket.lua");
const ENTRIES: &str = include_str!("lua/entries.lua");

/// A built-in strategy's Lua twin.
struct Twin {
    /// Its file in `lua/`: a `decide` (and a `stat`, for those with entries).
    lua: &'static str,
    /// The helpers it calls, from `lua/`.
    helpers: &'static [&'static str],
    /// Its codec tag.
    tag: i64,
    /// The tag of Redis's own header, for the two whose entries sit in a list beside it.
    header_tag: Option<i64>,
}

/// Every twin, in the order [`plan`] recognises the strategies.
static TWINS: [Twin; 8] = [
    Twin { lua: include_str!("lua/fixed_window.lua"), helpers: &[], tag: tags::FIXED_WINDOW, header_tag: None },
    Twin {
        lua: include_str!("lua/sliding_window_counter.lua"),
        helpers: &[],
        tag: tags::SLIDING_WINDOW_COUNTER,
        header_tag: None,
    },
    Twin {
        lua: include_str!("lua/sliding_window_log.lua"),
        helpers: &[ENTRIES],
        tag: tags::SLIDING_WINDOW_LOG,
        header_tag: Some(tags::SLIDING_WINDOW_LOG_HEADER),
    },
    Twin { lua: include_str!("lua/token_bucket.lua"), helpers: &[BUCKET], tag: tags::TOKEN_BUCKET, header_tag: None },
    Twin {
        lua: include_str!("lua/token_bucket_debt.lua"),
        helpers: &[BUCKET],
        tag: tags::TOKEN_BUCKET_DEBT,
        header_tag: None,
    },
    Twin { lua: include_str!("lua/leaky_bucket.lua"), helpers: &[BUCKET], tag: tags::LEAKY_BUCKET, header_tag: None },
    Twin {
        lua: include_str!("lua/leaky_bucket_queue.lua"),
        helpers: &[BUCKET, ENTRIES],
        tag: tags::LEAKY_BUCKET_QUEUE,
        header_tag: Some(tags::LEAKY_BUCKET_QUEUE_HEADER),
    },
    Twin { lua: include_str!("lua/gcra.lua"), helpers: &[BUCKET], tag: tags::GCRA, header_tag: None },
];

impl Twin {
    /// `TAG` and `HEADER_TAG` for this twin's file, and the file.
    fn with_tags(&self, out: &mut String) {
        let _ = writeln!(out, "local TAG = {}", self.tag);
        if let Some(header) = self.header_tag {
            let _ = writeln!(out, "local HEADER_TAG = {header}");
        }
        out.push_str(self.lua);
        out.push('\n');
    }
}

/// The prelude of every strategy script, with the bound it checks numbers against.
fn prelude() -> String {
    format!("local MAX_EXACT = {EXACT}\n{PRELUDE}")
}

/// The script of one strategy: prelude, helpers, the twin, and `main.lua` calling it.
fn strategy_script(twin: &Twin) -> Script {
    let mut lua = prelude();
    for helper in twin.helpers {
        lua.push_str(helper);
    }
    twin.with_tags(&mut lua);
    lua.push_str(include_str!("lua/main.lua"));
    Script::new(&lua)
}

/// One script per twin, in the order of [`TWINS`].
static STRATEGY_SCRIPTS: LazyLock<Vec<Script>> = LazyLock::new(|| TWINS.iter().map(strategy_script).collect());

/// The prelude, every helper, `DECIDE[tag]` (every twin's `decide`, by codec tag),
/// `HAS_ENTRIES[tag]`, then `tail`: for the scripts that decide several hits in one call.
fn decide_by_tag(tail: &str) -> Script {
    let mut lua = prelude();
    lua.push_str(BUCKET);
    lua.push_str(ENTRIES);
    lua.push_str("local DECIDE, HAS_ENTRIES = {}, {}\n");
    for twin in &TWINS {
        let _ = writeln!(lua, "DECIDE[{}] = (function()", twin.tag);
        twin.with_tags(&mut lua);
        lua.push_str("return decide end)()\n");
        if twin.header_tag.is_some() {
            let _ = writeln!(lua, "HAS_ENTRIES[{}] = true", twin.tag);
        }
    }
    lua.push_str(tail);
    Script::new(&lua)
}

/// Every built-in strategy in one script, by codec tag: several hits decided as one
/// (stacked limits on one client's keys, which share a hash tag and so a slot).
pub(super) static MULTI: LazyLock<Script> = LazyLock::new(|| decide_by_tag(include_str!("lua/multi.lua")));

/// Every built-in strategy in one script, by codec tag: independent decisions of
/// concurrent callers carried by one call and made in order (see [`batch`](super::batch)).
pub(super) static BATCH: LazyLock<Script> = LazyLock::new(|| decide_by_tag(include_str!("lua/batch.lua")));

/// Stats of the strategies with an entries key (the sliding log and the queue), by
/// codec tag, computed in the script from a few entries.
pub(super) static ENTRIES_STAT: LazyLock<Script> =
    LazyLock::new(|| by_entries_tag("STAT", "stat", include_str!("lua/stat.lua")));

/// Refunds of the strategies with an entries key (the sliding log and the queue), by
/// codec tag, atomic with the entries they change.
pub(super) static ENTRIES_REFUND: LazyLock<Script> =
    LazyLock::new(|| by_entries_tag("REFUND", "refund", include_str!("lua/refund.lua")));

/// `body` after a table `table` holding, under the codec tag of each strategy with an
/// entries key, the function `function` its twin defines.
fn by_entries_tag(table: &str, function: &str, body: &str) -> Script {
    let mut lua = prelude();
    lua.push_str(BUCKET);
    lua.push_str(ENTRIES);
    let _ = writeln!(lua, "local {table} = {{}}");
    for twin in TWINS.iter().filter(|twin| twin.header_tag.is_some()) {
        let _ = writeln!(lua, "{table}[{}] = (function()", twin.tag);
        twin.with_tags(&mut lua);
        let _ = writeln!(lua, "return {function} end)()");
    }
    lua.push_str(body);
    Script::new(&lua)
}

/// Reads (for stats) and compare-and-set (for strategies decided in Rust).
pub(super) static STATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{}{}", prelude(), include_str!("lua/state.lua"))));

/// Products a script computes must stay below this for doubles to be exact: 2^53,
/// with room for the additions and timestamps around them.
const EXACT_PRODUCT: u128 = 1 << 50;

/// A built-in strategy's script and how to call it.
#[derive(Clone, Copy)]
pub(super) struct Scripted {
    pub(super) script: &'static Script,
    /// `ARGV[6]`, if the script takes a parameter.
    pub(super) param: Option<u64>,
    /// The strategy's codec tag, which names it in [`MULTI`], [`BATCH`] and
    /// [`ENTRIES_STAT`].
    pub(super) tag: i64,
    has_entries: bool,
}

impl Scripted {
    /// Whether the strategy keeps its entries in a list beside the state key
    /// (`KEYS[2]`, see [`entries_key`](super::keys::entries_key)): the sliding log and
    /// the queue, so that no call reads more than a few of them.
    pub(super) fn has_entries(&self) -> bool {
        self.has_entries
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
    // The index in `TWINS`, and the parameter the script takes.
    let (twin, param) = if any.is::<FixedWindow>() {
        (0, None)
    } else if any.is::<SlidingWindowCounter>() {
        (1, None)
    } else if any.is::<SlidingWindowLog>() {
        (2, None)
    } else if any.is::<TokenBucket>() {
        (3, Some(capacity))
    } else if any.is::<TokenBucketDebt>() {
        (4, Some(capacity))
    } else if any.is::<LeakyBucket>() {
        (5, None)
    } else if any.is::<LeakyBucketQueue>() {
        (6, None)
    } else if any.is::<Gcra>() {
        (7, Some(capacity))
    } else {
        return Plan::CompareAndSet;
    };
    let tag = TWINS[twin].tag;
    // The log multiplies nothing: it adds costs (running totals stay below 2^52) and
    // periods to times. Every other script multiplies a limit by the period.
    let exact = if tag == tags::SLIDING_WINDOW_LOG {
        u128::from(rate.limit()) < EXACT_PRODUCT && u128::from(rate.period_ms()) < EXACT_PRODUCT
    } else {
        u128::from(rate.limit().max(capacity)) * u128::from(rate.period_ms()) < EXACT_PRODUCT
    };
    if !exact {
        return Plan::CompareAndSet;
    }
    let has_entries = TWINS[twin].header_tag.is_some();
    Plan::Script(Scripted { script: &STRATEGY_SCRIPTS[twin], param, tag, has_entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{StrategyKind, from_name};

    #[test]
    fn each_twin_is_its_strategy_by_codec_tag() {
        // `plan` recognises each built-in as the twin that carries its codec's tag.
        for kind in StrategyKind::ALL {
            let strategy = kind.build();
            let fresh = strategy.encode_any(&strategy.new_state()).expect("built-ins have a codec");
            let Plan::Script(scripted) = plan(&*strategy, Rate::per_minute(100)) else { panic!("{kind} has a script") };
            assert_eq!(scripted.tag, fresh[0], "{kind}");
        }
        let mut seen: Vec<i64> = TWINS.iter().flat_map(|twin| [Some(twin.tag), twin.header_tag]).flatten().collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 10, "every layout has a tag of its own");
    }

    #[test]
    fn no_lua_file_spells_a_tag_out() {
        // A tag compared or written as a number would drift from the codec's table.
        for twin in &TWINS {
            for (at, _) in twin.lua.match_indices("state[1] == ") {
                let rest = &twin.lua[at + "state[1] == ".len()..];
                assert!(rest.starts_with("TAG") || rest.starts_with("HEADER_TAG"), "{}", &twin.lua[..80]);
            }
            for line in twin.lua.lines().filter(|line| !line.trim_start().starts_with("--")) {
                for opening in ["{ ", "{", "meter_decide("] {
                    if let Some(rest) = line.split(opening).nth(1) {
                        let first = rest.split([',', ' ']).next().unwrap_or("");
                        assert!(first.parse::<i64>().is_err(), "a tag spelled out in: {line}");
                    }
                }
            }
            assert!(twin.lua.contains("TAG"), "every twin reads its tag: {}", &twin.lua[..80]);
        }
        assert!(include_str!("lua/batch.lua").contains("HAS_ENTRIES[plan.tag]"));
    }

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
