//! Batched decisions on Redis (`RedisBackend::with_batching`, on by default): concurrent
//! decisions share script calls and stay exact, a batch decides each hit as the
//! unbatched path would, and failures stay with the decisions they belong to. Runs
//! behind the deny cache too with `THROTTLE_TEST_DENY_CACHE=1`.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::redis_server::{RedisCluster, RedisServer, every_strategy};
use support::test_redis::TestRedis;
use support::{T0, get_from};
use throttle::backend::{Backend, Batching, Hit, Key, RedisBackend};
use throttle::strategy::{Decision, DynStrategy, StrategyKind, from_name};
use throttle::{HttpThrottle, OnError, Rate, ThrottleError, backend::ManualClock};

/// Long enough for spawned tasks to reach a paused server's queue on a busy machine.
const SETTLE: Duration = Duration::from_millis(400);

async fn batched(server: &RedisServer) -> TestRedis {
    let redis = RedisBackend::connect(&server.url()).await.expect("connects");
    assert!(redis.batching().is_on(), "batching is on by default");
    TestRedis::wrap(redis)
}

/// One call in flight at most, up to 128 decisions per call: while one call waits on
/// a paused Redis, every later decision queues for the next batch, deterministically.
fn one_slot() -> Batching {
    Batching::new(128, 1).expect("valid batching")
}

/// Pauses `server` with one call on the wire (a hit on a warm key, sent at once), so
/// that every decision made until [`resume`] queues behind it as one batch.
async fn pause_behind_a_call(server: &RedisServer, backend: &TestRedis) -> tokio::task::JoinHandle<()> {
    server.pause();
    let backend = backend.clone();
    let holder = tokio::spawn(async move {
        let strategy = StrategyKind::Gcra.build();
        let key = format!("{}:warm:holder:default", backend.namespace());
        let decision =
            backend.hit(Hit::new(&key, &*strategy, Rate::per_day(1_000_000), 1)).await.expect("redis answers");
        assert!(decision.allowed);
    });
    tokio::time::sleep(SETTLE).await;
    holder
}

/// Loads the holder's script and the batch script before calls are counted.
async fn warm(backend: &TestRedis) {
    let strategy = StrategyKind::Gcra.build();
    let key = format!("{}:warm:holder:default", backend.namespace());
    concurrent_hits(backend, &key, &strategy, Rate::per_day(1_000_000), 32).await;
}

/// Resumes `server` and waits for the holding call.
async fn resume(server: &RedisServer, holder: tokio::task::JoinHandle<()>) {
    server.resume();
    holder.await.expect("the holding call");
}

/// `tasks` tasks, each one hit of cost 1 on `key`; how many were admitted.
async fn concurrent_hits(
    backend: &TestRedis,
    key: &str,
    strategy: &Arc<dyn DynStrategy>,
    rate: Rate,
    tasks: usize,
) -> usize {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (backend, strategy, key) = (backend.clone(), strategy.clone(), key.to_string());
            tokio::spawn(async move {
                backend.hit(Hit::new(&key, &*strategy, rate, 1)).await.expect("redis answers").allowed
            })
        })
        .collect();
    let mut admitted = 0;
    for handle in handles {
        admitted += usize::from(handle.await.expect("task"));
    }
    admitted
}

/// N concurrent tasks on one key and one connection admit exactly min(N, L), for every
/// strategy, in far fewer script calls than decisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_hits_on_one_key_admit_exactly_the_limit_in_few_calls() {
    let Some(server) = RedisServer::start() else { return };
    let redis = batched(&server).await;
    // Per day: nothing refills or rolls over while the test runs.
    let limit = 37;
    let rate = Rate::per_day(limit);
    for (name, strategy) in every_strategy() {
        // Load the strategy's script and the batch script first.
        concurrent_hits(&redis, &format!("throttle:warm:{name}:default"), &strategy, rate, 64).await;
        for tasks in [200, 20] {
            let key = format!("throttle:exact:{name}-{tasks}:default");
            let before = server.command_calls("evalsha");
            let admitted = concurrent_hits(&redis, &key, &strategy, rate, tasks).await;
            assert_eq!(admitted, tasks.min(limit as usize), "{name}: {tasks} tasks");
            let calls = server.command_calls("evalsha") - before;
            if name != "user_cas" && tasks == 200 {
                assert!(calls <= 100, "{name}: {calls} script calls for {tasks} decisions");
            }
        }
    }
}

