//! In-flight limits through real Routers: exactly K of N concurrent slow requests at
//! once, units back when bodies end and when clients disconnect, in memory and on a
//! real Redis (where a dead process's leases expire and live ones are renewed).

use crate::support::redis_server::RedisServer;
use crate::support::*;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::get;
use http::StatusCode;
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::time::Duration;
use throttle::backend::{Key, RedisBackend};
use throttle::inflight::{InFlightLayer, InFlightLimit, InFlightStore, MemoryInFlight};
use throttle::{OnError, backend::ManualClock};
use tokio::sync::{mpsc, watch};

/// A bound for waiting on an event that must happen (never reached when it works).
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, PartialEq)]
enum Event {
    /// A handler started (its request was admitted).
    Entered,
    /// A client got its whole response.
    Done(StatusCode),
}

/// `/slow` waits for the gate to open; `/stream` sends one chunk, then whatever the
/// stream channel carries until it closes.
struct Harness {
    app: Router,
    events: mpsc::UnboundedReceiver<Event>,
    events_tx: mpsc::UnboundedSender<Event>,
    gate: watch::Sender<bool>,
}

impl Harness {
    fn new(limit: &InFlightLimit) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (gate, gate_rx) = watch::channel(false);
        let entered = events_tx.clone();
        let slow = move || {
            let (entered, mut gate) = (entered.clone(), gate_rx.clone());
            async move {
                let _ = entered.send(Event::Entered);
                let _ = gate.wait_for(|open| *open).await;
                "done"
            }
        };
        let app = Router::new().route("/slow", get(slow)).layer(InFlightLayer::new(limit.clone()));
        Harness { app, events, events_tx, gate }
    }

    /// A client task: sends a request to `/slow` and reports once the body is read.
    fn client(&self, ip: [u8; 4]) -> tokio::task::JoinHandle<()> {
        let (app, done) = (self.app.clone(), self.events_tx.clone());
        tokio::spawn(async move {
            let response = send(&app, get_from("/slow", ip)).await;
            let status = response.status();
            let _ = body_text(response).await;
            let _ = done.send(Event::Done(status));
        })
    }

    async fn next(&mut self) -> Event {
        tokio::time::timeout(PATIENCE, self.events.recv()).await.expect("an event within the bound").expect("open")
    }

    /// Sends `n` concurrent requests from one client; returns (admitted, rejected)
    /// once every request has either entered its handler or been answered.
    async fn round(&mut self, n: usize) -> (usize, usize) {
        self.gate.send_replace(false);
        let clients: Vec<_> = (0..n).map(|_| self.client([10, 0, 0, 1])).collect();
        let (mut entered, mut rejected) = (0, 0);
        while entered + rejected < n {
            match self.next().await {
                Event::Entered => entered += 1,
                Event::Done(StatusCode::TOO_MANY_REQUESTS) => rejected += 1,
                other => panic!("unexpected {other:?} while the gate is closed"),
            }
        }
        // Every request is accounted for; let the admitted ones finish.
        self.gate.send_replace(true);
        for _ in 0..entered {
            assert_eq!(self.next().await, Event::Done(StatusCode::OK));
        }
        for client in clients {
            client.await.expect("client task");
        }
        (entered, rejected)
    }
}

