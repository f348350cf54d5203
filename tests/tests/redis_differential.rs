//! Differential tests: random sequences of (time step, cost) hits and refunds give the
//! same decisions, refunds, stats and stored state on the in-memory backend, the Redis
//! backend (Lua scripts and compare-and-set) and the pure codec step, for every
//! strategy.
//!
//! Both backends read one `ManualClock`; the Redis backend decides at its time
//! (`RedisBackend::with_clock`) instead of Redis server time.

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use support::redis_server::{RedisServer, UserStrategy};
use support::test_redis::TestRedis;
use throttle::backend::{Backend, Hit, Key, Route, Since};
use throttle::strategy::{DynStrategy, StrategyKind, codec, from_name};
use throttle::{
    Rate,
    backend::{ManualClock, MemoryBackend},
};

/// Far from the epoch and not aligned to anything in particular.
const START: u64 = 1_740_000_000_000 + 12_345;

/// One generated run: the strategy (by spec), the rate, where in a period it starts,
/// and the steps: time to advance, a cost, and for a refund instead of a hit, how long
/// before now the refunded hit's moment is.
#[derive(Debug, Clone)]
struct Case {
    spec: String,
    rate: Rate,
    offset: u64,
    steps: Vec<(u64, u64, Option<u64>)>,
}

fn rates() -> impl Strategy<Value = Rate> {
    prop_oneof![
        6 => (1u64..=12, prop::sample::select(vec![1u64, 7, 50, 100, 1_000, 3_000, 60_000]))
            .prop_map(|(limit, period)| Rate::per_millis(limit, period)),
        1 => Just(Rate::per_second(3)),
        // Products near 10^14: the scripts must stay exact.
        1 => Just(Rate::per_day(1_000_000)),
    ]
}

fn specs(kind: StrategyKind) -> BoxedStrategy<String> {
    let name = kind.name();
    match kind {
        StrategyKind::TokenBucket | StrategyKind::Gcra => {
            prop_oneof![Just(name.to_string()), (1u64..=20).prop_map(move |burst| format!("{name}(burst = {burst})")),]
                .boxed()
        }
        StrategyKind::TokenBucketDebt => (prop::option::of(1u64..=20), 0u64..=10)
            .prop_map(move |(burst, debt)| match burst {
                Some(burst) => format!("{name}(burst = {burst}, max_debt = {debt})"),
                None => format!("{name}(max_debt = {debt})"),
            })
            .boxed(),
        _ => Just(name.to_string()).boxed(),
    }
}

fn cases(specs: BoxedStrategy<String>, rates: BoxedStrategy<Rate>) -> impl Strategy<Value = Case> {
    (specs, rates).prop_flat_map(|(spec, rate)| {
        let capacity = from_name(&spec).expect("valid spec").capacity(rate);
        let period = rate.period_ms();
        let step = prop_oneof![3 => Just(0u64), 4 => 0..=period / 3 + 1, 2 => 0..=period * 2 + 1];
        let cost = prop_oneof![12 => 1..=capacity, 1 => Just(capacity + 1)];
        let refund = prop_oneof![5 => Just(None), 1 => (0..=period + 1).prop_map(Some)];
        (Just(spec), Just(rate), 0..period * 2, prop::collection::vec((step, cost, refund), 150..=220))
            .prop_map(|(spec, rate, offset, steps)| Case { spec, rate, offset, steps })
    })
}