/// One decision at a time (no concurrency): each is sent at once, as its strategy's own
/// script, so the batch script is never even loaded, and a hit costs what it did
/// without batching.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lone_decision_is_sent_at_once_as_its_own_script() {
    let Some(server) = RedisServer::start() else { return };
    let redis = batched(&server).await;
    let strategy: Arc<dyn DynStrategy> = StrategyKind::SlidingWindowLog.build();
    let rate = Rate::per_hour(5);
    let mut admitted = 0;
    for _ in 0..8 {
        admitted +=
            usize::from(redis.hit(Hit::new("throttle:lone:c:default", &*strategy, rate, 1)).await.unwrap().allowed);
    }
    assert_eq!(admitted, 5);
    assert_eq!(server.command_calls("script|load"), 1, "the strategy's script only");
    // The first call met NOSCRIPT and was repeated once the script was loaded.
    let calls = server.command_calls("evalsha");
    let cached = usize::from(support::test_redis::deny_cache_on()) * 2; // the last two rejections
    assert_eq!(calls as usize, 8 + 1 - cached, "one call per decision");
}

/// On a Cluster, a batch is split by slot: clients whose keys live on different
/// masters are each admitted exactly their limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cluster_batches_by_slot_and_stays_exact() {
    let Some(cluster) = RedisCluster::start() else { return };
    let redis = TestRedis::wrap(RedisBackend::connect_cluster(cluster.urls()).await.expect("connects"));
    let limit = 25u64;
    let rate = Rate::per_day(limit);
    let clients: Vec<String> = (0..6).map(|i| format!("client-{i}")).collect();
    for kind in StrategyKind::ALL {
        let strategy = kind.build();
        let handles: Vec<_> = clients
            .iter()
            .flat_map(|client| (0..60).map(move |_| client.clone()))
            .map(|client| {
                let (redis, strategy) = (redis.clone(), strategy.clone());
                tokio::spawn(async move {
                    let key = format!("throttle:slots:{kind}:{client}:default");
                    let decision = redis.hit(Hit::new(&key, &*strategy, rate, 1)).await.expect("redis answers");
                    (client, decision.allowed)
                })
            })
            .collect();
        let mut admitted: BTreeMap<String, u64> = BTreeMap::new();
        for handle in handles {
            let (client, allowed) = handle.await.expect("task");
            *admitted.entry(client).or_default() += u64::from(allowed);
        }
        assert!(admitted.values().all(|&n| n == limit), "{kind}: {admitted:?}");
    }
    let masters: Vec<u64> = cluster.nodes.iter().map(|node| node.command_calls("evalsha")).collect();
    assert!(masters.iter().filter(|&&calls| calls > 0).count() >= 2, "the clients span masters: {masters:?}");
    let decisions = StrategyKind::ALL.len() * clients.len() * 60;
    let calls: u64 = masters.iter().sum();
    assert!(calls as usize <= decisions / 2, "{decisions} decisions in {calls} script calls");
}

/// One request of the mixed batch: a strategy, rate and cost on a key of its own,
/// hit `times` times.
struct Mixed {
    key: String,
    strategy: Arc<dyn DynStrategy>,
    rate: Rate,
    cost: u64,
    times: usize,
}

fn mixed(namespace: &str) -> Vec<Mixed> {
    let specs = [
        ("fixed_window", Rate::per_minute(10), 3, 5),
        ("sliding_window_counter", Rate::per_minute(10), 2, 7),
        ("sliding_window_log", Rate::per_hour(9), 2, 6),
        ("sliding_window_log", Rate::per_hour(9), 1, 12),
        ("token_bucket(burst = 6)", Rate::per_second(2), 2, 5),
        ("token_bucket_debt(max_debt = 4)", Rate::per_second(3), 3, 5),
        ("leaky_bucket", Rate::per_minute(8), 3, 4),
        ("leaky_bucket_queue", Rate::per_minute(8), 2, 6),
        ("gcra(burst = 5)", Rate::per_second(5), 2, 4),
        ("gcra", Rate::per_minute(4), 1, 6),
        ("fixed_window", Rate::per_minute(3), 5, 2), // larger than the limit: never
    ];
    specs
        .iter()
        .enumerate()
        .map(|(i, &(spec, rate, cost, times))| Mixed {
            key: format!("{namespace}:mixed:c{i}:default"),
            strategy: from_name(spec).expect("valid spec"),
            rate,
            cost,
            times,
        })
        .collect()
}

