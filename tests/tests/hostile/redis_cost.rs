//! Hostile: one client keeps its bucket full and sends rejected requests, hoping each
//! one makes Redis parse a state as large as the limit (the sliding log and the queue
//! used to store every entry in one string, read whole on every call). Asserted in
//! sizes and counts, never in time: the state key stays a few dozen bytes whatever the
//! limit, the entries beside it never exceed the limit, a rejection runs a handful of
//! Redis commands and changes nothing. `--nocapture` prints Redis's own CPU figure
//! (`usec_per_call` of EVALSHA) for information; `cargo bench -p throttle --features
//! redis --bench redis_cost` measures it properly.

use super::support::get_from;
use super::support::redis_server::RedisServer;
use std::collections::BTreeMap;
use std::time::Duration;
use throttle::backend::{Backend, Hit, Key, RedisBackend};
use throttle::strategy::StrategyKind;
use throttle::{
    HttpThrottle, OnError, Rate, ThrottleError,
    backend::{ManualClock, MemoryBackend},
};

/// Per hour: nothing refills much while a test runs on the manual clock.
const LIMIT: u64 = 5_000;
/// A fixed-size state: a few integers (the old log held 5 000 entries, about 80 KB).
const STATE_BYTES: usize = 100;
/// Redis commands a rejected decision may run inside its script (beside EVALSHA).
const COMMANDS_PER_REJECTION: f64 = 3.0;
const CLIENT: [u8; 4] = [203, 0, 113, 9];
/// A real clock's order of magnitude.
const START: u64 = 1_760_000_000_000;

/// One bucket as Redis holds it: every key of the test's namespace, with its type and
/// full content, and `MEMORY USAGE` summed.
#[derive(Debug, PartialEq, Eq)]
struct Stored {
    state: String,
    entries: Vec<String>,
    keys: usize,
    memory: u64,
}

fn stored(server: &RedisServer, namespace: &str) -> Stored {
    let listed = server.cli(&["--scan", "--pattern", &format!("{namespace}:*")]);
    let mut found = Stored { state: String::new(), entries: Vec::new(), keys: 0, memory: 0 };
    for key in listed.lines().map(str::trim).filter(|key| !key.is_empty()) {
        found.keys += 1;
        found.memory += server.cli(&["MEMORY", "USAGE", key, "SAMPLES", "0"]).trim().parse::<u64>().unwrap_or(0);
        match server.cli(&["TYPE", key]).trim() {
            "string" => found.state = server.cli(&["GET", key]).trim().to_string(),
            "list" => found.entries = server.cli(&["LRANGE", key, "0", "-1"]).lines().map(str::to_string).collect(),
            other => panic!("{key} is a {other}"),
        }
    }
    found
}

/// Commands run since the last `CONFIG RESETSTAT`, by name, the test's own left out.
fn commands(server: &RedisServer) -> BTreeMap<String, u64> {
    let info = server.cli(&["INFO", "commandstats"]);
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|f| f.strip_prefix("calls="))?.parse().ok()?;
            (!name.starts_with("info") && !name.starts_with("config")).then(|| (name.to_string(), calls))
        })
        .collect()
}

