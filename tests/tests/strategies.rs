//! Every built-in strategy: exact admission under concurrency, honest waits, stats,
//! costs, corrupt state, time with the manual clock, and property tests against a
//! simple reference model of each algorithm.

mod support;

use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use http::StatusCode;
use proptest::prelude::*;
use proptest::strategy::Strategy as _;
use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::sync::{Arc, Barrier};
use std::time::Duration;
use support::*;
use throttle::strategy::{
    DynStrategy, FixedWindow, Gcra, LeakyBucket, LeakyBucketQueue, Metadata, NEVER, SlidingWindowCounter,
    SlidingWindowLog, Strategy, StrategyKind, TokenBucket, TokenBucketDebt, codec, from_name,
};
use throttle::{
    HttpThrottle, Rate, ThrottleError,
    backend::{ManualClock, MemoryBackend},
};

fn every_strategy() -> Vec<Arc<dyn DynStrategy>> {
    StrategyKind::ALL.iter().map(|kind| kind.build()).collect()
}

/// Hits `key` `n` times at once from tokio tasks on the multi-thread runtime.
async fn concurrent_hits(
    backend: &MemoryBackend,
    strategy: &Arc<dyn DynStrategy>,
    key: &str,
    rate: Rate,
    n: usize,
) -> usize {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (backend, strategy, key) = (backend.clone(), strategy.clone(), key.to_string());
            tokio::spawn(async move { backend.hit_now(&key, &*strategy, rate, 1).allowed })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await.expect("task"));
    }
    admitted
}

// ---------------------------------------------------------------------------------
// Exact admission under concurrency
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_hits_on_a_fresh_key_admit_exactly_the_limit() {
    for strategy in every_strategy() {
        for (limit, n) in [(10, 50), (25, 25), (40, 10), (100, 100)] {
            let (backend, _clock) = manual_backend();
            let admitted = concurrent_hits(&backend, &strategy, "fresh", Rate::per_minute(limit), n).await;
            assert_eq!(admitted, n.min(limit as usize), "{}: {n} hits at limit {limit}", strategy.name());
        }
    }
}

