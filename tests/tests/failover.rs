//! `Failover`: a primary backend behind a circuit breaker, a fallback that decides
//! while it fails, and the way back. Against a scripted primary (exact transitions on
//! a manual clock) and against a real `redis-server` stopped, paused and restarted
//! under load.

mod support;

use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::redis_server::RedisServer;
use support::*;
use throttle::backend::{
    Backend, BackendError, CircuitState, DenyCache, Failover, Hit, InvalidBackendOption, Key, RedisBackend, Reply,
    Route, Since,
};
use throttle::strategy::{Decision, DynStrategy, Snapshot};
use throttle::{
    CountWhen, HttpThrottle, OnError, Rate, ThrottleError, ThrottleLayer,
    backend::{ManualClock, MemoryBackend},
};

/// A primary that answers (from memory), fails, or never answers, as the test says,
/// and counts the calls it gets.
#[derive(Debug, Clone)]
struct Scripted {
    memory: MemoryBackend,
    mode: Arc<AtomicU8>,
    calls: Arc<AtomicU64>,
}

const ANSWER: u8 = 0;
const FAIL: u8 = 1;
const HANG: u8 = 2;

impl Scripted {
    fn new(clock: &ManualClock) -> Self {
        let memory = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
        Scripted { memory, mode: Arc::new(AtomicU8::new(ANSWER)), calls: Arc::new(AtomicU64::new(0)) }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    async fn gate(&self) -> Result<(), BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.mode.load(Ordering::SeqCst) {
            ANSWER => Ok(()),
            FAIL => Err(BackendError::Failed("connection refused".into())),
            _ => std::future::pending().await,
        }
    }
}

impl Backend for Scripted {
    fn namespace(&self) -> &str {
        "throttle"
    }
    fn hit<'a>(&'a self, hit: Hit<'a>) -> Reply<'a, Decision> {
        Reply::pending(async move {
            self.gate().await?;
            self.memory.hit(hit).await
        })
    }
    fn stat<'a>(&'a self, key: Key<'a>, strategy: &'a dyn DynStrategy, rate: Rate) -> Reply<'a, Snapshot> {
        Reply::pending(async move {
            self.gate().await?;
            self.memory.stat(key, strategy, rate).await
        })
    }
    fn reset<'a>(&'a self, key: Key<'a>) -> Reply<'a, ()> {
        Reply::pending(async move {
            self.gate().await?;
            self.memory.reset(key).await
        })
    }
    fn refund<'a>(&'a self, hit: Hit<'a>, since: Since, route: Route) -> Reply<'a, bool> {
        Reply::pending(async move {
            self.gate().await?;
            self.memory.refund(hit, since, route).await
        })
    }
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

async fn status(app: &Router, ip: [u8; 4]) -> StatusCode {
    send(app, get_from("/", ip)).await.status()
}

/// Half the rate: what one of two app instances may admit alone.
fn half(rate: Rate) -> Rate {
    Rate::per_millis(rate.limit() / 2, rate.period_ms())
}

