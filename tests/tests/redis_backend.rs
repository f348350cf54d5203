//! The Redis backend against a real `redis-server` on a free loopback port.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::redis_server::{RedisServer, every_strategy, hammer};
use support::test_redis::{TestRedis, deny_cache_on};
use support::*;
use throttle::backend::{Backend, Hit, Key, RedisBackend};
use throttle::strategy::{Decision, Metadata, Snapshot, Strategy};
use throttle::{
    HttpThrottle, OnError, Rate, ThrottleError,
    backend::{ManualClock, MemoryBackend},
};

/// The backend under test: behind a deny cache when `THROTTLE_TEST_DENY_CACHE=1`.
async fn backend(server: &RedisServer) -> TestRedis {
    TestRedis::connect(&server.url()).await.expect("connects")
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(server.url()).expect("url");
    client.get_multiplexed_async_connection().await.expect("connects")
}

/// `ns:uid:client:scope` as stored: the client is the hash tag.
fn stored(key: &str) -> String {
    let (head, scope) = key.rsplit_once(':').expect("scope");
    let (prefix, client) = head.rsplit_once(':').expect("client");
    format!("{prefix}:{{{client}}}:{scope}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_with_one_script_call_per_decision() {
    let Some(server) = RedisServer::start() else { return };
    let api = HttpThrottle::builder("redis:basic").rate("5/min").backend(backend(&server).await).build().unwrap();
    let request = get_from("/", [1, 0, 0, 1]);
    // The first call of each script loads it (EVALSHA, NOSCRIPT, SCRIPT LOAD, EVALSHA);
    // count after the decision script and the state script (stats) are loaded.
    api.hit(&get_from("/", [9, 9, 9, 9])).await.unwrap();
    api.stat(&get_from("/", [9, 9, 9, 9])).await.unwrap();
    let before = server.command_calls("evalsha");
    for expected in (0..5).rev() {
        assert_eq!(api.hit(&request).await.unwrap().remaining(), Some(expected));
    }
    let err = api.hit(&request).await.unwrap_err();
    let wait = err.as_throttled().expect("a rejection").wait_ms();
    assert!(wait > 0 && wait <= 60_000, "{wait}");
    assert_eq!(server.command_calls("evalsha") - before, 6, "one EVALSHA per decision");
    assert_eq!(server.command_calls("eval"), 0);

    let stat = api.stat(&request).await.unwrap().unwrap();
    assert_eq!(stat.hits_remaining, 0);
    assert!(stat.wait_ms > 0);
    assert_eq!(server.command_calls("evalsha") - before, 7, "stat is one read-only call too");

    // The key carries the client as hash tag and expires with its window.
    let keys = server.cli(&["KEYS", "*1.0.0.1*"]);
    assert_eq!(keys.trim(), "throttle:redis:basic:{ip=1.0.0.1}:default");
    let ttl: i64 = server.cli(&["PTTL", keys.trim()]).trim().parse().unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
}

/// Every strategy: one EVALSHA per decision and per stat (compare-and-set: one more
/// per admitted hit), no EVAL, and no call at all for a built-in at a degenerate rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_strategy_makes_one_script_call_per_decision() {
    let Some(server) = RedisServer::start() else { return };
    let redis = backend(&server).await;
    let rate = Rate::per_hour(5);
    for (name, strategy) in every_strategy() {
        // Load the strategy's script and the state script first.
        assert!(
            redis
                .hit(Hit::new(&format!("throttle:calls:warm-{name}:default"), &*strategy, rate, 1))
                .await
                .unwrap()
                .allowed
        );
        redis.stat(Key::from(&format!("throttle:calls:warm-{name}:default")), &*strategy, rate).await.unwrap();
        let key = format!("throttle:calls:{name}:default");
        let before = server.command_calls("evalsha");
        let mut admitted = 0;
        for _ in 0..8 {
            admitted += u64::from(redis.hit(Hit::new(&key, &*strategy, rate, 1)).await.unwrap().allowed);
        }
        let stat = redis.stat(Key::from(&key), &*strategy, rate).await.unwrap();
        assert_eq!((admitted, stat.remaining), (5, 0), "{name}");
        let per_admitted = if name == "user_cas" { 2 } else { 1 };
        // Behind the deny cache, a built-in's first rejection is remembered: the next
        // two are answered without a call.
        let per_rejections = if deny_cache_on() && name != "user_cas" { 1 } else { 3 };
        assert_eq!(server.command_calls("evalsha") - before, 5 * per_admitted + per_rejections + 1, "{name}");

        let before = server.command_calls("evalsha");
        assert!(redis.hit(Hit::new(&key, &*strategy, Rate::UNLIMITED, 1)).await.unwrap().allowed, "{name}");
        assert!(!redis.hit(Hit::new(&key, &*strategy, Rate::per_minute(0), 1)).await.unwrap().allowed, "{name}");
        // A built-in needs no state for them; a user strategy's meaning is its own
        // (here: read + write for unlimited, read for closed).
        let expected = if name == "user_cas" { 3 } else { 0 };
        assert_eq!(server.command_calls("evalsha") - before, expected, "{name}: degenerate rates");
    }
    assert_eq!(server.command_calls("eval"), 0);
}

