//! Hostile: stacked limits. A client who can make one backend fail (a slow or dead
//! Redis) must not thereby open the other limits of a stack; each throttle applies its
//! own error policy; a rejected stacked request consumes nothing, even when the
//! in-memory sweep runs in the middle of the decision, and whatever the strategy;
//! memory taken by a spike of
//! clients is given back; and the registry survives a uid rebuilt while dropped.

use crate::support::redis_server::RedisServer;
use crate::support::{T0, burst, get_from, manual_backend, send};
use axum::Router;
use axum::routing::get;
use http::StatusCode;
use std::sync::mpsc;
use std::time::Duration;
use throttle::backend::RedisBackend;
use throttle::strategy::{Decision, Metadata, NEVER, Snapshot, Strategy};
use throttle::{
    HttpThrottle, OnError, Rate, ThrottleLayer,
    backend::MemoryBackend,
    identity::{Identifier, Identity},
};

/// Each failing call is bounded by this; tests never wait on it beyond that.
const SHORT: Duration = Duration::from_millis(100);

fn app(layer: ThrottleLayer) -> Router {
    Router::new().route("/", get(|| async { "ok" })).layer(layer)
}

fn on_memory(uid: &str, rate: &str, backend: &MemoryBackend) -> HttpThrottle {
    HttpThrottle::builder(uid).rate(rate).backend(backend.clone()).build().expect("valid throttle")
}

fn on_redis(uid: &str, redis: &RedisBackend, policy: OnError) -> HttpThrottle {
    HttpThrottle::builder(uid)
        .rate("1000/min")
        .backend(redis.clone())
        .on_error(policy)
        .timeout(SHORT)
        .build()
        .expect("valid throttle")
}