/// Closed → open after 3 consecutive failures (each decided by the fallback at its
/// own rate) → no primary calls while open → a failed probe reopens → a successful
/// probe closes, and the primary decides again.
#[tokio::test]
async fn the_breaker_opens_probes_and_closes() {
    let clock = ManualClock::new(T0);
    let primary = Scripted::new(&clock);
    let fallback = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
    let failover = Failover::builder(primary.clone(), fallback.clone())
        .failures(3)
        .cool_down(Duration::from_secs(5))
        .fallback_rate(half)
        .clock(clock.clone())
        .build()
        .unwrap();
    let api = HttpThrottle::builder("failover:breaker").rate("8/min").backend(failover.clone()).build().unwrap();
    let app = app(api);

    assert_eq!(status(&app, [1, 0, 0, 1]).await, StatusCode::OK);
    assert_eq!((primary.calls(), fallback.len()), (1, 0), "closed: the primary decides");

    primary.set(FAIL);
    for failures in 1..=3 {
        assert_eq!(status(&app, [1, 0, 0, 2]).await, StatusCode::OK, "decided by the fallback");
        let expected = if failures < 3 { CircuitState::Closed } else { CircuitState::Open };
        assert_eq!(failover.state(), expected, "after {failures} failures");
    }
    assert_eq!(primary.calls(), 4);
    // Open: the fallback alone, at 4/min: one more, then 429s; the primary is spared.
    assert_eq!(status(&app, [1, 0, 0, 2]).await, StatusCode::OK);
    for _ in 0..3 {
        assert_eq!(status(&app, [1, 0, 0, 2]).await, StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(primary.calls(), 4, "no call while open");

    clock.advance(Duration::from_secs(5));
    assert_eq!(status(&app, [1, 0, 0, 3]).await, StatusCode::OK);
    assert_eq!((primary.calls(), failover.state()), (5, CircuitState::Open), "a failed probe reopens");
    assert_eq!(status(&app, [1, 0, 0, 3]).await, StatusCode::OK);
    assert_eq!(primary.calls(), 5);

    primary.set(ANSWER);
    clock.advance(Duration::from_secs(5));
    assert_eq!(status(&app, [1, 0, 0, 4]).await, StatusCode::OK);
    assert_eq!((primary.calls(), failover.state()), (6, CircuitState::Closed), "a good probe closes");
    // The primary holds client 1's count from before the outage: 7 left of 8.
    for _ in 0..7 {
        assert_eq!(status(&app, [1, 0, 0, 1]).await, StatusCode::OK);
    }
    assert_eq!(status(&app, [1, 0, 0, 1]).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(primary.calls(), 14);
}

/// A primary that never answers: each call is cut at the failover's timeout and
/// decided by the fallback; once open, nothing waits at all. Half-open lets exactly
/// `probes` calls through to the hanging primary, however many requests arrive.
#[tokio::test(start_paused = true)]
async fn a_hanging_primary_costs_at_most_the_timeout() {
    let clock = ManualClock::new(T0);
    let primary = Scripted::new(&clock);
    primary.set(HANG);
    let timeout = Duration::from_millis(80);
    let failover = Failover::builder(primary.clone(), MemoryBackend::new())
        .failures(2)
        .probes(2)
        .timeout(timeout)
        .cool_down(Duration::from_secs(1))
        .clock(clock.clone())
        .build()
        .unwrap();
    let api = HttpThrottle::builder("failover:hang")
        .rate("1000/min")
        .backend(failover.clone())
        .timeout(Duration::from_secs(10))
        .on_error(OnError::Raise)
        .build()
        .unwrap();
    let app = app(api);
    for n in 0..2 {
        let started = tokio::time::Instant::now();
        assert_eq!(status(&app, [2, 0, 0, 1]).await, StatusCode::OK);
        let waited = started.elapsed();
        assert!(waited >= timeout && waited <= timeout + Duration::from_millis(1), "call {n}: waited {waited:?}");
    }
    assert_eq!(failover.state(), CircuitState::Open);
    let started = tokio::time::Instant::now();
    assert_eq!(status(&app, [2, 0, 0, 1]).await, StatusCode::OK);
    assert_eq!(started.elapsed(), Duration::ZERO, "open: no wait");

    clock.advance(Duration::from_secs(1));
    let requests: Vec<_> = (0..10)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, get_from("/", [2, 0, 0, 2])).await })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(primary.calls(), 2 + 2, "two probes at most");
    assert_eq!(failover.state(), CircuitState::Open, "the probes timed out: open again");
}

