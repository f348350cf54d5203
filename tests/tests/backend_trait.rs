//! What the `Backend` trait promises, through Routers: an answer given at once (in
//! memory, or a rejection a deny cache repeats) waits for nothing, not even a timer;
//! throttles on one store stack as one, whichever handle or cache they hold; and a
//! backend of one's own decides through the same calls.

mod support;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use support::*;
use throttle::backend::{Backend, DenyCache, Failover, Hit, Key, Reply};
use throttle::strategy::{Decision, DynStrategy, Snapshot};
use throttle::{HttpThrottle, Rate, ThrottleLayer, backend::MemoryBackend};

fn app(layer: ThrottleLayer) -> Router {
    Router::new().route("/", get(|| async { "ok" })).layer(layer)
}

fn throttle_on(uid: &str, rate: &str, backend: impl Backend) -> HttpThrottle {
    HttpThrottle::builder(uid).rate(rate).backend(backend).build().expect("valid throttle")
}

/// A runtime with no timer: arming one (a throttle's timeout) would panic.
fn runtime_without_timers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("a runtime")
}

#[test]
fn answers_given_at_once_arm_no_timer() {
    let (memory, clock) = manual_backend();
    let cached = DenyCache::builder(memory.clone()).clock(clock).build().expect("valid cache");
    let single = app(ThrottleLayer::new(throttle_on("trait:ready:single", "2/min", cached.clone())));
    let stacked = app(ThrottleLayer::new(throttle_on("trait:ready:wide", "100/min", memory.clone())).and(throttle_on(
        "trait:ready:narrow",
        "1/min",
        memory,
    )));
    runtime_without_timers().block_on(async {
        let statuses = [
            send(&single, get_from("/", [10, 0, 0, 1])).await.status(),
            send(&single, get_from("/", [10, 0, 0, 1])).await.status(),
            send(&single, get_from("/", [10, 0, 0, 1])).await.status(), // rejected by memory
            send(&single, get_from("/", [10, 0, 0, 1])).await.status(), // repeated by the cache
        ];
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS, StatusCode::TOO_MANY_REQUESTS]
        );
        assert_eq!(cached.len(), 1, "the last answer was the cache's");
        // Stacked limits on one in-memory store: one joint decision, ready at once.
        assert_eq!(send(&stacked, get_from("/", [10, 0, 0, 2])).await.status(), StatusCode::OK);
        assert_eq!(send(&stacked, get_from("/", [10, 0, 0, 2])).await.status(), StatusCode::TOO_MANY_REQUESTS);
    });
}