fn usec_per_call(server: &RedisServer) -> f64 {
    let info = server.cli(&["INFO", "commandstats"]);
    let line = info.lines().find_map(|line| line.trim().strip_prefix("cmdstat_evalsha:")).unwrap_or_default();
    line.split(',').find_map(|f| f.strip_prefix("usec_per_call=")).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

/// A throttle of `LIMIT` per hour with `strategy` on Redis, deciding on `clock`, in a
/// namespace of its own.
async fn throttle(server: &RedisServer, namespace: &str, strategy: &str, clock: &ManualClock) -> HttpThrottle {
    let redis = RedisBackend::connect(&server.url()).await.expect("connects");
    let redis = redis.with_namespace(namespace).expect("valid namespace").with_clock(clock.clone());
    HttpThrottle::builder(namespace)
        .rate(Rate::per_hour(LIMIT))
        .strategy_name(strategy)
        .backend(redis)
        .on_error(OnError::Raise)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("valid throttle")
}

/// Hits of cost 1, one per millisecond (the sliding log's worst case: one entry per
/// hit) until the first rejection; returns how many were admitted.
async fn fill(throttle: &HttpThrottle, clock: &ManualClock) -> u64 {
    let request = get_from("/", CLIENT);
    let mut admitted = 0;
    loop {
        match throttle.hit(&request).await {
            Ok(_) => admitted += 1,
            Err(error) => {
                assert!(error.as_throttled().is_some(), "{error}");
                return admitted;
            }
        }
        assert!(admitted <= 2 * LIMIT, "never full");
        clock.advance(Duration::from_millis(1));
    }
}

/// Rejected hits of `cost`; returns the commands they ran inside their scripts, per hit.
async fn reject(server: &RedisServer, throttle: &HttpThrottle, cost: u64, hits: u64) -> f64 {
    server.cli(&["CONFIG", "RESETSTAT"]);
    for _ in 0..hits {
        let outcome = throttle.hit(&get_from("/", CLIENT)).cost(cost).await;
        assert!(matches!(&outcome, Err(e) if e.as_throttled().is_some()), "cost {cost}: {outcome:?}");
    }
    let mut commands = commands(server);
    assert_eq!(commands.remove("evalsha"), Some(hits), "one script call per decision");
    commands.values().sum::<u64>() as f64 / hits as f64
}

/// Every strategy, filled to `LIMIT` admitted hits: its state key is a few dozen bytes,
/// its entries are bounded by the limit, and 200 rejected hits run a handful of
/// commands each and change nothing at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_on_a_full_bucket_read_a_small_state_and_change_nothing() {
    let Some(server) = RedisServer::start() else { return };
    for kind in StrategyKind::ALL {
        let name = kind.name();
        let namespace = format!("cost-{name}");
        let clock = ManualClock::new(START);
        let throttle = throttle(&server, &namespace, name, &clock).await;
        let admitted = fill(&throttle, &clock).await;
        assert!((LIMIT..LIMIT + 10).contains(&admitted), "{name}: admitted {admitted}");

        let full = stored(&server, &namespace);
        assert!(full.state.len() <= STATE_BYTES, "{name}: a state of {} bytes", full.state.len());
        assert!(full.entries.len() as u64 <= 2 * LIMIT, "{name}: {} entry elements", full.entries.len());
        assert!(full.keys <= 2, "{name}: {} keys", full.keys);

        let per_rejection = reject(&server, &throttle, 1, 200).await;
        println!("{name}: {per_rejection} commands and {} µs of Redis CPU per rejection", usec_per_call(&server));
        assert!(per_rejection <= COMMANDS_PER_REJECTION, "{name}: {per_rejection} commands per rejection");
        assert_eq!(stored(&server, &namespace), full, "{name}: rejections changed the bucket");
    }
}

/// The limit changes the number of entries, never the size of the state key, nor
/// how many commands a rejection runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_key_does_not_grow_with_the_limit() {
    let Some(server) = RedisServer::start() else { return };
    for name in ["sliding_window_log", "leaky_bucket_queue"] {
        let mut seen = Vec::new();
        for limit in [10, 1_000] {
            let namespace = format!("size-{name}-{limit}");
            let clock = ManualClock::new(START);
            let redis = RedisBackend::connect(&server.url()).await.unwrap().with_namespace(&namespace).unwrap();
            let throttle = HttpThrottle::builder(namespace.as_str())
                .rate(Rate::per_hour(limit))
                .strategy_name(name)
                .backend(redis.with_clock(clock.clone()))
                .on_error(OnError::Raise)
                .build()
                .unwrap();
            while throttle.hit(&get_from("/", CLIENT)).await.is_ok() {
                clock.advance(Duration::from_millis(1));
            }
            let full = stored(&server, &namespace);
            assert!(full.state.len() <= STATE_BYTES, "{name} at {limit}: a state of {} bytes", full.state.len());
            seen.push((full.entries.len() as u64 / limit, reject(&server, &throttle, 1, 20).await));
        }
        assert_eq!(seen[0], seen[1], "{name}: (entry elements per unit of limit, commands per rejection)");
    }
}