/// Stacked limits on one failover are decided together on the fallback while open:
/// a rejection by the second limit consumes nothing from the first.
#[tokio::test]
async fn stacked_limits_fail_over_together() {
    let clock = ManualClock::new(T0);
    let primary = Scripted::new(&clock);
    primary.set(FAIL);
    let failover = Failover::builder(primary.clone(), MemoryBackend::builder().clock(clock.clone()).build().unwrap())
        .failures(1)
        .clock(clock.clone())
        .build()
        .unwrap();
    let burst = HttpThrottle::builder("failover:stack:burst").rate("10/min").backend(failover.clone()).build().unwrap();
    let daily = HttpThrottle::builder("failover:stack:daily").rate("3/min").backend(failover.clone()).build().unwrap();
    let pair = [burst, daily];
    let (parts, _) = get_from("/", [3, 0, 0, 1]).into_parts();
    let mut admitted = 0;
    for _ in 0..8 {
        admitted += usize::from(throttle::hit_all(&pair, &parts).await.is_ok());
    }
    assert_eq!(admitted, 3);
    assert_eq!(failover.state(), CircuitState::Open);
    assert_eq!(pair[0].stat(&parts).await.unwrap().unwrap().hits_remaining, 7);
    assert_eq!(primary.calls(), 1, "only the first call reached the primary");
}

#[test]
fn thresholds_are_checked() {
    type Builder = throttle::backend::FailoverBuilder<MemoryBackend, MemoryBackend>;
    let build = |f: fn(Builder) -> Builder| f(Failover::builder(MemoryBackend::new(), MemoryBackend::new())).build();
    let option = |result: Result<_, InvalidBackendOption>| result.map(|_| ()).unwrap_err().option;
    assert_eq!(option(build(|b| b.failures(0))), "failures");
    assert_eq!(option(build(|b| b.probes(0))), "probes");
    assert_eq!(option(build(|b| b.cool_down(Duration::from_micros(999)))), "cool_down");
    assert_eq!(option(build(|b| b.timeout(Duration::ZERO))), "timeout");
    assert!(build(|b| b.failures(1).probes(1).cool_down(Duration::from_millis(1))).is_ok());
}

/// One request's outcome under load.
#[derive(Default)]
struct Tally {
    ok: u64,
    slowest: Duration,
}

