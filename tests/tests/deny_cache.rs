//! `DenyCache` in front of a real `redis-server`: rejections are repeated locally,
//! exactly as Redis would give them, for every built-in strategy; honest headers;
//! reset and stacked limits stay coherent; bounded and exact under many tasks.

mod support;

use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use http::StatusCode;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::redis_server::{RedisServer, UserStrategy};
use support::*;
use throttle::backend::{Backend, DenyCache, Hit, Key, RedisBackend, Reply};
use throttle::strategy::{Decision, DynStrategy, Snapshot, StrategyKind, from_name};
use throttle::{HttpThrottle, Rate, ThrottleError, backend::ManualClock, headers::DEFAULT_HEADERS_ALWAYS};

async fn redis(server: &RedisServer) -> RedisBackend {
    RedisBackend::connect(&server.url()).await.expect("connects")
}

/// The Redis backend and a cache in front of it, both on `clock`.
async fn on_clock(server: &RedisServer, clock: &ManualClock) -> (RedisBackend, DenyCache<RedisBackend>) {
    let plain = redis(server).await.with_clock(clock.clone());
    let cached = DenyCache::builder(plain.clone()).clock(clock.clone()).build().expect("valid cache");
    (plain, cached)
}

fn spec_of(kind: StrategyKind) -> BoxedStrategy<String> {
    let name = kind.name();
    match kind {
        StrategyKind::TokenBucket | StrategyKind::Gcra => {
            prop_oneof![Just(name.to_string()), (2u64..=8).prop_map(move |b| format!("{name}(burst = {b})"))].boxed()
        }
        StrategyKind::TokenBucketDebt => (0u64..=4).prop_map(move |d| format!("{name}(max_debt = {d})")).boxed(),
        _ => Just(name.to_string()).boxed(),
    }
}

/// `(spec, rate, steps of (ms, cost))`: mostly cost 1, with larger costs that a
/// bucket may admit before a smaller cost's wait ends, and many repeats.
fn cases(kind: StrategyKind) -> impl Strategy<Value = (String, Rate, Vec<(u64, u64)>)> {
    let rates = prop::sample::select(vec![Rate::per_millis(3, 100), Rate::per_millis(5, 1_000), Rate::per_minute(4)]);
    (spec_of(kind), rates).prop_flat_map(|(spec, rate)| {
        let capacity = from_name(&spec).expect("valid spec").capacity(rate);
        let period = rate.period_ms();
        let step = prop_oneof![4 => Just(0u64), 4 => 0..=period / 10 + 1, 1 => 0..=period + 1];
        let cost = prop_oneof![6 => Just(1u64), 2 => 1..=capacity];
        (Just(spec), Just(rate), prop::collection::vec((step, cost), 60..=120))
    })
}