#[test]
fn concurrent_hits_from_os_threads_admit_exactly_the_limit() {
    for strategy in every_strategy() {
        let (backend, _clock) = manual_backend();
        let rate = Rate::per_second(30);
        let barrier = Barrier::new(8);
        let admitted: usize = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        (0..10).filter(|_| backend.hit_now("threads", &*strategy, rate, 1).allowed).count()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().expect("thread")).sum()
        });
        assert_eq!(admitted, 30, "{}", strategy.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gcra_admits_exactly_its_burst_under_concurrency() {
    let (backend, _clock) = manual_backend();
    let gcra: Arc<dyn DynStrategy> = Arc::new(Gcra::with_burst(4).unwrap());
    assert_eq!(concurrent_hits(&backend, &gcra, "burst", Rate::per_minute(10), 50).await, 4);
    let bucket: Arc<dyn DynStrategy> = Arc::new(TokenBucket::with_burst(15).unwrap());
    assert_eq!(concurrent_hits(&backend, &bucket, "bucket", Rate::per_minute(10), 50).await, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nine_prior_hits_then_two_concurrent_admit_exactly_one() {
    let rate = Rate::per_second(10);
    for strategy in every_strategy() {
        let (backend, _clock) = manual_backend();
        for round in 0..20 {
            let key = format!("nine:{round}");
            for _ in 0..9 {
                assert!(backend.hit_now(&key, &*strategy, rate, 1).allowed);
            }
            assert_eq!(concurrent_hits(&backend, &strategy, &key, rate, 2).await, 1, "{}", strategy.name());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_are_isolated() {
    let rate = Rate::per_second(5);
    for strategy in every_strategy() {
        let (backend, _clock) = manual_backend();
        let tasks: Vec<_> = (0..10)
            .map(|k| {
                let (backend, strategy) = (backend.clone(), strategy.clone());
                tokio::spawn(async move { concurrent_hits(&backend, &strategy, &format!("key:{k}"), rate, 5).await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), 5, "{}: every key has its own 5", strategy.name());
        }
        assert!(!backend.hit_now("key:0", &*strategy, rate, 1).allowed);
        assert!(backend.hit_now("key:10", &*strategy, rate, 5).allowed);
    }
}

#[test]
fn costs_add_up_exactly() {
    let rate = Rate::per_second(10);
    for strategy in every_strategy() {
        let (backend, _clock) = manual_backend();
        let remaining: Vec<u64> =
            [3, 3, 4].iter().map(|&c| backend.hit_now("k", &*strategy, rate, c).remaining).collect();
        assert_eq!(remaining, [7, 4, 0], "{}", strategy.name());
        let rejected = backend.hit_now("k", &*strategy, rate, 1);
        assert!(!rejected.allowed && rejected.wait_ms > 0, "{}", strategy.name());
        assert_eq!(backend.stat_now("k", &*strategy, rate).remaining, 0);
        // The other key's costs are its own.
        assert!(backend.hit_now("other", &*strategy, rate, 10).allowed);
    }
}

#[test]
fn rejected_hits_never_consume_quota() {
    let rate = Rate::per_second(10);
    for strategy in every_strategy() {
        let (backend, _clock) = manual_backend();
        assert!(backend.hit_now("k", &*strategy, rate, 6).allowed);
        for _ in 0..100 {
            assert!(!backend.hit_now("k", &*strategy, rate, 5).allowed);
        }
        assert!(backend.hit_now("k", &*strategy, rate, 4).allowed, "{}", strategy.name());
    }
}

// ---------------------------------------------------------------------------------
// Through the throttle and an axum Router
// ---------------------------------------------------------------------------------

fn http_throttle(uid: &str, rate: &str, strategy: &str) -> (HttpThrottle, ManualClock, MemoryBackend) {
    let (backend, clock) = manual_backend();
    let throttle = HttpThrottle::builder(uid)
        .rate(rate)
        .strategy_name(strategy)
        .backend(backend.clone())
        .build()
        .expect("valid throttle");
    (throttle, clock, backend)
}

fn app(api: HttpThrottle) -> Router {
    Router::new().route(
        "/data",
        get(move |request: Request| async move {
            api.hit(&request).await?;
            Ok::<_, ThrottleError>("data")
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_through_a_router_admit_exactly_the_limit() {
    for kind in StrategyKind::ALL {
        let (api, _clock, _) = http_throttle(&format!("strategies:burst:{kind}"), "3/s", kind.name());
        let (ok, throttled) = burst(&app(api), "/data", 5).await;
        assert_eq!((ok, throttled), (3, 2), "{kind}");
    }
    let (api, _clock, _) = http_throttle("strategies:burst:gcra-2", "10/min", "gcra(burst = 2)");
    assert_eq!(burst(&app(api), "/data", 20).await, (2, 18));
}

#[tokio::test]
async fn retry_after_is_honest_through_the_router() {
    for (spec, wait_s) in [("token_bucket", 20), ("gcra", 20), ("leaky_bucket_queue", 20), ("sliding_window_log", 60)] {
        let (api, clock, _) = http_throttle(&format!("strategies:retry:{spec}"), "3/min", spec);
        let app = app(api);
        for _ in 0..3 {
            assert_eq!(send(&app, get_from("/data", [1, 1, 1, 1])).await.status(), StatusCode::OK);
        }
        let rejected = send(&app, get_from("/data", [1, 1, 1, 1])).await;
        assert_eq!(rejected.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&rejected, "retry-after"), Some(wait_s.to_string().as_str()), "{spec}");
        clock.advance(Duration::from_millis(wait_s * 1_000 - 1));
        assert_eq!(send(&app, get_from("/data", [1, 1, 1, 1])).await.status(), StatusCode::TOO_MANY_REQUESTS);
        clock.advance(Duration::from_millis(1));
        assert_eq!(send(&app, get_from("/data", [1, 1, 1, 1])).await.status(), StatusCode::OK, "{spec}");
    }
}

#[tokio::test]
async fn costs_above_the_capacity_are_an_error_not_a_wait() {
    let (api, _clock, backend) =
        http_throttle("strategies:capacity", "10/s", "token_bucket_debt(burst = 4, max_debt = 2)");
    let request = get_from("/", [1, 1, 1, 1]);
    match api.hit(&request).cost(7).await {
        Err(ThrottleError::CostExceedsCapacity { cost: 7, capacity: 6, .. }) => {}
        other => panic!("expected CostExceedsCapacity, got {other:?}"),
    }
    assert!(backend.is_empty(), "refused before any backend I/O");
    assert!(api.hit(&request).cost(6).await.is_ok());
}

#[tokio::test]
async fn stats_carry_each_strategys_metadata() {
    let request = get_from("/", [1, 1, 1, 1]);
    for kind in StrategyKind::ALL {
        let (api, clock, _) = http_throttle(&format!("strategies:stat:{kind}"), "10/s", kind.name());
        clock.set(T0 - T0 % 1_000); // the start of a second
        let fresh = api.stat(&request).await.unwrap().unwrap();
        assert_eq!((fresh.hits_remaining, fresh.wait_ms, fresh.strategy), (10, 0, kind.name()), "{kind}");
        api.hit(&request).cost(4).await.unwrap();
        let stat = api.stat(&request).await.unwrap().unwrap();
        assert_eq!((stat.hits_remaining, stat.wait_ms), (6, 0), "{kind}");
        let now = clock.now_ms();
        let expected = match kind {
            StrategyKind::FixedWindow => {
                Metadata::FixedWindow { window_start_ms: now, window_end_ms: now + 1_000, current_count: 4 }
            }
            StrategyKind::SlidingWindowCounter => Metadata::SlidingWindowCounter {
                window_start_ms: now,
                window_end_ms: now + 1_000,
                current_count: 4,
                previous_count: 0,
                previous_weight_permille: 1_000,
                weighted_count: 4,
            },
            StrategyKind::SlidingWindowLog => Metadata::SlidingWindowLog {
                window_start_ms: now - 1_000,
                entry_count: 1,
                current_count: 4,
                oldest_entry_ms: now,
            },
            StrategyKind::TokenBucket => {
                Metadata::TokenBucket { tokens: 6, capacity: 10, last_refill_ms: now, level_units: 4_000 }
            }
            StrategyKind::TokenBucketDebt => {
                let level_units = 4_000;
                Metadata::TokenBucketDebt {
                    tokens: 6,
                    capacity: 10,
                    max_debt: 0,
                    debt: 0,
                    last_refill_ms: now,
                    level_units,
                }
            }
            StrategyKind::LeakyBucket => {
                Metadata::LeakyBucket { level: 4, capacity: 10, last_leak_ms: now, level_units: 4_000 }
            }
            StrategyKind::LeakyBucketQueue => {
                let level_units = 4_000;
                Metadata::LeakyBucketQueue { queue_len: 1, queue_cost: 4, capacity: 10, last_leak_ms: now, level_units }
            }
            StrategyKind::Gcra => {
                Metadata::Gcra { tat_ms: now + 400, emission_interval_us: 100_000, burst: 10, level_units: 4_000 }
            }
            other => panic!("no expectation for {other}"),
        };
        assert_eq!(stat.metadata, expected, "{kind}");
    }
}

#[tokio::test]
async fn unlimited_rates_never_touch_the_backend() {
    let (api, _clock, backend) = http_throttle("strategies:unlimited", "unlimited", "sliding_window_log");
    let request = get_from("/", [1, 1, 1, 1]);
    for _ in 0..100 {
        assert!(api.hit(&request).cost(1_000).await.is_ok());
    }
    assert!(backend.is_empty());
}

#[test]
fn unknown_names_and_bad_parameters_fail_the_build() {
    let err =
        HttpThrottle::builder("strategies:bad-name").rate("1/s").strategy_name("token_buckett").build().unwrap_err();
    assert!(err.to_string().contains("(did you mean `token_bucket`?)"), "{err}");
    let err =
        HttpThrottle::builder("strategies:bad-param").rate("1/s").strategy_name("gcra(burst = 0)").build().unwrap_err();
    assert_eq!(err.to_string(), "invalid parameter of strategy `gcra`: `burst` must be at least 1");
    // A later valid choice wins.
    let ok = HttpThrottle::builder("strategies:fixed").rate("1/s").strategy_name("nope").strategy(LeakyBucket).build();
    assert!(ok.is_ok());
}

// ---------------------------------------------------------------------------------
// Corrupt state
// ---------------------------------------------------------------------------------

#[test]
fn corrupt_or_foreign_stored_state_reads_as_fresh() {
    let rate = Rate::per_second(10);
    let garbage: [&[i64]; 6] = [&[], &[0], &[999, 1, 2], &[4, -5, 7], &[7, 1], &[3, 10, 1, 5, 1]];
    for strategy in every_strategy() {
        assert!(strategy.has_codec(), "{}", strategy.name());
        let fresh = strategy.decide_encoded(None, 5_000, rate, 10).unwrap();
        assert!(fresh.decision.allowed);
        for fields in garbage {
            let read = strategy.decide_encoded(Some(fields), 5_000, rate, 10).unwrap();
            assert_eq!(read, fresh, "{}: {fields:?}", strategy.name());
            assert_eq!(strategy.stat_encoded(Some(fields), 5_000, rate).remaining, 10);
        }
        // State written by another strategy is never read as this one's.
        for other in every_strategy().iter().filter(|o| o.name() != strategy.name()) {
            let foreign = other.decide_encoded(None, 5_000, rate, 10).unwrap().state;
            assert_eq!(
                strategy.stat_encoded(Some(&foreign), 5_000, rate).remaining,
                10,
                "{} read {}",
                strategy.name(),
                other.name()
            );
        }
        // Text that is not a list of integers: no fields, a fresh state.
        let fields = codec::from_text("\u{0}garbage").unwrap_or_default();
        assert!(strategy.decide_encoded(Some(&fields), 5_000, rate, 10).unwrap().decision.allowed);
    }
}

#[test]
fn encoded_decisions_agree_with_the_in_memory_backend() {
    let rate = Rate::per_millis(7, 300);
    for strategy in every_strategy() {
        let clock = ManualClock::new(1_000_000);
        let backend = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
        let mut stored: Option<Vec<i64>> = None;
        for step in 0..200u64 {
            clock.advance(Duration::from_millis((step * 37) % 101));
            let cost = 1 + step % 4;
            let now = clock.now_ms();
            let memory = backend.hit_now("k", &*strategy, rate, cost);
            let encoded = strategy.decide_encoded(stored.as_deref(), now, rate, cost).unwrap();
            assert_eq!(memory, encoded.decision, "{} at step {step}", strategy.name());
            let text = codec::to_text(&encoded.state);
            stored = Some(codec::from_text(&text).unwrap());
        }
    }
}

// ---------------------------------------------------------------------------------
// Time, with the manual clock
// ---------------------------------------------------------------------------------

#[test]
fn sub_second_rates_three_per_fifty_ms() {
    let rate: Rate = "3/50ms".parse().unwrap();
    for strategy in every_strategy() {
        let clock = ManualClock::new(1_000_000);
        let backend = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
        // The sliding counter still weighs the previous window at a boundary: step two.
        let step = if strategy.name() == "sliding_window_counter" { 100 } else { 50 };
        for _ in 0..5 {
            for _ in 0..3 {
                assert!(backend.hit_now("k", &*strategy, rate, 1).allowed, "{}", strategy.name());
            }
            let rejected = backend.hit_now("k", &*strategy, rate, 1);
            assert!(!rejected.allowed && (1..=step).contains(&rejected.wait_ms), "{}: {rejected:?}", strategy.name());
            clock.advance(Duration::from_millis(rejected.wait_ms));
            assert!(backend.hit_now("k", &*strategy, rate, 1).allowed, "{}", strategy.name());
            clock.advance(Duration::from_millis(step));
        }
    }
}

#[test]
fn token_bucket_refills_over_time() {
    let clock = ManualClock::new(1_000_000);
    let backend = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
    let bucket = TokenBucket::with_burst(15).unwrap();
    let rate = Rate::per_second(10);
    assert!(backend.hit_now("k", &bucket, rate, 15).allowed);
    assert_eq!(backend.stat_now("k", &bucket, rate).remaining, 0);
    clock.advance(Duration::from_millis(350));
    let stat = backend.stat_now("k", &bucket, rate);
    assert_eq!((stat.remaining, stat.reset_ms), (3, 1_150));
    clock.advance(Duration::from_secs(10));
    let stat = backend.stat_now("k", &bucket, rate);
    assert_eq!(stat.remaining, 10, "15 tokens, shown as at most the limit");
    assert_eq!(
        stat.metadata,
        Metadata::TokenBucket { tokens: 15, capacity: 15, last_refill_ms: 1_000_000, level_units: 0 }
    );
    assert!(backend.hit_now("k", &bucket, rate, 15).allowed);
}

#[test]
fn debt_is_repaid_by_refill() {
    let clock = ManualClock::new(0);
    let backend = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
    let debt = TokenBucketDebt::new(15).unwrap();
    let rate = Rate::per_second(10);
    assert!(backend.hit_now("k", &debt, rate, 25).allowed);
    let rejected = backend.hit_now("k", &debt, rate, 1);
    assert_eq!(rejected.wait_ms, 100);
    clock.advance(Duration::from_millis(1_500));
    match backend.stat_now("k", &debt, rate).metadata {
        Metadata::TokenBucketDebt { tokens, debt, .. } => assert_eq!((tokens, debt), (0, 0)),
        other => panic!("{other:?}"),
    }
    assert!(!backend.hit_now("k", &debt, rate, 16).allowed, "zero tokens: 15 of debt left");
    assert!(backend.hit_now("k", &debt, rate, 15).allowed);
}

#[test]
fn leaky_buckets_leak_and_the_queue_drains_in_order() {
    let clock = ManualClock::new(0);
    let backend = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
    let rate = Rate::per_second(4);
    for cost in [1, 2, 1] {
        assert!(backend.hit_now("bucket", &LeakyBucket, rate, cost).allowed);
        assert!(backend.hit_now("queue", &LeakyBucketQueue, rate, cost).allowed);
    }
    let queue = |c: &ManualClock| match backend.stat_now("queue", &LeakyBucketQueue, rate).metadata {
        Metadata::LeakyBucketQueue { queue_len, queue_cost, .. } => (c.now_ms(), queue_len, queue_cost),
        other => panic!("{other:?}"),
    };
    assert_eq!(queue(&clock), (0, 3, 4));
    clock.set(250);
    assert_eq!(queue(&clock), (250, 2, 3));
    clock.set(600);
    assert_eq!(queue(&clock), (600, 2, 2), "the head has 0.6 of 2 left");
    clock.set(750);
    assert_eq!(queue(&clock), (750, 1, 1));
    clock.set(1_000);
    assert_eq!(queue(&clock), (1_000, 0, 0));
    for key_strategy in [&LeakyBucket as &dyn DynStrategy, &LeakyBucketQueue] {
        let key = if key_strategy.name() == "leaky_bucket" { "bucket" } else { "queue" };
        assert_eq!(backend.stat_now(key, key_strategy, rate).remaining, 4);
    }
}

#[test]
fn window_roll_over() {
    let clock = ManualClock::new(60_000 * 1_000);
    let backend = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
    let rate = Rate::per_minute(6);
    assert!(backend.hit_now("fixed", &FixedWindow, rate, 6).allowed);
    assert!(backend.hit_now("sliding", &SlidingWindowCounter, rate, 6).allowed);
    assert!(backend.hit_now("log", &SlidingWindowLog, rate, 6).allowed);
    clock.advance(Duration::from_secs(60));
    // At the next window the fixed window forgets, the sliding counter still weighs
    // the previous 6 fully, and the log's hits (exactly one period old) have aged out.
    assert_eq!(backend.stat_now("fixed", &FixedWindow, rate).remaining, 6);
    assert_eq!(backend.stat_now("sliding", &SlidingWindowCounter, rate).remaining, 0);
    assert_eq!(backend.stat_now("log", &SlidingWindowLog, rate).remaining, 6);
    clock.advance(Duration::from_secs(20));
    assert_eq!(backend.stat_now("sliding", &SlidingWindowCounter, rate).remaining, 2);
    clock.advance(Duration::from_secs(40));
    assert_eq!(backend.stat_now("sliding", &SlidingWindowCounter, rate).remaining, 6);
}

#[test]
fn waits_shrink_as_time_passes_and_are_never_negative() {
    let rate = Rate::per_second(5);
    for strategy in every_strategy() {
        let clock = ManualClock::new(1_000_000);
        let backend = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
        assert!(backend.hit_now("k", &*strategy, rate, 5).allowed);
        let mut last = u64::MAX;
        loop {
            let wait = backend.stat_now("k", &*strategy, rate).wait_ms;
            assert!(wait < last || wait == 0, "{}: {wait} after {last}", strategy.name());
            assert!(wait <= 2_000, "{}: at most two periods", strategy.name());
            if wait == 0 {
                break;
            }
            last = wait;
            clock.advance(Duration::from_millis(37));
        }
        assert!(backend.hit_now("k", &*strategy, rate, 1).allowed);
    }
}

#[test]
fn a_cost_above_the_capacity_gets_the_never_wait_and_changes_nothing() {
    let rate = Rate::per_second(5);
    for strategy in every_strategy() {
        let (backend, _clock) = manual_backend();
        assert!(backend.hit_now("k", &*strategy, rate, 2).allowed);
        let d = backend.hit_now("k", &*strategy, rate, 6);
        assert_eq!((d.allowed, d.wait_ms, d.remaining), (false, NEVER, 3), "{}", strategy.name());
        assert!(backend.hit_now("k", &*strategy, rate, 3).allowed);
    }
}

// ---------------------------------------------------------------------------------
// Property tests against reference models
// ---------------------------------------------------------------------------------

/// An obviously-correct model of an algorithm: exact rational arithmetic, written
/// the way the textbooks state it, with no attention to speed.
trait Model {
    /// Whether a hit of `cost` at `now` would be admitted.
    fn admits(&self, now: u64, cost: u64) -> bool;
    /// Records an admitted hit.
    fn record(&mut self, now: u64, cost: u64);
    /// Hits of cost 1 admissible at `now`, at most the limit.
    fn remaining(&self, now: u64) -> u64;
}

/// Fixed window: a count per window index.
struct FixedModel {
    rate: Rate,
    counts: HashMap<u64, u64>,
}

impl Model for FixedModel {
    fn admits(&self, now: u64, cost: u64) -> bool {
        self.counts.get(&(now / self.rate.period_ms())).unwrap_or(&0) + cost <= self.rate.limit()
    }
    fn record(&mut self, now: u64, cost: u64) {
        *self.counts.entry(now / self.rate.period_ms()).or_default() += cost;
    }
    fn remaining(&self, now: u64) -> u64 {
        self.rate.limit() - self.counts.get(&(now / self.rate.period_ms())).unwrap_or(&0)
    }
}

/// Sliding window counter: a count per window index; weighted = prev·(P−e)/P + cur.
struct SlidingCounterModel {
    rate: Rate,
    counts: HashMap<u64, u64>,
}

impl SlidingCounterModel {
    /// The weighted count times P.
    fn weighted_p(&self, now: u64) -> u128 {
        let p = self.rate.period_ms();
        let (window, elapsed) = (now / p, now % p);
        let count = |w: u64| u128::from(*self.counts.get(&w).unwrap_or(&0));
        let previous = if window == 0 { 0 } else { count(window - 1) };
        previous * u128::from(p - elapsed) + count(window) * u128::from(p)
    }
}

impl Model for SlidingCounterModel {
    fn admits(&self, now: u64, cost: u64) -> bool {
        let p = u128::from(self.rate.period_ms());
        self.weighted_p(now) + u128::from(cost) * p <= u128::from(self.rate.limit()) * p
    }
    fn record(&mut self, now: u64, cost: u64) {
        *self.counts.entry(now / self.rate.period_ms()).or_default() += cost;
    }
    fn remaining(&self, now: u64) -> u64 {
        let p = u128::from(self.rate.period_ms());
        ((u128::from(self.rate.limit()) * p).saturating_sub(self.weighted_p(now)) / p) as u64
    }
}

/// Sliding log: every admitted hit; the window is (now − P, now].
struct LogModel {
    rate: Rate,
    log: Vec<(u64, u64)>,
}

impl LogModel {
    fn in_window(&self, now: u64) -> u64 {
        self.log.iter().filter(|(t, _)| t + self.rate.period_ms() > now).map(|(_, c)| c).sum()
    }
}

impl Model for LogModel {
    fn admits(&self, now: u64, cost: u64) -> bool {
        self.in_window(now) + cost <= self.rate.limit()
    }
    fn record(&mut self, now: u64, cost: u64) {
        self.log.push((now, cost));
    }
    fn remaining(&self, now: u64) -> u64 {
        self.rate.limit().saturating_sub(self.in_window(now))
    }
}

/// Token bucket (with optional debt): tokens, as a fraction with denominator P,
/// refilled by L/P per ms up to the burst; a hit may take tokens down to −debt.
struct TokenModel {
    rate: Rate,
    burst: i128,
    debt: i128,
    /// tokens × P at `last`.
    tokens_p: i128,
    last: u64,
}

impl TokenModel {
    fn new(rate: Rate, burst: u64, debt: u64) -> Self {
        let p = i128::from(rate.period_ms());
        TokenModel { rate, burst: burst.into(), debt: debt.into(), tokens_p: i128::from(burst) * p, last: 0 }
    }
    fn tokens_p(&self, now: u64) -> i128 {
        let refill = i128::from(now - self.last) * i128::from(self.rate.limit());
        (self.tokens_p + refill).min(self.burst * i128::from(self.rate.period_ms()))
    }
}

impl Model for TokenModel {
    fn admits(&self, now: u64, cost: u64) -> bool {
        let p = i128::from(self.rate.period_ms());
        self.tokens_p(now) - i128::from(cost) * p >= -self.debt * p
    }
    fn record(&mut self, now: u64, cost: u64) {
        self.tokens_p = self.tokens_p(now) - i128::from(cost) * i128::from(self.rate.period_ms());
        self.last = now;
    }
    fn remaining(&self, now: u64) -> u64 {
        let p = i128::from(self.rate.period_ms());
        let spendable = (self.tokens_p(now) + self.debt * p).div_euclid(p);
        spendable.clamp(0, i128::from(self.rate.limit())) as u64
    }
}

/// Leaky bucket as a FIFO of admitted hits, each draining in turn at L/P per ms;
/// the queue may hold at most L cost. (Also the plain leaky bucket's model: the
/// level is the queue's total.)
struct QueueModel {
    rate: Rate,
    /// Undrained cost × P of each queued hit, head first, as of `last`.
    queue: VecDeque<u128>,
    last: u64,
}

impl QueueModel {
    fn drained(&self, now: u64) -> VecDeque<u128> {
        let mut queue = self.queue.clone();
        let mut budget = u128::from(now - self.last) * u128::from(self.rate.limit());
        while let Some(head) = queue.front_mut() {
            if budget >= *head {
                budget -= *head;
                queue.pop_front();
            } else {
                *head -= budget;
                break;
            }
        }
        queue
    }
    fn level_p(&self, now: u64) -> u128 {
        self.drained(now).iter().sum()
    }
}

impl Model for QueueModel {
    fn admits(&self, now: u64, cost: u64) -> bool {
        let p = u128::from(self.rate.period_ms());
        self.level_p(now) + u128::from(cost) * p <= u128::from(self.rate.limit()) * p
    }
    fn record(&mut self, now: u64, cost: u64) {
        self.queue = self.drained(now);
        self.queue.push_back(u128::from(cost) * u128::from(self.rate.period_ms()));
        self.last = now;
    }
    fn remaining(&self, now: u64) -> u64 {
        let p = u128::from(self.rate.period_ms());
        ((u128::from(self.rate.limit()) * p - self.level_p(now).min(u128::from(self.rate.limit()) * p)) / p) as u64
    }
}

/// GCRA, virtual scheduling: T = P/L, τ = burst·T; admit if max(TAT, now) + cost·T − now ≤ τ.
/// Times are kept in units of 1/L ms, so T = P units.
struct GcraModel {
    rate: Rate,
    burst: u64,
    tat: u128,
}

impl GcraModel {
    fn ahead(&self, now: u64) -> u128 {
        let now = u128::from(now) * u128::from(self.rate.limit());
        self.tat.max(now) - now
    }
}

impl Model for GcraModel {
    fn admits(&self, now: u64, cost: u64) -> bool {
        let t = u128::from(self.rate.period_ms());
        self.ahead(now) + u128::from(cost) * t <= u128::from(self.burst) * t
    }
    fn record(&mut self, now: u64, cost: u64) {
        let now_u = u128::from(now) * u128::from(self.rate.limit());
        self.tat = self.tat.max(now_u) + u128::from(cost) * u128::from(self.rate.period_ms());
    }
    fn remaining(&self, now: u64) -> u64 {
        let t = u128::from(self.rate.period_ms());
        ((u128::from(self.burst) * t).saturating_sub(self.ahead(now)) / t).min(u128::from(self.rate.limit())) as u64
    }
}

/// Runs `ops` (time step, cost) through the strategy and the model side by side.
fn check_against_model<S>(
    strategy: &S,
    rate: Rate,
    model: &mut dyn Model,
    ops: &[(u64, u64)],
) -> Result<(), TestCaseError>
where
    S: Strategy,
    S::State: Clone + PartialEq + Debug,
{
    let name = Strategy::name(strategy);
    let capacity = Strategy::capacity(strategy, rate);
    let mut state = S::State::default();
    let mut now = 1_000_000;
    for &(step, cost) in ops {
        now += step;
        let cost = cost.min(capacity);
        let before = state.clone();
        let d = strategy.decide(&mut state, now, rate, cost);
        prop_assert_eq!(d.allowed, model.admits(now, cost), "{}: admission at {} of cost {}", name, now, cost);
        prop_assert!(d.remaining <= rate.limit(), "{}: remaining {} above the limit", name, d.remaining);
        if d.allowed {
            prop_assert_eq!(d.wait_ms, 0);
            model.record(now, cost);
        } else {
            prop_assert_eq!(&state, &before, "{}: a rejection changed the state", name);
            let w = d.wait_ms;
            prop_assert!(w >= 1 && w != NEVER, "{}: wait {}", name, w);
            // Honest and exact, on the strategy and on the model.
            let mut retry = state.clone();
            prop_assert!(
                strategy.decide(&mut retry, now + w, rate, cost).allowed,
                "{}: not admitted after {} ms",
                name,
                w
            );
            let mut early = state.clone();
            prop_assert!(
                !strategy.decide(&mut early, now + w - 1, rate, cost).allowed,
                "{}: {} ms overstates",
                name,
                w
            );
            prop_assert!(
                model.admits(now + w, cost) && !model.admits(now + w - 1, cost),
                "{}: model disagrees on wait {}",
                name,
                w
            );
        }
        prop_assert_eq!(d.remaining, model.remaining(now), "{}: remaining after the hit at {}", name, now);
        // The stat agrees, consumes nothing, and its wait is the exact wait for one hit.
        let stat = strategy.stat(&state, now, rate);
        prop_assert_eq!(stat.remaining, model.remaining(now));
        if stat.wait_ms == 0 {
            prop_assert!(model.admits(now, 1));
        } else {
            prop_assert!(model.admits(now + stat.wait_ms, 1) && !model.admits(now + stat.wait_ms - 1, 1));
        }
        prop_assert_eq!(
            stat.remaining == 0,
            stat.wait_ms > 0,
            "{}: remaining {} with wait {}",
            name,
            stat.remaining,
            stat.wait_ms
        );
        // The codec round-trips; at `expires_at` the state is as good as fresh.
        let fields = strategy.encode(&state).expect("built-ins have a codec");
        let decoded = strategy.decode(&fields);
        prop_assert_eq!(decoded.as_ref(), Some(&state));
        let expires = strategy.expires_at(&state, rate).max(now);
        let fresh = strategy.stat(&S::State::default(), expires, rate);
        prop_assert_eq!(
            strategy.stat(&state, expires, rate).remaining,
            fresh.remaining,
            "{}: not fresh at expiry",
            name
        );
    }
    Ok(())
}

fn rates() -> impl proptest::strategy::Strategy<Value = Rate> {
    let period = prop_oneof![1u64..=5, 40u64..=60, 900u64..=1_100, Just(60_000u64)];
    (1u64..=12, period).prop_map(|(limit, period)| Rate::per_millis(limit, period))
}

/// Time steps (mostly bursts and short gaps, sometimes a period or two) and costs.
fn ops(rate: Rate, max_cost: u64) -> impl proptest::strategy::Strategy<Value = Vec<(u64, u64)>> {
    let p = rate.period_ms();
    let step = prop_oneof![4 => Just(0u64), 3 => 0..=p / 4 + 1, 2 => 0..=2 * p + 1];
    prop::collection::vec((step, 1..=max_cost), 1..60)
}

fn with_ops(max_cost_over_limit: u64) -> impl proptest::strategy::Strategy<Value = (Rate, Vec<(u64, u64)>)> {
    rates().prop_flat_map(move |rate| (Just(rate), ops(rate, rate.limit() + max_cost_over_limit)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn fixed_window_matches_its_model((rate, ops) in with_ops(0)) {
        check_against_model(&FixedWindow, rate, &mut FixedModel { rate, counts: HashMap::new() }, &ops)?;
    }

    #[test]
    fn sliding_window_counter_matches_its_model((rate, ops) in with_ops(0)) {
        check_against_model(&SlidingWindowCounter, rate, &mut SlidingCounterModel { rate, counts: HashMap::new() }, &ops)?;
    }

    #[test]
    fn sliding_window_log_matches_its_model((rate, ops) in with_ops(0)) {
        check_against_model(&SlidingWindowLog, rate, &mut LogModel { rate, log: Vec::new() }, &ops)?;
    }

    #[test]
    fn token_bucket_matches_its_model((rate, ops) in with_ops(12), burst in 1u64..=24, default in any::<bool>()) {
        let (strategy, burst) = if default { (TokenBucket::new(), rate.limit()) } else { (TokenBucket::with_burst(burst).unwrap(), burst) };
        check_against_model(&strategy, rate, &mut TokenModel::new(rate, burst, 0), &ops)?;
    }

    #[test]
    fn token_bucket_debt_matches_its_model((rate, ops) in with_ops(24), burst in 1u64..=24, debt in 0u64..=12) {
        let strategy = TokenBucketDebt::with_burst(burst, debt).unwrap();
        check_against_model(&strategy, rate, &mut TokenModel::new(rate, burst, debt), &ops)?;
    }

    #[test]
    fn leaky_bucket_matches_its_model((rate, ops) in with_ops(0)) {
        check_against_model(&LeakyBucket, rate, &mut QueueModel { rate, queue: VecDeque::new(), last: 0 }, &ops)?;
    }

    #[test]
    fn leaky_bucket_queue_matches_its_model((rate, ops) in with_ops(0)) {
        check_against_model(&LeakyBucketQueue, rate, &mut QueueModel { rate, queue: VecDeque::new(), last: 0 }, &ops)?;
    }

    #[test]
    fn gcra_matches_its_model((rate, ops) in with_ops(0), burst in 1u64..=12, default in any::<bool>()) {
        let (strategy, burst) = if default { (Gcra::new(), rate.limit()) } else { (Gcra::with_burst(burst).unwrap(), burst) };
        check_against_model(&strategy, rate, &mut GcraModel { rate, burst, tat: 0 }, &ops)?;
    }

    #[test]
    fn leaky_bucket_queue_reports_the_models_queue((rate, ops) in with_ops(0)) {
        let mut model = QueueModel { rate, queue: VecDeque::new(), last: 0 };
        let mut state = <LeakyBucketQueue as Strategy>::State::default();
        let mut now = 1_000_000;
        for (step, cost) in ops {
            now += step;
            if LeakyBucketQueue.decide(&mut state, now, rate, cost).allowed {
                model.record(now, cost);
            }
            let Metadata::LeakyBucketQueue { queue_len, queue_cost, .. } = LeakyBucketQueue.stat(&state, now, rate).metadata else {
                panic!("queue metadata");
            };
            let queue = model.drained(now);
            let p = u128::from(rate.period_ms());
            prop_assert_eq!(queue_len, queue.len() as u64);
            prop_assert_eq!(u128::from(queue_cost), queue.iter().sum::<u128>().div_ceil(p));
        }
    }
}

#[test]
fn from_name_accepts_every_kind_with_its_parameters() {
    let rate = Rate::per_second(10);
    for (spec, name, capacity) in [
        ("fixed_window", "fixed_window", 10),
        ("sliding_window_counter", "sliding_window_counter", 10),
        ("sliding_window_log", "sliding_window_log", 10),
        ("token_bucket(burst = 15)", "token_bucket", 15),
        ("token_bucket_debt(burst = 15, max_debt = 5)", "token_bucket_debt", 20),
        ("leaky_bucket", "leaky_bucket", 10),
        ("leaky_bucket_queue", "leaky_bucket_queue", 10),
        ("gcra(burst = 1)", "gcra", 1),
    ] {
        let strategy = from_name(spec).unwrap();
        assert_eq!((strategy.name(), strategy.capacity(rate)), (name, capacity), "{spec}");
    }
}