/// The real thing: Redis stopped, restarted, paused and resumed while 16 tasks send
/// requests through an axum app. No request waits past the failover's timeout (plus
/// scheduling slack on a shared 2-core machine); while Redis is out, a client gets
/// exactly the fallback's limit; and traffic returns to Redis by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_paused_and_restarted_under_load() {
    let Some(mut server) = RedisServer::start() else { return };
    let redis = RedisBackend::connect(&server.url()).await.expect("connects");
    // Generous for a busy CI machine: a slow answer must not read as a failure.
    let timeout = Duration::from_millis(250);
    let failover = Failover::builder(DenyCache::new(redis), MemoryBackend::new())
        .failures(3)
        .cool_down(Duration::from_millis(300))
        .timeout(timeout)
        .fallback_rate(half)
        .build()
        .unwrap();
    let build = |uid: &str, rate: &str| {
        HttpThrottle::builder(uid)
            .rate(rate)
            .backend(failover.clone())
            // Longer than the failover's: the failover decides first.
            .timeout(Duration::from_secs(5))
            .on_error(OnError::Raise)
            .build()
            .unwrap()
    };
    let load = app(build("failover:load", "1000000/min"));
    let exact = app(build("failover:exact", "10/min"));

    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..16u8)
        .map(|task| {
            let (load, stop) = (load.clone(), stop.clone());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut n = 0u8;
                while !stop.load(Ordering::Relaxed) {
                    n = n.wrapping_add(1);
                    let started = Instant::now();
                    let status = status(&load, [10, task, 0, n]).await;
                    tally.slowest = tally.slowest.max(started.elapsed());
                    assert_eq!(status, StatusCode::OK, "every request is decided by one backend or the other");
                    tally.ok += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                tally
            })
        })
        .collect();

    let until = |wanted: CircuitState, what: &str| {
        let failover = failover.clone();
        let what = what.to_string();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while failover.state() != wanted {
                assert!(Instant::now() < deadline, "{what}: the circuit never became {wanted:?}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    // While Redis is out: 40 concurrent requests of one new client, exactly 5 admitted
    // (the fallback's half of 10/min).
    let burst = |client: u8| {
        let exact = exact.clone();
        async move {
            let requests: Vec<_> = (0..40)
                .map(|_| {
                    let exact = exact.clone();
                    tokio::spawn(async move { send(&exact, get_from("/", [10, 200, 0, client])).await })
                })
                .collect();
            let mut admitted = 0;
            for request in requests {
                admitted += usize::from(request.await.unwrap().status() == StatusCode::OK);
            }
            admitted
        }
    };

    tokio::time::sleep(Duration::from_millis(300)).await;
    until(CircuitState::Closed, "at first").await;
    assert!(server.command_calls("evalsha") > 0, "Redis decides at first");

    // Stopped: connections refused.
    server.stop();
    until(CircuitState::Open, "stopped").await;
    assert_eq!(burst(1).await, 5, "stopped: the fallback's limit, exactly");
    tokio::time::sleep(Duration::from_millis(700)).await; // several failed probes
    server.restart(); // empty: scripts reload by themselves
    until(CircuitState::Closed, "restarted").await;
    let calls = server.command_calls("evalsha");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(server.command_calls("evalsha") > calls + 10, "traffic is back on Redis");

    // Paused (SIGSTOP): connections open, nothing answers.
    server.pause();
    until(CircuitState::Open, "paused").await;
    assert_eq!(burst(2).await, 5, "paused: the fallback's limit, exactly");
    tokio::time::sleep(Duration::from_millis(700)).await; // several probes time out
    server.resume();
    until(CircuitState::Closed, "resumed").await;
    let calls = server.command_calls("evalsha");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(server.command_calls("evalsha") > calls + 10, "traffic is back on Redis");

    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut slowest) = (0, Duration::ZERO);
    for task in tasks {
        let tally = task.await.expect("no task panicked");
        ok += tally.ok;
        slowest = slowest.max(tally.slowest);
    }
    eprintln!("failover under load: {ok} requests, slowest {slowest:?} (failover timeout {timeout:?})");
    assert!(ok > 100, "the load ran: {ok} requests");
    // A correctness bound, not a benchmark: the timeout plus slack for a busy machine.
    assert!(slowest < timeout + Duration::from_millis(500), "a request waited {slowest:?}");
    // Redis is the one deciding again: a client that reached its limit on Redis.
    until(CircuitState::Closed, "at the end").await;
    for _ in 0..10 {
        assert_eq!(status(&exact, [10, 201, 0, 1]).await, StatusCode::OK);
    }
    assert_eq!(status(&exact, [10, 201, 0, 1]).await, StatusCode::TOO_MANY_REQUESTS, "Redis's 10/min, not 5");
}

/// A login limiter (failures count, successes are given back) whose handler waits at
/// a gate for requests marked `x-hold`.
fn login_app(layer: ThrottleLayer, gate: Arc<tokio::sync::Semaphore>) -> Router {
    Router::new()
        .route(
            "/login",
            axum::routing::post(move |headers: http::HeaderMap| {
                let gate = gate.clone();
                async move {
                    if headers.contains_key("x-hold") {
                        gate.acquire().await.expect("open").forget();
                    }
                    match headers.get("x-password") {
                        Some(password) if password == "right" => StatusCode::NO_CONTENT,
                        _ => StatusCode::UNAUTHORIZED,
                    }
                }
            }),
        )
        .route_layer(layer)
}

fn login(password: &str, hold: bool) -> http::Request<axum::body::Body> {
    let mut request = request_from("POST", "/login", [4, 0, 0, 1], axum::body::Body::empty());
    request.headers_mut().insert("x-password", password.parse().unwrap());
    if hold {
        request.headers_mut().insert("x-hold", "1".parse().unwrap());
    }
    request
}

async fn attempts(app: &Router, password: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(n);
    for _ in 0..n {
        statuses.push(send(app, login(password, false)).await.status().as_u16());
    }
    statuses
}

/// A refund goes to the backend that decided the hit: on the primary while it
/// answers, on the fallback while it fails (a login limiter keeps its contract there),
/// and a hit the fallback counted is given back there even once the primary is back,
/// leaving the primary's count alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_goes_to_the_backend_that_decided_the_hit() {
    let clock = ManualClock::new(T0);
    let primary = Scripted::new(&clock);
    let fallback = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
    let failover = Failover::builder(primary.clone(), fallback.clone())
        .failures(1)
        .cool_down(Duration::from_secs(5))
        .clock(clock.clone())
        .build()
        .unwrap();
    let logins = HttpThrottle::builder("failover:refund")
        .rate("3/15min")
        .count_when(CountWhen::Failures)
        .backend(failover.clone())
        .build()
        .unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let app = login_app(ThrottleLayer::new(logins), gate.clone());

    // The primary decides, and takes successes back.
    assert_eq!(attempts(&app, "right", 5).await, [204; 5]);
    assert_eq!(attempts(&app, "wrong", 4).await, [401, 401, 401, 429], "the primary counts failures only");

    // The primary fails: the fallback decides, and takes successes back too.
    primary.set(FAIL);
    assert_eq!(attempts(&app, "right", 5).await, [204; 5]);
    assert_eq!(failover.state(), CircuitState::Open);
    assert_eq!(attempts(&app, "wrong", 2).await, [401, 401]);
    // One more success is held at the gate while the primary comes back.
    let held = tokio::spawn({
        let app = app.clone();
        async move { send(&app, login("right", true)).await.status().as_u16() }
    });
    let decided = async {
        while fallback_count(&fallback) < 3 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), decided).await.expect("the held request is decided");
    assert_eq!(attempts(&app, "wrong", 1).await, [429], "the fallback is full while it is pending");

    primary.set(ANSWER);
    clock.advance(Duration::from_secs(5));
    assert_eq!(attempts(&app, "wrong", 1).await, [429], "a probe: the primary answers (full) and closes");
    assert_eq!(failover.state(), CircuitState::Closed);
    gate.add_permits(1);
    assert_eq!(held.await.unwrap(), 204);
    assert_eq!(attempts(&app, "wrong", 1).await, [429], "given back on the fallback, not on the full primary");

    // The fallback has the unit back.
    primary.set(FAIL);
    assert_eq!(attempts(&app, "wrong", 2).await, [401, 429]);
    assert_eq!(failover.state(), CircuitState::Open);
}