/// For every built-in strategy, random sequences of (time step, cost) hit two keys
/// with the same history: one on plain Redis, one through the cache. At every step
/// the cache's answer (local or not) equals Redis's answer on the twin key at the same
/// moment, field by field; and the cache did answer locally.
#[test]
fn the_cache_answers_exactly_as_redis_for_every_strategy() {
    let Some(server) = RedisServer::start() else { return };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let cases_per_kind = std::env::var("THROTTLE_DIFF_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(6);
    let counter = Cell::new(0);
    for kind in StrategyKind::ALL {
        let local_answers = Cell::new(0);
        let mut runner =
            TestRunner::new(Config { cases: cases_per_kind, failure_persistence: None, ..Config::default() });
        let result = runner.run(&cases(kind), |(spec, rate, steps)| {
            counter.set(counter.get() + 1);
            let strategy = from_name(&spec).expect("valid spec");
            let local = runtime.block_on(twin_run(&server, &spec, &*strategy, rate, &steps, counter.get()));
            local_answers.set(local_answers.get() + local);
            Ok(())
        });
        if let Err(failure) = result {
            panic!("{}: {failure}", kind.name());
        }
        assert!(local_answers.get() > 0, "{}: the cache never answered", kind.name());
    }
}

/// Runs one case; returns how many hits the cache answered without a call.
async fn twin_run(
    server: &RedisServer,
    spec: &str,
    strategy: &dyn DynStrategy,
    rate: Rate,
    steps: &[(u64, u64)],
    case: u32,
) -> u64 {
    let clock = ManualClock::new(T0 + 7);
    let (plain, cached) = on_clock(server, &clock).await;
    let (twin, key) = (format!("throttle:twin:a{case}:default"), format!("throttle:twin:b{case}:default"));
    let before = server.command_calls("evalsha");
    for (i, &(step, cost)) in steps.iter().enumerate() {
        clock.advance(Duration::from_millis(step));
        let expected = plain.hit(Hit::new(&twin, strategy, rate, cost)).await.expect("redis answers");
        let answered = cached.hit(Hit::new(&key, strategy, rate, cost)).await.expect("redis answers");
        let at = format!("{spec} at {rate}, step {i} (+{step} ms, cost {cost})");
        assert_eq!(answered, expected, "{at}");
    }
    let calls = server.command_calls("evalsha") - before;
    // One call per plain hit; the cache's hits made the rest.
    (2 * steps.len() as u64).saturating_sub(calls)
}

fn app(api: HttpThrottle) -> Router {
    Router::new().route(
        "/",
        get(move |request: Request| async move {
            let admitted = api.hit(&request).await?;
            Ok::<_, ThrottleError>((admitted, "ok"))
        }),
    )
}

/// Through an axum app: a 429 answered by the cache carries remaining 0 and the true
/// remaining wait, falling as time passes, with no call to Redis; the next window is
/// Redis's again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_429_has_honest_headers_and_costs_no_call() {
    let Some(server) = RedisServer::start() else { return };
    let clock = ManualClock::new(T0); // 45 s before the minute ends
    let (_, cached) = on_clock(&server, &clock).await;
    let api = HttpThrottle::builder("cache:headers")
        .rate("3/min")
        .headers(&*DEFAULT_HEADERS_ALWAYS)
        .backend(cached.clone())
        .build()
        .unwrap();
    let app = app(api);
    for _ in 0..3 {
        assert_eq!(send(&app, get_from("/", [1, 0, 0, 1])).await.status(), StatusCode::OK);
    }
    let first = send(&app, get_from("/", [1, 0, 0, 1])).await;
    assert_eq!(first.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&first, "retry-after"), Some("45"));
    let calls = server.command_calls("evalsha");
    for (advance, retry_after) in [(10, "35"), (20, "15"), (14, "1")] {
        clock.advance(Duration::from_secs(advance));
        let cached_429 = send(&app, get_from("/", [1, 0, 0, 1])).await;
        assert_eq!(cached_429.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&cached_429, "retry-after"), Some(retry_after));
        assert_eq!(header(&cached_429, "x-ratelimit-remaining"), Some("0"));
        assert_eq!(header(&cached_429, "x-ratelimit-limit"), Some("3"));
    }
    assert_eq!(server.command_calls("evalsha"), calls, "the cached 429s made no call");
    assert_eq!(cached.len(), 1);
    clock.advance(Duration::from_secs(1)); // the next minute
    let next = send(&app, get_from("/", [1, 0, 0, 1])).await;
    assert_eq!(next.status(), StatusCode::OK);
    assert_eq!(header(&next, "x-ratelimit-remaining"), Some("2"));
    assert_eq!(server.command_calls("evalsha"), calls + 1);
}