/// A real server, connected to and then frozen (SIGSTOP): every call times out.
/// `None` when Redis is not installed (and not required).
async fn frozen_redis() -> Option<(RedisServer, RedisBackend)> {
    let server = RedisServer::start()?;
    let redis = RedisBackend::connect(&server.url()).await.expect("redis connects");
    server.pause();
    Some((server, redis))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fail_open_redis_throttle_first_does_not_open_the_memory_limit_behind_it() {
    let Some((_server, redis)) = frozen_redis().await else { return };
    let (memory, _clock) = manual_backend();
    let open = on_redis("hostile:stack:first:open", &redis, OnError::Allow);
    let limit = on_memory("hostile:stack:first:limit", "5/min", &memory);
    let app = app(ThrottleLayer::new(open).and(limit));
    assert_eq!(burst(&app, "/", 40).await, (5, 35), "exactly the in-memory limit is admitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_limits_on_both_sides_of_a_fail_open_redis_throttle_both_hold() {
    let Some((_server, redis)) = frozen_redis().await else { return };
    let (memory, _clock) = manual_backend();
    let before = on_memory("hostile:stack:around:before", "5/min", &memory);
    let open = on_redis("hostile:stack:around:open", &redis, OnError::Allow);
    let after = on_memory("hostile:stack:around:after", "3/min", &memory);
    let app = app(ThrottleLayer::new(before).and(open).and(after));
    assert_eq!(burst(&app, "/", 40).await, (3, 37), "the tighter limit, after the failing one, holds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_throttle_in_a_stack_applies_its_own_error_policy() {
    let Some((server, _)) = frozen_redis().await else { return };
    server.resume();
    // Two connections: two stores, decided one after the other.
    let first = RedisBackend::connect(&server.url()).await.expect("redis connects");
    let second = RedisBackend::connect(&server.url()).await.expect("redis connects");
    server.pause();
    let open = on_redis("hostile:stack:policy:open", &first, OnError::Allow);
    let closed = on_redis("hostile:stack:policy:closed", &second, OnError::Throttle(Duration::from_secs(7)));
    let raising = on_redis("hostile:stack:policy:raise", &second, OnError::Raise);
    let fail_closed = app(ThrottleLayer::new(open.clone()).and(closed));
    let rejected = send(&fail_closed, get_from("/", [10, 0, 0, 1])).await;
    assert_eq!(rejected.status(), StatusCode::TOO_MANY_REQUESTS, "the fail-closed throttle rejects");
    assert_eq!(rejected.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"7"[..]));
    let raise = app(ThrottleLayer::new(open).and(raising));
    let failed = send(&raise, get_from("/", [10, 0, 0, 1])).await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR, "the raising throttle raises");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_joint_call_applies_every_throttles_own_policy() {
    let Some((_server, redis)) = frozen_redis().await else { return };
    // One store: the two hits go to Redis as one MULTI call, which times out.
    let open = on_redis("hostile:stack:joint:open", &redis, OnError::Allow);
    let closed = on_redis("hostile:stack:joint:closed", &redis, OnError::Throttle(Duration::from_secs(3)));
    let also_open = on_redis("hostile:stack:joint:open2", &redis, OnError::Allow);
    let fail_closed = app(ThrottleLayer::new(open.clone()).and(closed));
    let rejected = send(&fail_closed, get_from("/", [10, 0, 0, 1])).await;
    assert_eq!(rejected.status(), StatusCode::TOO_MANY_REQUESTS, "the second throttle's policy applies");
    assert_eq!(rejected.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"3"[..]));
    // Both fail open: a memory limit behind the joint call is still decided.
    let (memory, _clock) = manual_backend();
    let limit = on_memory("hostile:stack:joint:limit", "2/min", &memory);
    let fail_open = app(ThrottleLayer::new(open).and(also_open).and(limit));
    assert_eq!(burst(&fail_open, "/", 20).await, (2, 18));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_throttle_twice_in_a_stack_counts_once_on_every_backend() {
    let (memory, _clock) = manual_backend();
    let twice = on_memory("hostile:stack:twice:memory", "3/min", &memory);
    let app_memory = app(ThrottleLayer::new(twice.clone()).and(twice));
    assert_eq!(burst(&app_memory, "/", 20).await, (3, 17), "in memory");
    let Some(server) = RedisServer::start() else { return };
    let redis = RedisBackend::connect(&server.url())
        .await
        .expect("redis connects")
        .with_clock(throttle::backend::ManualClock::new(T0));
    let twice = HttpThrottle::builder("hostile:stack:twice:redis").rate("3/min").backend(redis).build().unwrap();
    let app_redis = app(ThrottleLayer::new(twice.clone()).and(twice));
    assert_eq!(burst(&app_redis, "/", 20).await, (3, 17), "on Redis");
}

/// One IPv4 address per client number.
fn client(n: u32) -> [u8; 4] {
    let [_, a, b, c] = n.to_be_bytes();
    [10, a, b, c]
}

/// Sends a GET from each client in `clients`, spread over tasks, and returns the statuses.
async fn from_each(app: &Router, clients: std::ops::Range<u32>) -> Vec<StatusCode> {
    const TASKS: u32 = 8;
    let span = clients.len() as u32;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let app = app.clone();
            let part = clients.start + span * t / TASKS..clients.start + span * (t + 1) / TASKS;
            tokio::spawn(async move {
                let mut statuses = Vec::with_capacity(part.len());
                for n in part {
                    statuses.push(send(&app, get_from("/", client(n))).await.status());
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::with_capacity(clients.len());
    for task in tasks {
        statuses.extend(task.await.expect("task"));
    }
    statuses
}

fn count(statuses: &[StatusCode], status: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rejected_stacked_request_consumes_nothing_even_when_the_memory_sweep_runs_mid_decision() {
    // Every client is new to the per-client limit, so each first request inserts a key
    // into the shared store while the global key is already decided: the moment the
    // insert-driven sweep (a shard's 64th insert, then every len/2) used to remove the
    // new key and re-run the whole stack. The backend has 8 shards per core (at least
    // 16); 128 clients per shard make every shard sweep.
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    let shards = (cores * 8).next_power_of_two().max(16) as u32;
    let clients = 128 * shards;
    let (memory, _clock) = manual_backend();
    let global = HttpThrottle::builder("hostile:stack:sweep:global")
        .rate(format!("{clients}/min").as_str())
        .backend(memory.clone())
        .identifier(Identifier::from_fn(|_| Identity::client("everyone")))
        .build()
        .unwrap();
    let per_client = on_memory("hostile:stack:sweep:client", "1/min", &memory);
    let app = app(ThrottleLayer::new(global).and(per_client));
    let first = from_each(&app, 0..clients).await;
    assert_eq!(count(&first, StatusCode::OK), clients as usize, "the global limit is charged once per client");
    let second = from_each(&app, 0..clients).await;
    assert_eq!(count(&second, StatusCode::TOO_MANY_REQUESTS), clients as usize);
    // The rejected second requests consumed nothing globally: it is exactly spent.
    let newcomer = send(&app, get_from("/", [192, 0, 2, 1])).await;
    assert_eq!(newcomer.status(), StatusCode::TOO_MANY_REQUESTS, "the global limit is spent exactly");
}

/// A strategy of one's own with no codec (in-memory only): cost spent, for good.
#[derive(Debug)]
struct Spent;

#[derive(Debug, Default, Clone)]
struct SpentState {
    spent: u64,
}

impl Strategy for Spent {
    type State = SpentState;
    fn name(&self) -> &'static str {
        "spent"
    }
    fn decide(&self, state: &mut SpentState, _: u64, rate: Rate, cost: u64) -> Decision {
        let allowed = state.spent + cost <= rate.limit();
        if allowed {
            state.spent += cost;
        }
        let remaining = rate.limit() - state.spent;
        Decision { allowed, remaining, wait_ms: if allowed { 0 } else { NEVER }, reset_ms: 0 }
    }
    fn stat(&self, state: &SpentState, _: u64, rate: Rate) -> Snapshot {
        Snapshot { remaining: rate.limit() - state.spent, wait_ms: 0, reset_ms: 0, metadata: Metadata::None }
    }
    fn expires_at(&self, _: &SpentState, _: Rate) -> u64 {
        u64::MAX
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rejected_stack_of_strategies_without_a_codec_consumes_nothing_in_memory() {
    // Rollback used to go through the Redis codec: a strategy without one was decided
    // one throttle after the other, and every rejection by the second charged the first.
    let (memory, _clock) = manual_backend();
    let on_memory = |uid: &str, rate: &str| {
        HttpThrottle::builder(uid).rate(rate).strategy(Spent).backend(memory.clone()).build().expect("valid throttle")
    };
    let wide = on_memory("hostile:stack:nocodec:wide", "1000/min");
    let narrow = on_memory("hostile:stack:nocodec:narrow", "5/min");
    let app = app(ThrottleLayer::new(wide.clone()).and(narrow));
    assert_eq!(burst(&app, "/", 200).await, (5, 195), "the narrow limit decides");
    let stat = wide.stat(&get_from("/", [10, 0, 0, 1])).await.expect("stat").expect("counted");
    assert_eq!(stat.hits_remaining, 995, "the wide limit paid for the 5 admitted requests only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_is_given_back_once_a_spike_of_clients_expires() {
    const CLIENTS: u32 = 100_000;
    let (memory, clock) = manual_backend();
    let limit = on_memory("hostile:stack:spike", "10/min", &memory);
    let app = app(ThrottleLayer::new(limit));
    let spike = from_each(&app, 0..CLIENTS).await;
    assert_eq!(count(&spike, StatusCode::OK), CLIENTS as usize);
    assert_eq!(memory.len(), CLIENTS as usize);
    let peak = memory.capacity();
    assert!(peak >= CLIENTS as usize);
    // Every window has ended (45 s after T0), and the sweep is due (at most every 10 s).
    clock.advance(Duration::from_secs(60));
    // A hit on an existing key inserts nothing, yet it sweeps: not only inserts do.
    assert_eq!(send(&app, get_from("/", client(0))).await.status(), StatusCode::OK);
    assert_eq!(memory.len(), 1, "only the live client is kept");
    assert!(memory.capacity() < 64, "the table is given back: {} slots after a peak of {peak}", memory.capacity());
}

#[test]
fn rebuilding_a_uid_while_its_last_handle_drops_never_deadlocks() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 20_000;
    let registry = throttle::registry::Registry::new();
    let (done, finished) = mpsc::channel();
    // The race locked the registry twice on one thread; a deadlocked thread never
    // reports, so the bound below is generous and only catches a hang.
    let racing = registry.clone();
    std::thread::spawn(move || {
        let registry = racing;
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    for _ in 0..ROUNDS {
                        // Built: dropped at once. Refused (the uid is live): the
                        // refusal held the other's handle, maybe the last one.
                        let _ = HttpThrottle::builder("hostile:stack:registry").rate("1/s").registry(&registry).build();
                    }
                });
            }
        });
        let _ = done.send(());
    });
    finished.recv_timeout(Duration::from_secs(30)).expect("the registry deadlocked");
    assert!(registry.get("hostile:stack:registry").is_none(), "every handle is gone");
}