/// A batch mixing strategies, rates, costs and keys decides each hit as the unbatched
/// path does: per key, the same decisions (hits on one key are identical, so their
/// order cannot change the sequence) and the same state afterwards. Redis is paused
/// while the hits are sent, so all but the first calls' worth queue into one batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mixed_batch_decides_each_hit_as_the_unbatched_path() {
    let Some(server) = RedisServer::start() else { return };
    let clock = ManualClock::new(T0);
    let connect = |namespace: &'static str, batching: Batching| {
        let url = server.url();
        let clock = clock.clone();
        async move {
            let redis = RedisBackend::connect(&url).await.expect("connects").with_namespace(namespace).unwrap();
            TestRedis::wrap(redis.with_batching(batching)).with_clock(clock)
        }
    };
    let batched = connect("batched", one_slot()).await;
    let unbatched = connect("single", Batching::OFF).await;
    // Load the batch script and the holder's before counting calls.
    for backend in [&batched, &unbatched] {
        warm(backend).await;
    }

    let requests = Arc::new(mixed("batched"));
    let total: usize = requests.iter().map(|r| r.times).sum();
    let before = server.command_calls("evalsha");
    let holder = pause_behind_a_call(&server, &batched).await;
    let mut handles = Vec::new();
    for (index, request) in requests.iter().enumerate() {
        for _ in 0..request.times {
            let (batched, requests) = (batched.clone(), requests.clone());
            handles.push(tokio::spawn(async move {
                let r = &requests[index];
                (index, batched.hit(Hit::new(&r.key, &*r.strategy, r.rate, r.cost)).await.expect("redis answers"))
            }));
        }
    }
    tokio::time::sleep(SETTLE).await;
    resume(&server, holder).await;
    let mut got: Vec<Vec<Decision>> = vec![Vec::new(); requests.len()];
    for handle in handles {
        let (index, decision) = handle.await.expect("task");
        got[index].push(decision);
    }
    let calls = server.command_calls("evalsha") - before;
    assert_eq!(calls, 2, "the holder's call, then {total} decisions in one");

    for (request, mut got) in mixed("single").iter().zip(got) {
        let mut expected = Vec::new();
        for _ in 0..request.times {
            expected.push(
                unbatched.hit(Hit::new(&request.key, &*request.strategy, request.rate, request.cost)).await.unwrap(),
            );
        }
        let name = request.strategy.name();
        let order = |d: &Decision| (!d.allowed, u64::MAX - d.remaining, d.wait_ms, d.reset_ms);
        got.sort_by_key(order);
        expected.sort_by_key(order);
        assert_eq!(got, expected, "{name} at {:?}, cost {}", request.rate, request.cost);
        let batched_key = request.key.replacen("single", "batched", 1);
        assert_eq!(
            batched.stat(Key::from(&batched_key), &*request.strategy, request.rate).await.unwrap(),
            unbatched.stat(Key::from(&request.key), &*request.strategy, request.rate).await.unwrap(),
            "{name}: the state left behind"
        );
    }
}

/// A decision whose own step fails inside Redis (its key holds a hash) fails alone:
/// the other decisions of its batch are made, and the failing one reaches its
/// throttle's error policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_failing_decision_does_not_fail_its_batch() {
    let Some(server) = RedisServer::start() else { return };
    let redis = RedisBackend::connect(&server.url()).await.expect("connects");
    let redis = TestRedis::wrap(redis.with_batching(one_slot()));
    let strategy: Arc<dyn DynStrategy> = StrategyKind::FixedWindow.build();
    let rate = Rate::per_hour(100);
    warm(&redis).await;
    concurrent_hits(&redis, "throttle:warm:c:default", &strategy, rate, 32).await;
    server.cli(&["HSET", "throttle:broken:{victim}:default", "field", "value"]);

    let before = server.command_calls("evalsha");
    let holder = pause_behind_a_call(&server, &redis).await;
    let handles: Vec<_> = (0..40)
        .map(|i| {
            let (redis, strategy) = (redis.clone(), strategy.clone());
            // Hit 20 lands in the middle of the batch.
            let key = if i == 20 {
                "throttle:broken:victim:default".to_string()
            } else {
                format!("throttle:ok:c{i}:default")
            };
            tokio::spawn(async move { (i, redis.hit(Hit::new(&key, &*strategy, rate, 1)).await) })
        })
        .collect();
    tokio::time::sleep(SETTLE).await;
    resume(&server, holder).await;
    for handle in handles {
        match handle.await.expect("task") {
            (20, outcome) => {
                let error = outcome.expect_err("a hash is no state");
                assert!(error.to_string().contains("WRONGTYPE"), "{error}");
            }
            (i, outcome) => {
                let decision = outcome.unwrap_or_else(|e| panic!("hit {i}: {e}"));
                assert_eq!((decision.allowed, decision.remaining), (true, 99), "hit {i}");
            }
        }
    }
    assert_eq!(server.command_calls("evalsha") - before, 2, "the holder's call, then the 40 hits in one");

    // Through a throttle: the policy answers for the broken key, others pass.
    let api = HttpThrottle::builder("broken")
        .rate("100/h")
        .backend(redis)
        .on_error(OnError::Throttle(Duration::from_secs(3)))
        .build()
        .unwrap();
    server.cli(&["HSET", "throttle:broken:{ip=10.0.0.66}:default", "field", "value"]);
    let err = api.hit(&get_from("/", [10, 0, 0, 66])).await.unwrap_err();
    assert_eq!(err.as_throttled().map(|t| t.retry_after_secs()), Some(3));
    assert!(api.hit(&get_from("/", [10, 0, 0, 67])).await.unwrap().is_counted());
}