/// A smaller cost on a bucket can fit before a larger cost's wait ends: the cache
/// repeats the rejection of the cost it saw, and leaves other costs to Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smaller_cost_is_asked_of_redis() {
    let Some(server) = RedisServer::start() else { return };
    let clock = ManualClock::new(T0);
    let (_, cached) = on_clock(&server, &clock).await;
    let bucket = throttle::strategy::TokenBucket::new();
    let rate = Rate::per_second(10);
    let key = "throttle:cost:c:default";
    assert!(cached.hit(Hit::new(key, &bucket, rate, 10)).await.unwrap().allowed);
    clock.advance(Duration::from_millis(100)); // one token back
    let one = cached.hit(Hit::new(key, &bucket, rate, 1)).await.unwrap();
    assert!(one.allowed);
    let five = cached.hit(Hit::new(key, &bucket, rate, 5)).await.unwrap();
    assert_eq!((five.allowed, five.remaining, five.wait_ms), (false, 0, 500));
    // Remaining 0 is not 5 - 1 (it grows as tokens come back): not cached...
    assert!(cached.is_empty());
    let one_again = cached.hit(Hit::new(key, &bucket, rate, 1)).await.unwrap();
    assert_eq!((one_again.allowed, one_again.wait_ms), (false, 100));
    // ...but a cost-1 rejection (remaining 0) is.
    assert_eq!(cached.len(), 1);
    let calls = server.command_calls("evalsha");
    clock.advance(Duration::from_millis(40));
    assert_eq!(cached.hit(Hit::new(key, &bucket, rate, 1)).await.unwrap().wait_ms, 60);
    assert_eq!(server.command_calls("evalsha"), calls, "cost 1 answered locally");
    let two = cached.hit(Hit::new(key, &bucket, rate, 2)).await.unwrap();
    assert_eq!((two.allowed, two.wait_ms), (false, 160));
    assert_eq!(server.command_calls("evalsha"), calls + 1, "cost 2 asked Redis");
    clock.advance(Duration::from_millis(60));
    assert!(cached.hit(Hit::new(key, &bucket, rate, 1)).await.unwrap().allowed, "admitted the moment Redis would");
}

/// A strategy of your own makes no promise about its waits: never cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_strategy_is_never_cached() {
    let Some(server) = RedisServer::start() else { return };
    let clock = ManualClock::new(T0);
    let (_, cached) = on_clock(&server, &clock).await;
    let user = UserStrategy(StrategyKind::FixedWindow.build());
    let rate = Rate::per_minute(1);
    assert!(cached.hit(Hit::new("throttle:user:c:default", &user, rate, 1)).await.unwrap().allowed);
    let calls = server.command_calls("evalsha");
    for _ in 0..3 {
        assert!(!cached.hit(Hit::new("throttle:user:c:default", &user, rate, 1)).await.unwrap().allowed);
    }
    assert_eq!(server.command_calls("evalsha"), calls + 3);
    assert!(cached.is_empty());
}

/// `reset` through the cache forgets the rejection at once; `stat` always reads Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_forgets_the_cached_rejection_and_stat_reads_redis() {
    let Some(server) = RedisServer::start() else { return };
    let clock = ManualClock::new(T0);
    let (plain, cached) = on_clock(&server, &clock).await;
    let gcra = throttle::strategy::Gcra::new();
    let rate = Rate::per_hour(2);
    let key = "throttle:reset:c:default";
    for _ in 0..2 {
        assert!(cached.hit(Hit::new(key, &gcra, rate, 1)).await.unwrap().allowed);
    }
    assert!(!cached.hit(Hit::new(key, &gcra, rate, 1)).await.unwrap().allowed);
    assert_eq!(cached.len(), 1);
    assert_eq!(
        cached.stat(Key::from(key), &gcra, rate).await.unwrap(),
        plain.stat(Key::from(key), &gcra, rate).await.unwrap()
    );
    cached.reset(Key::from(key)).await.unwrap();
    assert!(cached.is_empty());
    assert_eq!(cached.stat(Key::from(key), &gcra, rate).await.unwrap().remaining, 2);
    assert!(cached.hit(Hit::new(key, &gcra, rate, 1)).await.unwrap().allowed, "admitted right after the reset");
}

/// A backend whose answers wait for a gate to open: lets a test deliver a rejection
/// decided before a reset only after the reset returned.
#[derive(Debug, Clone)]
struct Gated {
    inner: RedisBackend,
    gate: Arc<tokio::sync::Semaphore>,
}