async fn assert_exactly_k_at_once(limit: &InFlightLimit, k: usize) {
    let mut harness = Harness::new(limit);
    for round in 0..3 {
        let (admitted, rejected) = harness.round(24).await;
        assert_eq!((admitted, rejected), (k, 24 - k), "round {round}: exactly {k} at once");
        // Bodies ended, so every unit is back (after the background releases, on Redis).
        limit.settle().await;
        assert_eq!(limit.in_flight(&get_from("/", [10, 0, 0, 1])).await.unwrap(), Some(0), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn n_concurrent_slow_requests_see_exactly_k_admitted_in_memory() {
    let limit = InFlightLimit::builder("inflight:memory").max(5).build().unwrap();
    assert_exactly_k_at_once(&limit, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rejection_says_why_and_other_clients_are_separate() {
    let limit = InFlightLimit::builder("inflight:reject").max(1).build().unwrap();
    let mut harness = Harness::new(&limit);
    let first = harness.client([10, 0, 0, 1]);
    assert_eq!(harness.next().await, Event::Entered);
    let rejected = send(&harness.app, get_from("/slow", [10, 0, 0, 1])).await;
    assert_eq!(rejected.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&rejected, "retry-after"), Some("1"));
    assert_eq!(header(&rejected, "ratelimit-policy"), Some("\"inflight:reject\";q=1;qu=\"concurrent-requests\""));
    assert_eq!(header(&rejected, "ratelimit"), Some("\"inflight:reject\";r=0"));
    assert_eq!(body_text(rejected).await, "Too many requests in flight: at most 1 at once.");
    // Another client has its own unit.
    let other = harness.client([10, 0, 0, 2]);
    assert_eq!(harness.next().await, Event::Entered);
    harness.gate.send_replace(true);
    for _ in 0..2 {
        assert_eq!(harness.next().await, Event::Done(StatusCode::OK));
    }
    first.await.unwrap();
    other.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_503_with_problem_details_and_headers_on_admitted_responses() {
    let limit = InFlightLimit::builder("inflight:503")
        .max(2)
        .service_unavailable()
        .retry_after(Some(Duration::from_millis(2_500)))
        .problem_details()
        .headers_on_admitted()
        .build()
        .unwrap();
    let mut harness = Harness::new(&limit);
    let first = harness.client([10, 0, 0, 1]);
    assert_eq!(harness.next().await, Event::Entered);
    // The second request is admitted with one unit left when it started.
    let app = harness.app.clone();
    let second = tokio::spawn(async move { send(&app, get_from("/slow", [10, 0, 0, 1])).await });
    assert_eq!(harness.next().await, Event::Entered);
    let rejected = send(&harness.app, get_from("/slow", [10, 0, 0, 1])).await;
    assert_eq!(rejected.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&rejected, "content-type"), Some("application/problem+json"));
    assert_eq!(header(&rejected, "retry-after"), Some("3"));
    let body: serde_json::Value = serde_json::from_str(&body_text(rejected).await).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "type": "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity",
            "title": "Request cannot be satisfied due to temporary server capacity constraints",
            "status": 503,
            "detail": "Too many requests in flight: at most 2 at once.",
            "retry_after": 3,
            "violated-policies": ["inflight:503"],
            "policy": { "uid": "inflight:503", "max_in_flight": 2 },
        })
    );
    harness.gate.send_replace(true);
    let admitted = second.await.unwrap();
    assert_eq!(admitted.status(), StatusCode::OK);
    assert_eq!(header(&admitted, "ratelimit"), Some("\"inflight:503\";r=0"), "2 of 2 in flight at its start");
    assert_eq!(header(&admitted, "ratelimit-policy"), Some("\"inflight:503\";q=2;qu=\"concurrent-requests\""));
    assert_eq!(harness.next().await, Event::Done(StatusCode::OK));
    first.await.unwrap();
}

/// `/stream` answers at once with one chunk, then what the test sends, until it
/// closes the channel.
fn streaming_app(limit: &InFlightLimit, chunks: mpsc::UnboundedReceiver<&'static str>) -> Router {
    let chunks = std::sync::Arc::new(tokio::sync::Mutex::new(Some(chunks)));
    let handler = move || {
        let chunks = chunks.clone();
        async move {
            let rest = chunks.lock().await.take().expect("one streaming request");
            let first = futures_util::stream::iter([Ok::<_, Infallible>(Bytes::from_static(b"first"))]);
            let rest = futures_util::stream::unfold(rest, |mut rest| async move {
                rest.recv().await.map(|chunk| (Ok::<_, Infallible>(Bytes::from_static(chunk.as_bytes())), rest))
            });
            Body::from_stream(futures_util::StreamExt::chain(first, rest))
        }
    };
    Router::new()
        .route("/stream", get(handler))
        .route("/quick", get(|| async { "quick" }))
        .layer(InFlightLayer::new(limit.clone()))
}

async fn quick_status(app: &Router) -> StatusCode {
    let response = send(app, get_from("/quick", [10, 0, 0, 1])).await;
    let status = response.status();
    let _ = body_text(response).await;
    status
}

#[tokio::test]
async fn the_unit_is_held_until_the_body_ends() {
    let limit = InFlightLimit::builder("inflight:body-end").max(1).build().unwrap();
    let (chunks, rest) = mpsc::unbounded_channel();
    let app = streaming_app(&limit, rest);
    let mut body = send(&app, get_from("/stream", [10, 0, 0, 1])).await.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "first");
    // The response head and a chunk went out, but the body goes on: still in flight.
    assert_eq!(quick_status(&app).await, StatusCode::TOO_MANY_REQUESTS);
    chunks.send("second").unwrap();
    assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "second");
    assert_eq!(quick_status(&app).await, StatusCode::TOO_MANY_REQUESTS);
    drop(chunks); // the stream ends
    assert!(body.frame().await.is_none());
    // The body ended (still held by the client, not dropped): the unit is back.
    assert_eq!(quick_status(&app).await, StatusCode::OK);
    drop(body);
    assert_eq!(quick_status(&app).await, StatusCode::OK);
}