/// A call that fails as a whole (Redis killed while a batch waits) fails every
/// decision it carried, each through its own throttle's policy, within the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_call_fails_each_decision_through_its_policy() {
    let Some(mut server) = RedisServer::start() else { return };
    let redis = batched(&server).await;
    let timeout = Duration::from_secs(3);
    let build = |uid: &str, policy: OnError| {
        HttpThrottle::builder(uid)
            .rate("100/min")
            .backend(redis.clone())
            .timeout(timeout)
            .on_error(policy)
            .build()
            .unwrap()
    };
    let throttles = Arc::new([
        build("fail:allow", OnError::Allow),
        build("fail:throttle", OnError::Throttle(Duration::from_secs(2))),
        build("fail:raise", OnError::Raise),
    ]);
    for throttle in throttles.iter() {
        assert!(throttle.hit(&get_from("/", [10, 3, 0, 1])).await.unwrap().is_counted());
    }
    server.pause();
    let started = Instant::now();
    let handles: Vec<_> = (0..30u8)
        .map(|i| {
            let throttles = throttles.clone();
            tokio::spawn(async move {
                let policy = usize::from(i % 3);
                (policy, throttles[policy].hit(&get_from("/", [10, 3, 1, i])).await)
            })
        })
        .collect();
    tokio::time::sleep(SETTLE).await;
    server.stop();
    for handle in handles {
        match handle.await.expect("task") {
            (0, Ok(admitted)) => assert!(!admitted.is_counted(), "allowed through, uncounted"),
            (1, Err(e)) => assert_eq!(e.as_throttled().map(|t| t.retry_after_secs()), Some(2)),
            (2, Err(ThrottleError::Backend(_))) => {}
            (policy, other) => panic!("policy {policy}: {other:?}"),
        }
    }
    assert!(started.elapsed() < timeout, "the failure answered before the timeout: {:?}", started.elapsed());
}

/// A queued decision whose caller gave up (its timeout) is never sent: it consumes no
/// quota after its policy has answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn decisions_abandoned_in_the_queue_are_never_sent() {
    let Some(server) = RedisServer::start() else { return };
    let redis = RedisBackend::connect(&server.url()).await.expect("connects");
    let redis = TestRedis::wrap(redis.with_batching(one_slot()));
    let strategy: Arc<dyn DynStrategy> = StrategyKind::FixedWindow.build();
    let rate = Rate::per_hour(50);
    let key = "throttle:abandon:c:default";
    warm(&redis).await;
    let holder = pause_behind_a_call(&server, &redis).await;
    // Twenty that give up, queued behind the holder's call, and one that waits.
    let quitters: Vec<_> = (0..20)
        .map(|_| {
            let (redis, strategy) = (redis.clone(), strategy.clone());
            tokio::spawn(async move {
                tokio::time::timeout(Duration::from_millis(100), redis.hit(Hit::new(key, &*strategy, rate, 1)))
                    .await
                    .is_err()
            })
        })
        .collect();
    let stayer = {
        let (redis, strategy) = (redis.clone(), strategy.clone());
        tokio::spawn(async move { redis.hit(Hit::new(key, &*strategy, rate, 1)).await.expect("redis answers") })
    };
    for quitter in quitters {
        assert!(quitter.await.expect("task"), "timed out in the queue");
    }
    resume(&server, holder).await;
    let decision = stayer.await.expect("task");
    assert_eq!((decision.allowed, decision.remaining), (true, 49), "the one that waited was decided, alone");
    let remaining = redis.stat(Key::from(key), &*strategy, rate).await.unwrap().remaining;
    assert_eq!(remaining, 49, "the abandoned decisions were never made");
}

/// With batching off, every decision is its own call, and still exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batching_off_is_one_call_per_decision() {
    let Some(server) = RedisServer::start() else { return };
    let redis = RedisBackend::connect(&server.url()).await.expect("connects").with_batching(Batching::OFF);
    let redis = TestRedis::wrap(redis);
    let strategy: Arc<dyn DynStrategy> = StrategyKind::Gcra.build();
    let rate = Rate::per_day(30);
    concurrent_hits(&redis, "throttle:warm:c:default", &strategy, rate, 1).await;
    let before = server.command_calls("evalsha");
    assert_eq!(concurrent_hits(&redis, "throttle:off:c:default", &strategy, rate, 30).await, 30);
    assert_eq!(server.command_calls("evalsha") - before, 30);
}