impl Backend for Gated {
    fn namespace(&self) -> &str {
        self.inner.namespace()
    }
    fn hit<'a>(&'a self, hit: Hit<'a>) -> Reply<'a, Decision> {
        Reply::pending(async move {
            let decision = self.inner.hit(hit).await;
            self.gate.acquire().await.expect("gate").forget();
            decision
        })
    }
    fn stat<'a>(&'a self, key: Key<'a>, strategy: &'a dyn DynStrategy, rate: Rate) -> Reply<'a, Snapshot> {
        self.inner.stat(key, strategy, rate)
    }
    fn reset<'a>(&'a self, key: Key<'a>) -> Reply<'a, ()> {
        self.inner.reset(key)
    }
}

/// A rejection Redis gave before a reset, delivered after it, is not cached: the
/// next hit asks Redis (and is admitted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_in_flight_during_a_reset_is_not_cached() {
    let Some(server) = RedisServer::start() else { return };
    let clock = ManualClock::new(T0);
    let gate = Arc::new(tokio::sync::Semaphore::new(1));
    let inner = Gated { inner: redis(&server).await.with_clock(clock.clone()), gate: gate.clone() };
    let cached = Arc::new(DenyCache::builder(inner).clock(clock.clone()).build().unwrap());
    let window = throttle::strategy::FixedWindow;
    let rate = Rate::per_minute(1);
    let key = "throttle:race:c:default";
    assert!(cached.hit(Hit::new(key, &window, rate, 1)).await.unwrap().allowed); // uses the gate's one permit
    let calls = server.command_calls("evalsha");
    let in_flight = tokio::spawn({
        let cached = cached.clone();
        async move { cached.hit(Hit::new(key, &throttle::strategy::FixedWindow, rate, 1)).await.unwrap() }
    });
    // Redis has rejected it (the key is at its limit) once the script ran.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.command_calls("evalsha") == calls {
        assert!(Instant::now() < deadline, "the hit never reached Redis");
        tokio::task::yield_now().await;
    }
    cached.reset(Key::from(key)).await.unwrap();
    gate.add_permits(1);
    assert!(!in_flight.await.unwrap().allowed, "Redis rejected it before the reset");
    assert!(cached.is_empty(), "a rejection older than the reset is not remembered");
    gate.add_permits(1);
    assert!(cached.hit(Hit::new(key, &window, rate, 1)).await.unwrap().allowed);
}

/// Stacked limits: delegated to Redis's one-call decision (the cache decides in Redis's
/// store, so a throttle on the plain backend stacks with one on the cache); a first
/// limit whose rejection is cached answers locally; rejected requests consume nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stacked_limits_still_decide_together() {
    let Some(server) = RedisServer::start() else { return };
    let plain = redis(&server).await;
    let cached = DenyCache::new(plain.clone());
    assert!(cached.shares_store_with(&plain), "the cache decides in Redis's store");
    assert!(cached.shares_store_with(&DenyCache::new(plain.clone())), "and so does another cache on it");
    assert!(!plain.shares_store_with(&cached), "Redis knows only its own clones: throttles ask both ways");
    let daily = HttpThrottle::builder("cache:stack:daily").rate("3/min").backend(cached.clone()).build().unwrap();
    let burst = HttpThrottle::builder("cache:stack:burst")
        .rate("10/min")
        .strategy(throttle::strategy::TokenBucket::new())
        .backend(plain.clone())
        .build()
        .unwrap();
    let pair = Arc::new([daily, burst]);
    let (warm, _) = get_from("/", [1, 0, 0, 8]).into_parts();
    throttle::hit_all(&pair[..], &warm).await.unwrap(); // loads the script
    let (parts, _) = get_from("/", [1, 0, 0, 7]).into_parts();
    let parts = Arc::new(parts);
    let before = server.command_calls("evalsha");
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (pair, parts) = (pair.clone(), parts.clone());
            tokio::spawn(async move { throttle::hit_all(&pair[..], &*parts).await.is_ok() })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await.unwrap());
    }
    assert_eq!(admitted, 3);
    let calls = server.command_calls("evalsha") - before;
    assert!((4..=32).contains(&calls), "one call per request at most, both limits together: {calls}");
    let mut remaining = Vec::new();
    for throttle in pair.iter() {
        remaining.push(throttle.stat(&*parts).await.unwrap().unwrap().hits_remaining);
    }
    assert_eq!(remaining, [0, 7], "rejected requests consumed nothing from the burst limit");
    // One rejection alone: whatever the racing calls above left in the cache (1 run in
    // 20 left nothing), this one is learned.
    assert!(throttle::hit_all(&pair[..], &*parts).await.is_err());
    // The daily limit's rejection is cached now: a stacked request costs no call.
    let before = server.command_calls("evalsha");
    assert!(throttle::hit_all(&pair[..], &*parts).await.is_err());
    assert_eq!(server.command_calls("evalsha"), before);
}