/// How many units the fallback holds for the login client (its fixed window's count).
fn fallback_count(fallback: &MemoryBackend) -> u64 {
    let key = "throttle:failover:refund:ip=4.0.0.1:default";
    3 - fallback.stat_now(key, &throttle::strategy::FixedWindow, Rate::per_millis(3, 900_000)).remaining
}

/// Stacked throttles on one failover are decided together on the fallback while the
/// primary fails, and a success is given back on the fallback to each of them.
#[tokio::test]
async fn stacked_refunds_follow_the_joint_decision_to_the_fallback() {
    let clock = ManualClock::new(T0);
    let primary = Scripted::new(&clock);
    primary.set(FAIL);
    let fallback = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
    let failover = Failover::builder(primary.clone(), fallback.clone())
        .failures(1)
        .cool_down(Duration::from_secs(60))
        .clock(clock.clone())
        .build()
        .unwrap();
    let build =
        |uid: &str, rate: &str| HttpThrottle::builder(uid).rate(rate).backend(failover.clone()).build().unwrap();
    let layer = ThrottleLayer::new(build("failover:stacked:a", "2/15min"))
        .and(build("failover:stacked:b", "3/15min"))
        .count_when(CountWhen::Failures);
    let app = login_app(layer, Arc::new(tokio::sync::Semaphore::new(0)));
    assert_eq!(attempts(&app, "wrong", 1).await, [401], "the primary fails once: open");
    assert_eq!(failover.state(), CircuitState::Open);
    assert_eq!(attempts(&app, "right", 6).await, [204; 6], "decided together on the fallback, given back there");
    assert_eq!(attempts(&app, "wrong", 2).await, [401, 429], "`a` allows 2 failures");
    assert_eq!(primary.calls(), 1, "nothing went to the primary while open");
}