/// `redis+unix://` URLs reach the same server, and the same keys, as TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_over_a_unix_socket() {
    let Some(server) = RedisServer::start() else { return };
    let unix = TestRedis::connect(&server.unix_url()).await.expect("connects over the socket");
    let tcp = backend(&server).await;
    let strategy = throttle::strategy::TokenBucket::new();
    let rate = Rate::per_hour(3);
    assert!(unix.hit(Hit::new("throttle:unix:c:default", &strategy, rate, 2)).await.unwrap().allowed);
    assert_eq!(tcp.stat(Key::from("throttle:unix:c:default"), &strategy, rate).await.unwrap().remaining, 1);
    assert!(RedisBackend::connect("redis+unix:///nonexistent/redis.sock").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_reloaded_after_script_flush() {
    let Some(server) = RedisServer::start() else { return };
    let api = HttpThrottle::builder("redis:noscript").rate("5/min").backend(backend(&server).await).build().unwrap();
    let request = get_from("/", [1, 0, 0, 2]);
    api.hit(&request).await.unwrap();
    assert_eq!(server.cli(&["SCRIPT", "FLUSH"]).trim(), "OK");
    assert_eq!(api.hit(&request).await.unwrap().remaining(), Some(3));
    assert_eq!(api.stat(&request).await.unwrap().unwrap().hits_remaining, 3);
}

/// Four app instances, each on its own connection, hammer one key from many tasks:
/// exactly the limit is admitted, for every strategy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_admit_exactly_the_limit_for_every_strategy() {
    let Some(server) = RedisServer::start() else { return };
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(backend(&server).await);
    }
    // Per day: nothing refills or rolls over while the test runs.
    let rate = Rate::per_day(40);
    for (name, strategy) in every_strategy() {
        let key = format!("throttle:exact:{name}:default");
        let admitted = hammer(&instances, &key, strategy.clone(), rate, 8, 6).await;
        assert_eq!(admitted, 40, "{name}: 4 instances x 8 tasks x 6 hits");
        assert_eq!(instances[0].stat(Key::from(&key), &*strategy, rate).await.unwrap().remaining, 0, "{name}");
    }
}