#[tokio::test]
async fn the_unit_returns_when_the_client_drops_the_body_mid_stream() {
    let limit = InFlightLimit::builder("inflight:body-drop").max(1).build().unwrap();
    let (chunks, rest) = mpsc::unbounded_channel();
    let app = streaming_app(&limit, rest);
    let mut body = send(&app, get_from("/stream", [10, 0, 0, 1])).await.into_body();
    assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "first");
    assert_eq!(quick_status(&app).await, StatusCode::TOO_MANY_REQUESTS);
    drop(body); // the client went away mid-stream
    assert_eq!(quick_status(&app).await, StatusCode::OK);
    drop(chunks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_unit_returns_when_the_client_disconnects_during_the_handler() {
    let limit = InFlightLimit::builder("inflight:disconnect").max(2).build().unwrap();
    let mut harness = Harness::new(&limit);
    let clients: Vec<_> = (0..2).map(|_| harness.client([10, 0, 0, 1])).collect();
    for _ in 0..2 {
        assert_eq!(harness.next().await, Event::Entered);
    }
    assert_eq!(send(&harness.app, get_from("/slow", [10, 0, 0, 1])).await.status(), StatusCode::TOO_MANY_REQUESTS);
    // Both clients hang up while their handlers wait: the request futures are dropped.
    for client in clients {
        client.abort();
        assert!(client.await.unwrap_err().is_cancelled());
    }
    let conn = get_from("/", [10, 0, 0, 1]);
    assert_eq!(limit.in_flight(&conn).await.unwrap(), Some(0));
    let (admitted, rejected) = harness.round(6).await;
    assert_eq!((admitted, rejected), (2, 4));
}

#[tokio::test]
async fn exempted_clients_and_bypassed_paths_hold_nothing() {
    let store = MemoryInFlight::new();
    let limit = InFlightLimit::builder("inflight:exempt")
        .max(1)
        .store(store.clone())
        .identifier(throttle::identity::Identifier::from_fn(|conn| match conn.headers().get("x-internal") {
            Some(_) => throttle::identity::EXEMPTED,
            None => throttle::identity::Identity::client("public"),
        }))
        .rule(throttle::Rule::bypass_if().path("/health").unwrap())
        .build()
        .unwrap();
    let mut internal = get_from("/", [10, 0, 0, 1]);
    internal.headers_mut().insert("x-internal", "1".parse().unwrap());
    let permits: Vec<_> = [
        limit.acquire(&internal).await.unwrap(),
        limit.acquire(&internal).await.unwrap(),
        limit.acquire(&get_from("/health", [10, 0, 0, 1])).await.unwrap(),
    ]
    .into();
    assert!(permits.iter().all(|p| !p.is_counted()));
    assert!(store.is_empty());
    let held = limit.acquire(&get_from("/api", [10, 0, 0, 1])).await.unwrap();
    assert!(held.is_counted());
    assert_eq!(store.len(), 1);
    assert!(limit.acquire(&get_from("/api", [10, 0, 0, 9])).await.is_err(), "one shared id: `fn=public`");
    drop(held);
    assert!(store.is_empty(), "a key exists only while it holds units");
}

#[test]
fn bad_options_are_refused_with_the_fix() {
    let err = InFlightLimit::builder("inflight:bad").build().unwrap_err();
    assert_eq!(err.to_string(), "in-flight limit \"inflight:bad\": no maximum; call `.max(n)`");
    assert!(InFlightLimit::builder("inflight:bad").max(0).build().is_err());
    assert!(InFlightLimit::builder("bad uid").max(1).build().is_err());
    let err = InFlightLimit::builder("inflight:bad")
        .max(1)
        .lease_ttl(Duration::from_secs(3))
        .renew_every(Duration::from_secs(3))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("`renew_every` must be shorter than `lease_ttl`"), "{err}");
}