/// 64 tasks on 4 threads hit 40 clients through one small cache (16 keys: eviction
/// runs all the time), for every built-in strategy: exactly the limit admitted per
/// client, far fewer calls than hits, and never more keys than the capacity.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_many_clients_exact_and_bounded() {
    let Some(server) = RedisServer::start() else { return };
    let cached = DenyCache::builder(redis(&server).await).capacity(16).build().unwrap();
    let rate = Rate::per_day(5); // nothing refills while the test runs
    for kind in StrategyKind::ALL {
        let strategy = kind.build();
        let before = server.command_calls("evalsha");
        let tasks: Vec<_> = (0..64u64)
            .map(|task| {
                let (cached, strategy) = (cached.clone(), strategy.clone());
                tokio::spawn(async move {
                    let mut admitted = vec![0u64; 40];
                    let mut peak = 0;
                    for n in 0..60u64 {
                        let client = ((task * 7 + n * 13) % 40) as usize;
                        let key = format!("throttle:many:{}-{client}:default", kind.name());
                        let decision = cached.hit(Hit::new(&key, &*strategy, rate, 1)).await.expect("redis answers");
                        admitted[client] += u64::from(decision.allowed);
                        peak = peak.max(cached.len());
                    }
                    (admitted, peak)
                })
            })
            .collect();
        let mut per_client = vec![0u64; 40];
        for task in tasks {
            let (admitted, peak) = task.await.expect("task");
            assert!(peak <= 16, "{}: {peak} keys cached", kind.name());
            for (total, n) in per_client.iter_mut().zip(admitted) {
                *total += n;
            }
        }
        assert!(per_client.iter().all(|&n| n == 5), "{}: {per_client:?}", kind.name());
        let calls = server.command_calls("evalsha") - before;
        assert!(calls < 64 * 60, "{}: the cache answered some: {calls} calls", kind.name());
    }
}

/// On Redis server time, the cache's deadline (measured locally from the moment the
/// hit was sent) never outlives Redis's: whenever the cache rejects, Redis, asked right
/// after, still has at least as long to wait (within 1 ms of rounding).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_server_time_a_cached_wait_never_outlives_redis() {
    let Some(server) = RedisServer::start() else { return };
    let plain = redis(&server).await;
    let cached = DenyCache::new(plain.clone());
    let rate = Rate::per_millis(2, 200);
    for kind in [StrategyKind::FixedWindow, StrategyKind::TokenBucket, StrategyKind::SlidingWindowLog] {
        let strategy = kind.build();
        let key = format!("throttle:server-time:{}:default", kind.name());
        let (mut rejected, mut admitted) = (0, 0);
        let before = server.command_calls("evalsha");
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(600) {
            let sent = Instant::now();
            let decision = cached.hit(Hit::new(&key, &*strategy, rate, 1)).await.unwrap();
            if decision.allowed {
                admitted += 1;
                continue;
            }
            rejected += 1;
            let redis_wait = plain.stat(Key::from(&key), &*strategy, rate).await.unwrap().wait_ms;
            let asked = sent.elapsed().as_millis() as u64;
            assert!(
                decision.wait_ms <= asked + redis_wait + 1,
                "{}: cached wait {} ms, Redis {redis_wait} ms asked {asked} ms later",
                kind.name(),
                decision.wait_ms
            );
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        let hits = admitted + rejected;
        let calls = server.command_calls("evalsha") - before - rejected; // minus the stats
        assert!(admitted >= 4, "{}: windows keep admitting: {admitted}", kind.name());
        assert!(calls < hits, "{}: some rejections were local ({calls} calls, {hits} hits)", kind.name());
    }
}