#[test]
fn clones_and_caches_of_one_store_share_it_and_others_do_not() {
    let memory = MemoryBackend::new();
    let cached = DenyCache::new(memory.clone());
    assert!(memory.shares_store_with(&memory.clone()));
    assert!(!memory.shares_store_with(&MemoryBackend::new()));
    assert!(cached.shares_store_with(&memory), "a cache decides in the store it wraps");
    assert!(cached.shares_store_with(&DenyCache::new(memory.clone())), "as does another cache on it");
    assert!(!cached.shares_store_with(&MemoryBackend::new()));
    let failover = Failover::builder(memory.clone(), MemoryBackend::new()).build().expect("valid failover");
    assert!(failover.shares_store_with(&failover.clone()));
    assert!(!failover.shares_store_with(&memory), "a throttle on the bare primary would not fail over");
    assert!(!memory.shares_store_with(&failover));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cache_and_the_store_it_wraps_stack_as_one() {
    let (memory, clock) = manual_backend();
    let cached = DenyCache::builder(memory.clone()).clock(clock).build().expect("valid cache");
    // The plain store first: only the cache knows it wraps it, so throttles ask both ways.
    let wide = throttle_on("trait:share:wide", "1000/min", memory.clone());
    let narrow = throttle_on("trait:share:narrow", "5/min", cached);
    let app = app(ThrottleLayer::new(wide.clone()).and(narrow));
    assert_eq!(burst(&app, "/", 60).await, (5, 55));
    let stat = wide.stat(&get_from("/", [10, 0, 0, 1])).await.expect("stat").expect("counted");
    assert_eq!(stat.hits_remaining, 995, "the rejected requests consumed nothing from the wide limit");
}

/// A backend of one's own: memory, counting the keys it is handed, and seeing each
/// throttle key's client segment without reading the text.
#[derive(Debug, Clone, Default)]
struct Counting {
    memory: MemoryBackend,
    hits: Arc<AtomicU64>,
    clients: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Backend for Counting {
    fn namespace(&self) -> &str {
        self.memory.namespace()
    }
    fn hit<'a>(&'a self, hit: Hit<'a>) -> Reply<'a, Decision> {
        self.hits.fetch_add(1, Ordering::Relaxed);
        self.clients.lock().expect("lock").push(hit.key.client().unwrap_or("?").to_string());
        self.memory.hit(hit)
    }
    fn stat<'a>(&'a self, key: Key<'a>, strategy: &'a dyn DynStrategy, rate: Rate) -> Reply<'a, Snapshot> {
        self.memory.stat(key, strategy, rate)
    }
    fn reset<'a>(&'a self, key: Key<'a>) -> Reply<'a, ()> {
        self.memory.reset(key)
    }
    fn shares_store_with(&self, other: &dyn Backend) -> bool {
        other.downcast_ref::<Counting>().is_some_and(|other| Arc::ptr_eq(&self.hits, &other.hits))
    }
}

#[tokio::test]
async fn a_backend_of_ones_own_gets_keys_with_their_client_and_decides_at_once() {
    let backend = Counting::default();
    let api = throttle_on("trait:own", "2/min", backend.clone());
    let app = app(ThrottleLayer::new(api));
    for expected in [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS] {
        assert_eq!(send(&app, get_from("/", [192, 0, 2, 7])).await.status(), expected);
    }
    assert_eq!(backend.hits.load(Ordering::Relaxed), 3);
    let clients = backend.clients.lock().expect("lock").clone();
    assert!(clients.iter().all(|client| client.contains("192.0.2.7")), "{clients:?}");
    assert!(backend.shares_store_with(&backend.clone()));
    assert!(!backend.shares_store_with(&Counting::default()));
}

/// Says it answers at once, and answers later.
#[derive(Debug, Clone, Default)]
struct Boastful(MemoryBackend);

impl Backend for Boastful {
    fn namespace(&self) -> &str {
        self.0.namespace()
    }
    fn hit<'a>(&'a self, hit: Hit<'a>) -> Reply<'a, Decision> {
        let memory = self.0.clone();
        let decision = memory.hit_now(hit.key.as_str(), hit.strategy, hit.rate, hit.cost);
        Reply::pending(async move { Ok(decision) })
    }
    fn stat<'a>(&'a self, key: Key<'a>, strategy: &'a dyn DynStrategy, rate: Rate) -> Reply<'a, Snapshot> {
        self.0.stat(key, strategy, rate)
    }
    fn reset<'a>(&'a self, key: Key<'a>) -> Reply<'a, ()> {
        self.0.reset(key)
    }
    fn answers_at_once(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_backend_that_answers_later_than_it_says_fails_the_hit_by_the_error_policy() {
    let raise = HttpThrottle::builder("trait:boastful:raise")
        .rate("5/min")
        .backend(Boastful::default())
        .on_error(throttle::OnError::Raise)
        .build()
        .expect("valid throttle");
    let error = raise.hit(&get_from("/", [10, 0, 0, 9])).await.expect_err("the pending reply fails the hit");
    assert_eq!(error.to_string(), "throttle backend failed: a backend that answers at once gave a pending reply");
    let app = app(ThrottleLayer::new(raise));
    assert_eq!(send(&app, get_from("/", [10, 0, 0, 9])).await.status(), StatusCode::INTERNAL_SERVER_ERROR);
}