/// Rejected hits of any cost on the full log and queue: a few dozen commands at most
/// (a search in O(log cost) reads near the old end of the log), never a walk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_of_any_cost_read_a_logarithmic_number_of_entries() {
    let Some(server) = RedisServer::start() else { return };
    for name in ["sliding_window_log", "leaky_bucket_queue"] {
        let namespace = format!("costs-{name}");
        let clock = ManualClock::new(START);
        let throttle = throttle(&server, &namespace, name, &clock).await;
        fill(&throttle, &clock).await;
        let full = stored(&server, &namespace);
        assert!(full.state.len() <= STATE_BYTES, "{name}: a state of {} bytes", full.state.len());
        for cost in [2, 3, 64, 2_500, 4_999, LIMIT] {
            let per_rejection = reject(&server, &throttle, cost, 5).await;
            // Gallop and bisect: at most 2 log2(cost) + 2 reads, plus the header and a size check.
            let bound = 2.0 * (cost as f64).log2().ceil() + 4.0;
            assert!(per_rejection <= bound, "{name}, cost {cost}: {per_rejection} commands, bound {bound}");
        }
        assert_eq!(stored(&server, &namespace), full, "{name}: rejections changed the bucket");
    }
}

/// A client that keeps its bucket full, each hit admitted the moment it fits (the log
/// ages one entry out per hit, the queue drains one): the entries stay within the
/// limit and each decision runs a bounded number of commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admissions_at_the_limit_trim_what_they_replace() {
    let Some(server) = RedisServer::start() else { return };
    for name in ["sliding_window_log", "leaky_bucket_queue"] {
        let namespace = format!("steady-{name}");
        let clock = ManualClock::new(START);
        let throttle = throttle(&server, &namespace, name, &clock).await;
        fill(&throttle, &clock).await;
        let full = stored(&server, &namespace);
        server.cli(&["CONFIG", "RESETSTAT"]);
        let (mut admitted, mut decisions) = (0u64, 0u64);
        while admitted < 300 {
            decisions += 1;
            match throttle.hit(&get_from("/", CLIENT)).await {
                Ok(_) => admitted += 1,
                Err(error) => {
                    clock.advance(Duration::from_millis(error.as_throttled().expect("a rejection").wait_ms()))
                }
            }
        }
        let mut commands = commands(&server);
        assert_eq!(commands.remove("evalsha"), Some(decisions));
        let per_decision = commands.values().sum::<u64>() as f64 / decisions as f64;
        assert!(per_decision <= 12.0, "{name}: {per_decision} commands per decision ({commands:?})");
        let steady = stored(&server, &namespace);
        assert!(steady.entries.len().abs_diff(full.entries.len()) <= 2, "{name}: admissions replace what drained");
        assert!(steady.state.len() <= STATE_BYTES, "{name}");
    }
}

/// The state key and the entries beside it expire at the same moment, the one the
/// strategy reports as its reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_entries_expire_with_the_state() {
    let Some(server) = RedisServer::start() else { return };
    let redis = RedisBackend::connect(&server.url()).await.unwrap(); // Redis server time
    let rate = Rate::per_second(10);
    for kind in [StrategyKind::SlidingWindowLog, StrategyKind::LeakyBucketQueue] {
        let strategy = kind.build();
        let key = format!("throttle:expiry:{}:default", kind.name());
        for cost in [3, 4] {
            assert!(redis.hit(Hit::new(&key, &*strategy, rate, cost)).await.unwrap().allowed);
        }
        let state = format!("throttle:expiry:{{{}}}:default", kind.name());
        let at = |key: &str| server.cli(&["PEXPIRETIME", key]).trim().parse::<i64>().unwrap();
        let expires = at(&state);
        assert!(expires > 0, "{}", kind.name());
        assert_eq!(at(&format!("{state}:entries")), expires, "{}", kind.name());
        // Reset forgets both.
        redis.reset(Key::from(&key)).await.unwrap();
        assert_eq!(server.cli(&["EXISTS", &state, &format!("{state}:entries")]).trim(), "0");
    }
}