// ---------------------------------------------------------------- Redis

async fn redis(server: &RedisServer, clock: Option<&ManualClock>) -> RedisBackend {
    let backend = RedisBackend::connect(&server.url()).await.expect("redis");
    match clock {
        Some(clock) => backend.with_clock(clock.clone()),
        None => backend,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn n_concurrent_slow_requests_see_exactly_k_admitted_on_redis() {
    let Some(server) = RedisServer::start() else { return };
    let limit = InFlightLimit::builder("inflight:redis").max(4).store(redis(&server, None).await).build().unwrap();
    assert_exactly_k_at_once(&limit, 4).await;
    // One sorted set per client, deleted by Redis when its last lease goes.
    assert_eq!(server.cli(&["EXISTS", "throttle:inflight:redis:{ip=10.0.0.1}:#inflight"]).trim(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_units_return_when_clients_disconnect_and_two_processes_share_the_limit() {
    let Some(server) = RedisServer::start() else { return };
    // Two app instances (two connections, two limits, one uid) behind one Redis.
    let a = InFlightLimit::builder("inflight:shared").max(3).store(redis(&server, None).await).build().unwrap();
    let b = InFlightLimit::builder("inflight:shared").max(3).store(redis(&server, None).await).build().unwrap();
    let mut on_a = Harness::new(&a);
    let mut on_b = Harness::new(&b);
    let clients: Vec<_> = (0..2).map(|_| on_a.client([10, 0, 0, 1])).collect();
    for _ in 0..2 {
        assert_eq!(on_a.next().await, Event::Entered);
    }
    let (admitted, rejected) = on_b.round(5).await;
    assert_eq!((admitted, rejected), (1, 4), "instance B sees A's two units");
    b.settle().await;
    for client in clients {
        client.abort();
        assert!(client.await.unwrap_err().is_cancelled());
    }
    a.settle().await;
    let key = "throttle:inflight:shared:{ip=10.0.0.1}:#inflight";
    assert_eq!(server.cli(&["ZCARD", key]).trim(), "0", "dropped requests released their leases");
    let (admitted, _) = on_b.round(5).await;
    assert_eq!(admitted, 3);
}

#[test]
fn a_dead_process_leases_expire_after_the_lease_ttl() {
    let Some(server) = RedisServer::start() else { return };
    let clock = ManualClock::new(T0);
    let ttl = Duration::from_secs(30);
    let build = |backend: RedisBackend| {
        InFlightLimit::builder("inflight:dead").max(2).lease_ttl(ttl).store(backend).build().unwrap()
    };
    // The dead process: takes both units, then its runtime (and its renewal tasks) ends
    // without releasing anything.
    let dead = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    dead.block_on(async {
        let limit = build(redis(&server, Some(&clock)).await);
        for _ in 0..2 {
            std::mem::forget(limit.acquire(&get_from("/", [10, 0, 0, 1])).await.unwrap());
        }
    });
    drop(dead);
    let alive = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    alive.block_on(async {
        let limit = build(redis(&server, Some(&clock)).await);
        let conn = get_from("/", [10, 0, 0, 1]);
        assert!(limit.acquire(&conn).await.is_err(), "both units are held by the dead process");
        clock.advance(ttl - Duration::from_millis(1));
        assert!(limit.acquire(&conn).await.is_err(), "not before the lease TTL");
        assert_eq!(limit.in_flight(&conn).await.unwrap(), Some(2));
        clock.advance(Duration::from_millis(1));
        assert_eq!(limit.in_flight(&conn).await.unwrap(), Some(0));
        let first = limit.acquire(&conn).await.unwrap();
        let second = limit.acquire(&conn).await.unwrap();
        assert!(first.is_counted() && second.is_counted());
        assert!(limit.acquire(&conn).await.is_err());
        let key = "throttle:inflight:dead:{ip=10.0.0.1}:#inflight";
        assert_eq!(server.cli(&["ZCARD", key]).trim(), "2", "the expired leases were dropped, not counted");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_request_renews_its_lease_past_the_ttl() {
    let Some(server) = RedisServer::start() else { return };
    let clock = ManualClock::new(T0);
    let limit = InFlightLimit::builder("inflight:renew")
        .max(1)
        .lease_ttl(Duration::from_secs(30))
        .renew_every(Duration::from_millis(20))
        .store(redis(&server, Some(&clock)).await)
        .build()
        .unwrap();
    let mut harness = Harness::new(&limit);
    let client = harness.client([10, 0, 0, 1]);
    assert_eq!(harness.next().await, Event::Entered);
    let key = "throttle:inflight:renew:{ip=10.0.0.1}:#inflight";
    let score = || server.cli(&["ZRANGE", key, "0", "-1", "WITHSCORES"]).lines().nth(1).map(str::to_string);
    assert_eq!(score().as_deref(), Some((T0 + 30_000).to_string().as_str()));
    clock.advance(Duration::from_secs(25));
    // Wait for a renewal at the new time (they run every 20 ms of real time).
    let renewed = (T0 + 55_000).to_string();
    let deadline = std::time::Instant::now() + PATIENCE;
    while score().as_deref() != Some(renewed.as_str()) {
        assert!(std::time::Instant::now() < deadline, "the lease was never renewed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    clock.advance(Duration::from_secs(25)); // past the first expiry, T0 + 30 s
    let conn = get_from("/", [10, 0, 0, 1]);
    assert!(limit.acquire(&conn).await.is_err(), "the renewed lease still holds the only unit");
    harness.gate.send_replace(true);
    assert_eq!(harness.next().await, Event::Done(StatusCode::OK));
    client.await.unwrap();
    limit.settle().await;
    assert!(limit.acquire(&conn).await.unwrap().is_counted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_follows_the_error_policy() {
    let Some(mut server) = RedisServer::start() else { return };
    let backend = redis(&server, None).await;
    let closed = InFlightLimit::builder("inflight:down").max(1).store(backend.clone()).build().unwrap();
    let open =
        InFlightLimit::builder("inflight:down-open").max(1).store(backend).on_error(OnError::Allow).build().unwrap();
    server.stop();
    let app = Router::new().route("/", get(|| async { "ok" })).layer(InFlightLayer::new(closed));
    let rejected = send(&app, get_from("/", [10, 0, 0, 1])).await;
    assert_eq!(rejected.status(), StatusCode::TOO_MANY_REQUESTS, "fail closed by default");
    assert_eq!(header(&rejected, "retry-after"), Some("1"));
    let permit = open.acquire(&get_from("/", [10, 0, 0, 1])).await.unwrap();
    assert!(!permit.is_counted(), "allowed through, holding nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_whose_acquire_timed_out_is_released_once_redis_answers() {
    let Some(server) = RedisServer::start() else { return };
    let limit = InFlightLimit::builder("inflight:timeout")
        .max(1)
        .timeout(Duration::from_millis(100))
        .store(redis(&server, None).await)
        .build()
        .unwrap();
    let conn = get_from("/", [10, 0, 0, 1]);
    // Load the script first, so the timed-out call is the script itself (not a NOSCRIPT
    // answer that never gets its retry).
    drop(limit.acquire(&conn).await.unwrap());
    limit.settle().await;
    server.pause();
    let rejected = limit.acquire(&conn).await.unwrap_err();
    assert!(matches!(rejected, throttle::inflight::InFlightError::Full(_)), "fail closed: {rejected:?}");
    server.resume();
    // The acquire lands when Redis wakes up; the release sent after it removes it.
    limit.settle().await;
    assert_eq!(server.cli(&["EXISTS", "throttle:inflight:timeout:{ip=10.0.0.1}:#inflight"]).trim(), "0");
    assert!(limit.acquire(&conn).await.unwrap().is_counted(), "no unit was lost to the timeout");
}

#[tokio::test]
async fn the_store_trait_is_usable_directly() {
    let store = MemoryInFlight::new();
    let key = Key::from("throttle:direct:ip=1.2.3.4:#inflight");
    let ttl = Duration::from_secs(1);
    assert!(store.acquire(key, "a", 1, ttl).await.unwrap().admitted);
    assert!(!store.acquire(key, "b", 1, ttl).await.unwrap().admitted);
    assert_eq!(store.in_flight(key).await.unwrap(), 1);
    let _ = store.release(key, "a");
    assert_eq!(store.in_flight(key).await.unwrap(), 0);
}