/// Stored text that is not a state of the strategy reads as a fresh state, in
/// decisions and stats alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_state_reads_as_fresh() {
    let Some(server) = RedisServer::start() else { return };
    let clock = ManualClock::new(T0);
    let redis = backend(&server).await.with_clock(clock.clone());
    let mut raw = raw(&server).await;
    let rate = Rate::per_minute(10);
    let garbage = [
        "garbage",
        "",
        ",",
        "1,2",
        "12,5,5",
        "-1,5,5",
        "4,-3,5",
        "1,9007199254740993,1",
        "4,1e400,1",
        "nan",
        "4,,5",
        "0x1,1,1",
        "3,5,1,4,1",
        "7,5",
        "8,1,2,3",
    ];
    for (name, strategy) in every_strategy() {
        for (i, text) in garbage.iter().enumerate() {
            let key = format!("throttle:corrupt:{name}-{i}:default");
            let _: () = redis::cmd("SET").arg(stored(&key)).arg(*text).query_async(&mut raw).await.unwrap();
            let fresh = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
            let at = format!("{name} reading {text:?}");
            assert_eq!(
                redis.stat(Key::from(&key), &*strategy, rate).await.unwrap(),
                fresh.stat_now(&key, &*strategy, rate),
                "stat: {at}"
            );
            let decision = redis.hit(Hit::new(&key, &*strategy, rate, 3)).await.unwrap();
            assert_eq!(decision, fresh.hit_now(&key, &*strategy, rate, 3), "hit: {at}");
            assert_eq!((decision.allowed, decision.remaining), (true, 7), "{at}");
        }
    }
}