/// Entries out of step with the header (deleted, replaced, another type, an element
/// that is no number) read as a fresh state as soon as a decision needs them, never
/// as an error; the write that follows puts them back in step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_out_of_step_with_their_header_read_as_fresh() {
    let Some(server) = RedisServer::start() else { return };
    let clock = ManualClock::new(START);
    let redis = RedisBackend::connect(&server.url()).await.unwrap().with_clock(clock.clone());
    let rate = Rate::per_second(10);
    // The hit that reads the entries, and an element it reads: on the full log, a hit of
    // cost 4 searches for the entry whose ageing out makes room (element 3 is the
    // second entry's running total); 150 ms on, the queue has drained a hit, so a hit of
    // cost 1 is admitted and reads where the new head starts (element 1).
    for (kind, cost, element) in [(StrategyKind::SlidingWindowLog, 4, "3"), (StrategyKind::LeakyBucketQueue, 1, "1")] {
        let strategy = kind.build();
        let tamperings: [&[&str]; 4] = [&["DEL"], &["SET", "junk"], &["RPUSH", "7"], &["LSET", element, "x"]];
        for (i, tampering) in tamperings.iter().enumerate() {
            let key = format!("throttle:tamper:{}-{i}:default", kind.name());
            let entries = format!("throttle:tamper:{{{}-{i}}}:default:entries", kind.name());
            for _ in 0..10 {
                assert!(redis.hit(Hit::new(&key, &*strategy, rate, 1)).await.unwrap().allowed);
                clock.advance(Duration::from_millis(1));
            }
            let mut args = vec![tampering[0], entries.as_str()];
            args.extend(&tampering[1..]);
            server.cli(&args);
            clock.advance(Duration::from_millis(150));
            let fresh = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
            let at = format!("{} after {tampering:?}", kind.name());
            let decision = redis.hit(Hit::new(&key, &*strategy, rate, cost)).await.unwrap();
            assert_eq!(decision, fresh.hit_now(&key, &*strategy, rate, cost), "{at}");
            assert_eq!(
                redis.stat(Key::from(&key), &*strategy, rate).await.unwrap(),
                fresh.stat_now(&key, &*strategy, rate),
                "{at}"
            );
            assert_eq!(server.cli(&["TYPE", &entries]).trim(), "list", "{at}");
        }
    }
}