/// Runs `cases` against a fresh `redis-server`, building each case's strategy with
/// `build`.
fn differential(cases: impl Strategy<Value = Case>, build: fn(&str) -> Arc<dyn DynStrategy>) {
    let Some(server) = RedisServer::start() else { return };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (redis, raw) = runtime.block_on(async {
        let redis = TestRedis::connect(&server.url()).await.expect("connects");
        let client = redis::Client::open(server.url()).expect("url");
        (redis, client.get_multiplexed_async_connection().await.expect("connects"))
    });
    let counter = AtomicU64::new(0);
    // THROTTLE_DIFF_CASES=500 for a deeper run.
    let cases_per_test = std::env::var("THROTTLE_DIFF_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(8);
    let mut runner = TestRunner::new(Config { cases: cases_per_test, failure_persistence: None, ..Config::default() });
    let result = runner.run(&cases, |case| {
        let key = format!("throttle:diff:case{}:default", counter.fetch_add(1, Ordering::Relaxed));
        runtime.block_on(run_case(&case, &key, build(&case.spec), &redis, &mut raw.clone()));
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

async fn run_case(
    case: &Case,
    key: &str,
    strategy: Arc<dyn DynStrategy>,
    redis: &TestRedis,
    raw: &mut redis::aio::MultiplexedConnection,
) {
    let clock = ManualClock::new(START + case.offset);
    let memory = MemoryBackend::builder().clock(clock.clone()).build().expect("backend");
    let redis = redis.clone().with_clock(clock.clone());
    let redis_key = stored_key(key);
    let rate = case.rate;
    let mut shadow: Option<Vec<i64>> = None;
    // When the stored state becomes equivalent to a fresh one.
    let mut expires_at = 0;
    for (i, &(step, cost, refund)) in case.steps.iter().enumerate() {
        clock.advance(Duration::from_millis(step));
        let now = clock.now_ms();
        let at = format!("{} at step {i} (t = {now}, cost {cost}, refund {refund:?}, rate {rate})", case.spec);

        if let Some(back_off) = refund {
            let since = now.saturating_sub(back_off);
            let in_memory = memory.refund_now(key, &*strategy, rate, cost, since);
            let in_redis =
                redis.refund(Hit::new(key, &*strategy, rate, cost), Since::Ms(since), Route::default()).await;
            let pure = strategy.refund_encoded(shadow.as_deref(), now, rate, cost, since);
            assert_eq!(in_redis.expect("redis answers"), in_memory, "refund: {at}");
            assert_eq!(pure.is_some(), in_memory, "codec refund: {at}");
            let stored = stored_text(raw, &redis_key).await;
            if let Some((state, expires)) = pure {
                // A state left equivalent to a fresh one may be deleted instead.
                if !(expires <= now && stored.is_none()) {
                    assert_eq!(stored, Some(codec::to_text(&state)), "stored state after a refund: {at}");
                }
                shadow = stored.is_some().then_some(state);
                expires_at = expires;
            } else {
                assert_eq!(stored, shadow.as_deref().map(codec::to_text), "stored state: {at}");
            }
            continue;
        }

        let in_memory = memory.hit_now(key, &*strategy, rate, cost);
        let in_redis = redis.hit(Hit::new(key, &*strategy, rate, cost)).await.expect("redis answers");
        let pure = strategy.decide_encoded(shadow.as_deref(), now, rate, cost).expect("a codec");
        assert_eq!(in_redis, in_memory, "decision: {at}");
        assert_eq!(pure.decision, in_memory, "codec step: {at}");
        if pure.decision.allowed {
            shadow = Some(pure.state);
            expires_at = pure.expires_at;
        }

        let stored = stored_text(raw, &redis_key).await;
        assert_eq!(stored, shadow.as_deref().map(codec::to_text), "stored state: {at}");

        let stat_memory = memory.stat_now(key, &*strategy, rate);
        let stat_redis = redis.stat(Key::from(key), &*strategy, rate).await.expect("redis answers");
        if now < expires_at {
            assert_eq!(stat_redis, stat_memory, "stat: {at}");
        } else {
            // Expired: memory may have swept the key (a fresh state's metadata) while
            // Redis keeps it for the clock grace; the quota itself must agree.
            let quota = |s: &throttle::strategy::Snapshot| (s.remaining, s.wait_ms, s.reset_ms);
            assert_eq!(quota(&stat_redis), quota(&stat_memory), "stat: {at}");
        }
    }
}

/// The stored state in codec text: the state key's text or, for the sliding log and
/// the queue run by their scripts (a header in the state key, tags 9 and 10, and the
/// entries in a list beside it), the codec text of the same state rebuilt from both
/// keys, after checking that the header agrees with the entries.
async fn stored_text(raw: &mut redis::aio::MultiplexedConnection, redis_key: &str) -> Option<String> {
    let text: Option<String> = redis::cmd("GET").arg(redis_key).query_async(raw).await.expect("GET");
    let fields = codec::from_text(text.as_deref()?).expect("stored text is integers");
    if !matches!(fields.first(), Some(9 | 10)) {
        return text;
    }
    let entries_key = format!("{redis_key}:entries");
    let elements: Vec<i64> = redis::cmd("LRANGE").arg(&entries_key).arg(0).arg(-1).query_async(raw).await.unwrap();
    // Running totals to costs, from the total before the first entry.
    let costs = |base: i64, totals: &[i64]| -> Vec<i64> {
        totals.iter().scan(base, |before, &total| Some(total - std::mem::replace(before, total))).collect()
    };
    let rebuilt: Vec<i64> = match fields[..] {
        [9, newest, total, base, count, oldest, oldest_total] => {
            let entries: Vec<(i64, i64)> = elements.chunks(2).map(|pair| (pair[0], pair[1])).collect();
            assert_eq!(elements.len() as i64, 2 * count, "log count");
            assert_eq!(entries.first(), Some(&(oldest, oldest_total)), "oldest entry");
            assert_eq!(entries.last(), Some(&(newest, total)), "newest entry");
            let totals: Vec<i64> = entries.iter().map(|&(_, total)| total).collect();
            let pairs = entries.iter().zip(costs(base, &totals)).flat_map(|(&(ms, _), cost)| [ms, cost]);
            std::iter::once(3).chain(pairs).collect()
        }
        [10, last, head_leaked, total, base, head_total, count] => {
            assert_eq!(elements.len() as i64, count, "queue count");
            assert_eq!(elements.first(), Some(&head_total), "head");
            assert_eq!(elements.last(), Some(&total), "tail");
            [7, last, head_leaked].into_iter().chain(costs(base, &elements)).collect()
        }
        _ => panic!("unexpected header {text:?}"),
    };
    Some(codec::to_text(&rebuilt))
}

fn stored_key(key: &str) -> String {
    let (head, scope) = key.rsplit_once(':').expect("scope");
    let (prefix, client) = head.rsplit_once(':').expect("client");
    format!("{prefix}:{{{client}}}:{scope}")
}

fn built_in(spec: &str) -> Arc<dyn DynStrategy> {
    from_name(spec).expect("valid spec")
}

fn kind(kind: StrategyKind) {
    differential(cases(specs(kind), rates().boxed()), built_in);
}

#[test]
fn fixed_window() {
    kind(StrategyKind::FixedWindow);
}

#[test]
fn sliding_window_counter() {
    kind(StrategyKind::SlidingWindowCounter);
}

#[test]
fn sliding_window_log() {
    kind(StrategyKind::SlidingWindowLog);
}

#[test]
fn token_bucket() {
    kind(StrategyKind::TokenBucket);
}

#[test]
fn token_bucket_debt() {
    kind(StrategyKind::TokenBucketDebt);
}

#[test]
fn leaky_bucket() {
    kind(StrategyKind::LeakyBucket);
}

#[test]
fn leaky_bucket_queue() {
    kind(StrategyKind::LeakyBucketQueue);
}

#[test]
fn gcra() {
    kind(StrategyKind::Gcra);
}

/// A user strategy (a built-in behind another type, so the backend has no script for
/// it) runs through compare-and-set and decides exactly like the built-in.
#[test]
fn user_strategies_through_compare_and_set() {
    let specs = prop::sample::select(StrategyKind::ALL.to_vec()).prop_flat_map(specs).boxed();
    differential(cases(specs, rates().boxed()), |spec| Arc::new(UserStrategy(from_name(spec).expect("valid spec"))));
}

/// Rates whose products could pass 2^53 in a script's doubles run through
/// compare-and-set, exactly (here `limit × period` from 2^50 to 2^60, where the
/// strategies' integer state still fits).
#[test]
fn huge_rates_through_compare_and_set() {
    let specs = prop::sample::select(StrategyKind::ALL.to_vec()).prop_flat_map(specs).boxed();
    let huge = (1u64 << 24..1u64 << 34).prop_map(Rate::per_day).boxed();
    differential(cases(specs, huge), built_in);
}