/// Keys expire when their state is fresh again: a TTL no longer than the strategy's
/// horizon after a hit, and gone once that has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_when_their_state_is_fresh_again() {
    let Some(server) = RedisServer::start() else { return };
    let redis = backend(&server).await;
    let mut raw = raw(&server).await;
    // 5 per 2 s: one hit of cost 1 is forgotten after one period (windows), two
    // periods (sliding counter) or one emission interval of 400 ms (buckets, GCRA).
    let rate = Rate::per_millis(5, 2_000);
    for (name, strategy) in every_strategy() {
        let key = format!("throttle:ttl:{name}:default");
        assert!(redis.hit(Hit::new(&key, &*strategy, rate, 1)).await.unwrap().allowed);
        let horizon = match name.as_str() {
            "fixed_window" | "sliding_window_log" => 2_000,
            "sliding_window_counter" => 4_000,
            _ => 400,
        };
        let ttl: i64 = redis::cmd("PTTL").arg(stored(&key)).query_async(&mut raw).await.unwrap();
        assert!(0 < ttl && ttl <= horizon, "{name}: PTTL {ttl}, horizon {horizon}");
    }
    // And they do disappear: 5 per 100 ms is forgotten within 200 ms.
    let fast = Rate::per_millis(5, 100);
    let keys: Vec<String> = every_strategy().iter().map(|(name, _)| format!("throttle:gone:{name}:default")).collect();
    for ((_, strategy), key) in every_strategy().iter().zip(&keys) {
        assert!(redis.hit(Hit::new(key, &**strategy, fast, 5)).await.unwrap().allowed);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for key in &keys {
        let exists: u64 = redis::cmd("EXISTS").arg(stored(key)).query_async(&mut raw).await.unwrap();
        assert_eq!(exists, 0, "{key} outlived its state");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_forgets_one_key_or_a_whole_namespace() {
    let Some(server) = RedisServer::start() else { return };
    let shop = backend(&server).await.with_namespace("shop").unwrap();
    let blog = backend(&server).await.with_namespace("blog").unwrap();
    let rate = Rate::per_hour(2);
    let strategy = throttle::strategy::Gcra::new();
    let key = "shop:api:1.2.3.4:default";
    for _ in 0..2 {
        assert!(shop.hit(Hit::new(key, &strategy, rate, 1)).await.unwrap().allowed);
    }
    assert!(!shop.hit(Hit::new(key, &strategy, rate, 1)).await.unwrap().allowed);
    shop.reset(Key::from(key)).await.unwrap();
    assert!(shop.hit(Hit::new(key, &strategy, rate, 1)).await.unwrap().allowed, "reset restores the quota");

    // 2 500 more keys (several SCAN batches), one key of another namespace, one of none.
    let mut raw = raw(&server).await;
    let mut pipe = redis::pipe();
    for i in 0..2_500 {
        pipe.cmd("SET").arg(format!("shop:bulk:{{c{i}}}:default")).arg("1,0,0").ignore();
    }
    let _: () = pipe.query_async(&mut raw).await.unwrap();
    assert!(blog.hit(Hit::new("blog:api:1.2.3.4:default", &strategy, rate, 1)).await.unwrap().allowed);
    let _: () = redis::cmd("SET").arg("shopping").arg("x").query_async(&mut raw).await.unwrap();

    let before = server.command_calls("keys");
    assert_eq!(shop.reset_namespace().await.unwrap(), 2_501);
    assert_eq!(server.command_calls("keys"), before, "SCAN, never KEYS");
    assert!(server.command_calls("scan") > 2);
    let left = server.cli(&["--scan"]);
    let mut left: Vec<&str> = left.lines().collect();
    left.sort();
    left.dedup(); // SCAN may return a key more than once (while the keyspace rehashes)
    assert_eq!(left, ["blog:api:{1.2.3.4}:default", "shopping"]);
    assert_eq!(shop.reset_namespace().await.unwrap(), 0);
}

/// A strategy without `encode`/`decode` cannot live in Redis: a clear error, which
/// the throttle's error policy then handles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strategy_without_a_codec_is_a_clear_error() {
    #[derive(Debug)]
    struct Lifetime;
    impl Strategy for Lifetime {
        type State = u64;
        fn name(&self) -> &'static str {
            "lifetime"
        }
        fn decide(&self, spent: &mut u64, _: u64, rate: Rate, cost: u64) -> Decision {
            let allowed = *spent + cost <= rate.limit();
            *spent += if allowed { cost } else { 0 };
            Decision { allowed, remaining: rate.limit() - *spent, wait_ms: 0, reset_ms: 0 }
        }
        fn stat(&self, spent: &u64, _: u64, rate: Rate) -> Snapshot {
            Snapshot { remaining: rate.limit() - *spent, wait_ms: 0, reset_ms: 0, metadata: Metadata::None }
        }
        fn expires_at(&self, _: &u64, _: Rate) -> u64 {
            u64::MAX
        }
    }
    let Some(server) = RedisServer::start() else { return };
    let redis = backend(&server).await;
    let error = redis.hit(Hit::new("throttle:nocodec:c:default", &Lifetime, Rate::per_minute(5), 1)).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("strategy `lifetime` has no codec"), "{message}");
    assert!(message.contains("implement `Strategy::encode` and `Strategy::decode`"), "{message}");
    assert!(redis.stat(Key::from("throttle:nocodec:c:default"), &Lifetime, Rate::per_minute(5)).await.is_err());

    let api = HttpThrottle::builder("redis:nocodec")
        .rate("5/min")
        .strategy(Lifetime)
        .backend(redis)
        .on_error(OnError::Raise)
        .build()
        .unwrap();
    assert!(matches!(api.hit(&get_from("/", [1, 0, 0, 9])).await, Err(ThrottleError::Backend(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_follows_the_error_policy_and_recovers() {
    let Some(mut server) = RedisServer::start() else { return };
    let redis = backend(&server).await;
    let build = |uid: &str, policy: OnError| {
        HttpThrottle::builder(uid)
            .rate("100/min")
            .backend(redis.clone())
            .timeout(Duration::from_millis(300))
            .on_error(policy)
            .build()
            .unwrap()
    };
    let allow = build("redis:fault:allow", OnError::Allow);
    let closed = build("redis:fault:throttle", OnError::Throttle(Duration::from_secs(2)));
    let raise = build("redis:fault:raise", OnError::Raise);
    let request = get_from("/", [1, 0, 0, 3]);
    assert!(allow.hit(&request).await.unwrap().is_counted());

    for (state, action) in [("stopped", 0), ("paused", 1)] {
        if action == 0 {
            server.stop()
        } else {
            server.restart();
            server.pause()
        }
        let started = Instant::now();
        assert!(!allow.hit(&request).await.unwrap().is_counted(), "{state}: allowed through");
        let err = closed.hit(&request).await.unwrap_err();
        assert_eq!(err.as_throttled().map(|t| t.retry_after_secs()), Some(2), "{state}");
        assert!(matches!(raise.hit(&request).await, Err(ThrottleError::Backend(_))), "{state}");
        assert!(started.elapsed() < Duration::from_secs(3), "{state}: no request waits past its timeout");
        if action == 1 {
            server.resume();
        }
    }
    if !server_is_running(&server) {
        server.restart();
    }
    // The connection manager reconnects by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(admitted) = raise.hit(&request).await {
            assert!(admitted.is_counted());
            break;
        }
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Under continuous load from many tasks, Redis is stopped, restarted (empty, so
/// scripts reload) and paused: every hit answers within the timeout as its policy
/// says, nothing panics, and service recovers by itself each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_survives_stop_restart_and_pause() {
    let Some(mut server) = RedisServer::start() else { return };
    let redis = backend(&server).await;
    let timeout = Duration::from_millis(250);
    let build = |uid: &str, policy: OnError| {
        HttpThrottle::builder(uid)
            .rate("1000000/min")
            .strategy_name("token_bucket")
            .backend(redis.clone())
            .timeout(timeout)
            .on_error(policy)
            .build()
            .unwrap()
    };
    let throttles = Arc::new([
        build("redis:load:allow", OnError::Allow),
        build("redis:load:throttle", OnError::Throttle(Duration::from_secs(1))),
        build("redis:load:raise", OnError::Raise),
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..12u8)
        .map(|i| {
            let (throttles, stop) = (throttles.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut counted, mut failed, mut slowest) = (0u32, 0u32, Duration::ZERO);
                let request = get_from("/", [10, 0, 0, i]);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let policy = n % 3;
                    n += 1;
                    let started = Instant::now();
                    let outcome = throttles[policy].hit(&request).await;
                    slowest = slowest.max(started.elapsed());
                    match (policy, outcome) {
                        (_, Ok(admitted)) if admitted.is_counted() => counted += 1,
                        (0, Ok(_)) => failed += 1, // allowed through, uncounted
                        (1, Err(e)) if e.as_throttled().map(|t| t.retry_after_secs()) == Some(1) => failed += 1,
                        (2, Err(ThrottleError::Backend(_))) => failed += 1,
                        (policy, other) => panic!("policy {policy}: unexpected {other:?}"),
                    }
                    tokio::task::yield_now().await;
                }
                (counted, failed, slowest)
            })
        })
        .collect();

    let served_since = |mark: Instant| {
        let throttles = throttles.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let ok = throttles[2].hit(&get_from("/", [10, 1, 0, 1])).await.is_ok();
                if ok {
                    return mark.elapsed();
                }
                assert!(Instant::now() < deadline, "did not recover");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();
    served_since(Instant::now()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.pause();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.resume();
    served_since(Instant::now()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);

    let (mut counted, mut failed, mut slowest) = (0, 0, Duration::ZERO);
    for task in tasks {
        let (c, f, s) = task.await.expect("no task panicked");
        (counted, failed, slowest) = (counted + c, failed + f, slowest.max(s));
    }
    assert!(counted > 0 && failed > 0, "counted {counted}, failed {failed}");
    // The timeout plus scheduling slack on a busy 2-core machine.
    assert!(slowest < timeout + Duration::from_millis(500), "a hit waited {slowest:?}");
    for throttle in throttles.iter() {
        assert!(throttle.hit(&get_from("/", [10, 2, 0, 1])).await.unwrap().is_counted(), "recovered");
    }
}

fn server_is_running(server: &RedisServer) -> bool {
    server.cli(&["PING"]).trim() == "PONG"
}

/// Stacked limits on Redis: one script call decides every limit of a request, so a
/// rejection by a later limit consumes nothing in the earlier ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stacked_limits_are_one_script_call_and_leak_nothing() {
    let Some(server) = RedisServer::start() else { return };
    let redis = backend(&server).await;
    let burst = HttpThrottle::builder("redis:stack:burst")
        .rate("10/min")
        .strategy(throttle::strategy::TokenBucket::new())
        .backend(redis.clone())
        .build()
        .unwrap();
    let daily = HttpThrottle::builder("redis:stack:daily").rate("3/min").backend(redis).build().unwrap();
    let pair = Arc::new([burst, daily]);
    let (parts, _) = get_from("/", [1, 0, 0, 7]).into_parts();
    let parts = Arc::new(parts);
    // Load the script once (EVALSHA, NOSCRIPT, SCRIPT LOAD, EVALSHA) on another client.
    let (warm, _) = get_from("/", [1, 0, 0, 8]).into_parts();
    throttle::hit_all(&pair[..], &warm).await.unwrap();
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
    if deny_cache_on() {
        // Rejections remembered by the cache are answered without a call.
        assert!((4..=32).contains(&calls), "at most one EVALSHA per request: {calls}");
    } else {
        assert_eq!(calls, 32, "one EVALSHA per request, for both limits");
    }
    let mut remaining = Vec::new();
    for throttle in pair.iter() {
        remaining.push(throttle.stat(&*parts).await.unwrap().unwrap().hits_remaining);
    }
    assert_eq!(remaining, [7, 0], "rejected requests consumed nothing from the burst limit");
}

/// `stat(..).cost(n)` on Redis, through a Router: for every built-in strategy the wait
/// for each cost is the in-memory one (the meters from their exact level, the queue's
/// read by its stat script; the sliding windows from a second read at a limit `n - 1`
/// lower), and a batch of that cost is refused a millisecond early and admitted on
/// time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_any_cost_match_memory_for_every_strategy() {
    use axum::extract::Path;
    use axum::routing::get;
    let Some(server) = RedisServer::start() else { return };
    let clock = ManualClock::new(T0);
    let redis = backend(&server).await.with_clock(clock.clone());
    let memory = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
    // `/wait/{n}`: how long until n fits; `/hit/{n}`: a hit of n.
    let app = |throttle: HttpThrottle| {
        let hits = throttle.clone();
        axum::Router::new()
            .route(
                "/wait/{n}",
                get(move |Path(n): Path<u64>, request: axum::extract::Request| async move {
                    let stat = throttle.stat(&request).cost(n).await?.expect("counted");
                    Ok::<_, ThrottleError>(stat.wait_ms.to_string())
                }),
            )
            .route(
                "/hit/{n}",
                get(move |Path(n): Path<u64>, request: axum::extract::Request| async move {
                    hits.hit(&request).cost(n).await.map(|_| "ok")
                }),
            )
    };
    let client = [7, 7, 7, 7];
    for kind in throttle::strategy::StrategyKind::ALL {
        let uid = format!("wait:{}", kind.name());
        let on = |builder: throttle::ThrottleBuilder<HttpThrottle>| app(builder.build().unwrap());
        let on_redis = on(HttpThrottle::builder(&uid).rate("7/s").strategy_name(kind.name()).backend(redis.clone()));
        let in_memory = on(HttpThrottle::builder(&uid).rate("7/s").strategy_name(kind.name()).backend(memory.clone()));
        let wait = |app: axum::Router, n: u64| async move {
            let response = send(&app, get_from(&format!("/wait/{n}"), client)).await;
            assert_eq!(response.status(), http::StatusCode::OK);
            body_text(response).await.parse::<u64>().unwrap()
        };
        for (advance, cost) in [(0, 3), (120, 2), (410, 1), (480, 4)] {
            clock.advance(Duration::from_millis(advance));
            for app in [&on_redis, &in_memory] {
                send(app, get_from(&format!("/hit/{cost}"), client)).await;
            }
            for n in 1..=7 {
                let (redis_wait, memory_wait) = (wait(on_redis.clone(), n).await, wait(in_memory.clone(), n).await);
                assert_eq!(redis_wait, memory_wait, "{kind:?}: cost {n} after a hit of {cost}");
            }
        }
        let batch = wait(on_redis.clone(), 6).await;
        assert!(batch > 1, "{kind:?}: {batch}");
        let start = clock.now_ms();
        clock.set(start + batch - 1);
        let early = send(&on_redis, get_from("/hit/6", client)).await;
        assert_eq!(early.status(), http::StatusCode::TOO_MANY_REQUESTS, "{kind:?}: 1 ms early");
        clock.set(start + batch);
        assert_eq!(send(&on_redis, get_from("/hit/6", client)).await.status(), http::StatusCode::OK, "{kind:?}");
        clock.advance(Duration::from_secs(10)); // every strategy at rest for the next one
    }
}