/// Running totals near 2^52 are rebased to 0, so the scripts stay exact: a log and
/// a queue that never empty, with huge costs, decide as in memory throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_totals_are_rebased_before_doubles_lose_them() {
    let Some(server) = RedisServer::start() else { return };
    let clock = ManualClock::new(START);
    let redis = RedisBackend::connect(&server.url()).await.unwrap().with_clock(clock.clone());
    let memory = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    // The log: 2^49 per 10 ms, hits of 2^47 every 3 ms (never empty). The queue: 2^48
    // per 2 ms, two hits of 2^47, then one every ms (one drains as the next arrives).
    // Either way the running total passes 2^52 after 32 hits. (kind, rate, cost, ms
    // between hits, hits at the start, field of the header holding the total)
    let cases = [
        (StrategyKind::SlidingWindowLog, Rate::per_millis(1 << 49, 10), 1u64 << 47, 3, 1, 2),
        (StrategyKind::LeakyBucketQueue, Rate::per_millis(1 << 48, 2), 1 << 47, 1, 2, 3),
    ];
    for (kind, rate, cost, step, together, field) in cases {
        let strategy = kind.build();
        let key = format!("throttle:rebase:{}:default", kind.name());
        let state = format!("throttle:rebase:{{{}}}:default", kind.name());
        let (mut rebased, mut previous) = (false, 0);
        for i in 0..40 {
            if i >= together {
                clock.advance(Duration::from_millis(step));
            }
            let decision = redis.hit(Hit::new(&key, &*strategy, rate, cost)).await.unwrap();
            assert!(decision.allowed, "{} hit {i}", kind.name());
            assert_eq!(decision, memory.hit_now(&key, &*strategy, rate, cost), "{} hit {i}", kind.name());
            let stat = redis.stat(Key::from(&key), &*strategy, rate).await.unwrap();
            assert_eq!(stat, memory.stat_now(&key, &*strategy, rate), "{} stat {i}", kind.name());
            let header: String = redis::cmd("GET").arg(&state).query_async(&mut raw).await.unwrap();
            let total: u64 = header.split(',').nth(field).unwrap().parse().unwrap();
            assert!(total < 1 << 52, "{}: total {total}", kind.name());
            rebased |= total < previous;
            previous = total;
        }
        assert!(rebased, "{}: the running total never came near 2^52", kind.name());
    }
}

/// The log and the queue stacked on one Redis: one script call per request, the
/// decisions of the same stack in memory, and a rejection by the queue writes
/// nothing to the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacked_log_and_queue_decide_together_and_leak_nothing() {
    let Some(server) = RedisServer::start() else { return };
    let clock = ManualClock::new(START);
    let redis = RedisBackend::connect(&server.url()).await.unwrap().with_clock(clock.clone());
    let memory = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
    fn stack(on: &str, backend: impl throttle::backend::Backend + Clone) -> [HttpThrottle; 2] {
        let build = |what: &str, rate: &str, strategy: &str| {
            let uid = format!("stack:{on}:{what}");
            HttpThrottle::builder(uid).rate(rate).strategy_name(strategy).backend(backend.clone()).build().unwrap()
        };
        [build("log", "8/s", "sliding_window_log"), build("queue", "5/s", "leaky_bucket_queue")]
    }
    let (on_redis, in_memory) = (stack("redis", redis), stack("memory", memory));
    let log_keys = || {
        let keys = server.cli(&["--scan", "--pattern", "throttle:stack:redis:log:*"]);
        keys.lines().map(|key| (key.to_string(), server.cli(&["DUMP", key.trim()]))).collect::<Vec<_>>()
    };
    let request = get_from("/", CLIENT);
    // Load the joint script (its first call also answers NOSCRIPT) on another client.
    throttle::hit_all(&on_redis, &get_from("/", [10, 0, 0, 1])).await.unwrap();
    let wait =
        |outcome: &Result<_, ThrottleError>| outcome.as_ref().err().map(|e| e.as_throttled().map(|t| t.wait_ms()));
    let mut rejected = 0;
    for i in 0..60u64 {
        let before = log_keys();
        server.cli(&["CONFIG", "RESETSTAT"]);
        let outcome = throttle::hit_all(&on_redis, &request).await;
        assert_eq!(commands(&server).get("evalsha"), Some(&1), "hit {i}: one script call");
        let expected = throttle::hit_all(&in_memory, &request).await;
        assert_eq!(wait(&outcome), wait(&expected), "hit {i}");
        if outcome.is_err() {
            rejected += 1;
            assert_eq!(log_keys(), before, "hit {i}: a rejected stack wrote the log");
        }
        clock.advance(Duration::from_millis(17 * (i % 5)));
    }
    assert!(rejected > 10, "only {rejected} rejections");
    for (a, b) in on_redis.iter().zip(&in_memory) {
        let (a, b) = (a.stat(&request).await.unwrap().unwrap(), b.stat(&request).await.unwrap().unwrap());
        assert_eq!((a.hits_remaining, a.wait_ms, a.metadata), (b.hits_remaining, b.wait_ms, b.metadata));
    }
}
