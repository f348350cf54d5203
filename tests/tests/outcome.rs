//! Counting by outcome through real Routers: a failure-only login limiter, pending
//! requests holding their units until their outcome is known, every strategy in
//! memory and on Redis, the deny cache, and the direct API's refunds.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::redis_server::{RedisServer, UserStrategy};
use support::test_redis::TestRedis;
use support::*;
use throttle::backend::{Backend, DenyCache, Hit, Key, RedisBackend, Reply};
use throttle::{CountWhen, HttpThrottle, ThrottleLayer, backend::ManualClock, throttle};
use tokio::sync::Semaphore;

const CLIENT: [u8; 4] = [7, 7, 7, 7];

/// A throttle at `rate` that counts only failed responses, on a fresh in-memory backend.
fn counting_failures(uid: &str, rate: &str) -> HttpThrottle {
    let (backend, _clock) = manual_backend();
    HttpThrottle::builder(uid).rate(rate).count_when(CountWhen::Failures).backend(backend).build().unwrap()
}

/// 204 for the right password, 401 otherwise.
async fn check_password(headers: HeaderMap) -> StatusCode {
    match headers.get("x-password") {
        Some(password) if password == "right" => StatusCode::NO_CONTENT,
        _ => StatusCode::UNAUTHORIZED,
    }
}

fn login(password: &str) -> http::Request<Body> {
    let mut request = request_from("POST", "/login", CLIENT, Body::empty());
    request.headers_mut().insert("x-password", password.parse().unwrap());
    request
}

async fn attempt(app: &Router, password: &str) -> u16 {
    send(app, login(password)).await.status().as_u16()
}

/// The login limiter's contract with a limit of 3: any number of successes, then the
/// 4th failure is refused, and so is everything after it (decided before the handler).
async fn assert_login_limiter(app: &Router, case: &str) {
    for _ in 0..20 {
        assert_eq!(attempt(app, "right").await, 204, "{case}: successful logins are not counted");
    }
    for failure in 1..=3 {
        assert_eq!(attempt(app, "wrong").await, 401, "{case}: failure {failure}");
        if failure < 3 {
            assert_eq!(attempt(app, "right").await, 204, "{case}: a success between failures is free");
        }
    }
    assert_eq!(attempt(app, "wrong").await, 429, "{case}: the 4th failure is refused");
    assert_eq!(attempt(app, "right").await, 429, "{case}: the limit is decided before the handler runs");
}

static ATTRIBUTE_BACKEND: std::sync::LazyLock<(throttle::backend::MemoryBackend, ManualClock)> =
    std::sync::LazyLock::new(manual_backend);

#[throttle(uid = "outcome:attribute", rate = "3/15min", count = "failures", backend = ATTRIBUTE_BACKEND.0.clone())]
async fn annotated_login(headers: HeaderMap) -> StatusCode {
    check_password(headers).await
}

#[tokio::test]
async fn a_failure_only_login_limiter_lets_successes_through_and_blocks_the_failure_after_the_limit() {
    let attribute = Router::new().route("/login", post(annotated_login));
    assert_login_limiter(&attribute, "attribute").await;

    let (backend, _clock) = manual_backend();
    let own = HttpThrottle::builder("outcome:own")
        .rate("3/15min")
        .count_when(CountWhen::Failures)
        .backend(backend.clone())
        .build()
        .unwrap();
    let layered = Router::new().route("/login", post(check_password)).route_layer(ThrottleLayer::new(own));
    assert_login_limiter(&layered, "the throttle's own count_when, in a layer").await;

    let plain = HttpThrottle::builder("outcome:layer").rate("3/15min").backend(backend).build().unwrap();
    let layer = ThrottleLayer::new(plain).count_when(CountWhen::Failures);
    let layered = Router::new().route("/login", post(check_password)).route_layer(layer);
    assert_login_limiter(&layered, "the layer's count_when").await;
}

#[tokio::test]
async fn counting_successes_gives_back_the_failures() {
    let (backend, _clock) = manual_backend();
    let throttle = HttpThrottle::builder("outcome:successes").rate("2/min").backend(backend).build().unwrap();
    let app = Router::new()
        .route("/login", post(check_password))
        .route_layer(ThrottleLayer::new(throttle).count_when(CountWhen::Successes));
    for _ in 0..10 {
        assert_eq!(attempt(&app, "wrong").await, 401, "failures are free");
    }
    assert_eq!(attempt(&app, "right").await, 204);
    assert_eq!(attempt(&app, "right").await, 204);
    assert_eq!(attempt(&app, "right").await, 429);
}

/// Every strategy gives a hit back in memory (the queue drains what the hit holds
/// from its head, as the leaky bucket gives back).
#[tokio::test]
async fn every_strategy_gives_back_in_memory() {
    for kind in throttle::strategy::StrategyKind::ALL {
        let (backend, _clock) = manual_backend();
        let throttle = HttpThrottle::builder("outcome:strategy")
            .rate("3/15min")
            .strategy_name(kind.name())
            .count_when(CountWhen::Failures)
            .backend(backend)
            .build()
            .unwrap();
        let app = Router::new().route("/login", post(check_password)).route_layer(ThrottleLayer::new(throttle));
        assert_login_limiter(&app, kind.name()).await;
    }
}

/// A gate the handler waits at, so requests stay pending until the test opens it.
#[derive(Clone)]
struct Gate {
    inside: Arc<AtomicUsize>,
    open: Arc<Semaphore>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate { inside: Arc::default(), open: Arc::new(Semaphore::new(0)) }
    }
}

impl Gate {
    fn app(&self, throttle: HttpThrottle) -> Router {
        let gate = self.clone();
        Router::new()
            .route(
                "/login",
                post(move |headers: HeaderMap| {
                    let gate = gate.clone();
                    async move {
                        gate.inside.fetch_add(1, Ordering::SeqCst);
                        gate.open.acquire().await.expect("open").forget();
                        check_password(headers).await.into_response()
                    }
                }),
            )
            .route_layer(ThrottleLayer::new(throttle))
    }

    /// Waits until `inside` requests have reached the handler; a generous bound turns
    /// a request that never arrives into a failure instead of a hang.
    async fn wait_for(&self, inside: usize) {
        let arrived = async {
            while self.inside.load(Ordering::SeqCst) < inside {
                tokio::task::yield_now().await;
            }
        };
        let waited = tokio::time::timeout(std::time::Duration::from_secs(30), arrived).await;
        assert!(waited.is_ok(), "{inside} requests should have reached the handler");
    }
}

/// With a limit of 4, four pending requests hold the four units: a fifth concurrent
/// one is refused while they are pending, whatever their outcome will be; once they
/// succeed, their units come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_requests_hold_their_units_until_their_outcome_is_known() {
    let throttle = counting_failures("outcome:pending", "4/15min");
    let gate = Gate::default();
    let app = gate.app(throttle);
    for round in 1..=3 {
        let pending: Vec<_> = (0..4)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { attempt(&app, "right").await })
            })
            .collect();
        gate.wait_for(4 * round).await;
        assert_eq!(attempt(&app, "right").await, 429, "round {round}: the 5th is refused while 4 are pending");
        gate.open.add_permits(4);
        for task in pending {
            assert_eq!(task.await.unwrap(), 204);
        }
    }
}

/// Many concurrent requests against a limit of 4, all held pending: exactly 4 reach
/// the handler, the others are refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pending_requests_are_admitted_exactly_up_to_the_limit() {
    let throttle = counting_failures("outcome:concurrent", "4/15min");
    let gate = Gate::default();
    let app = gate.app(throttle);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { attempt(&app, "wrong").await })
        })
        .collect();
    gate.wait_for(4).await;
    gate.open.add_permits(64);
    let mut statuses = [0usize; 2];
    for task in tasks {
        match task.await.unwrap() {
            401 => statuses[0] += 1,
            429 => statuses[1] += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(statuses, [4, 60]);
    assert_eq!(gate.inside.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn the_direct_api_refunds_a_hit_once() {
    let (backend, _clock) = manual_backend();
    let exports = HttpThrottle::builder("outcome:direct").rate("2/h").backend(backend).build().unwrap();
    let request = get_from("/", CLIENT);
    let plain = exports.hit(&request).await.unwrap();
    assert!(!plain.is_refundable(), "a plain hit takes no ticket");
    let mut admitted = exports.hit(&request).refundable().await.unwrap();
    assert!(admitted.is_refundable());
    assert!(!admitted.clone().is_refundable(), "clones carry no ticket");
    assert_eq!(admitted.remaining(), Some(0));
    assert!(exports.hit(&request).await.is_err());
    assert!(admitted.refund().await.unwrap());
    assert!(!admitted.refund().await.unwrap(), "a hit is given back once");
    assert!(exports.hit(&request).await.is_ok(), "the refunded unit is available again");
    assert!(exports.hit(&request).await.is_err());

    // `settle` applies the throttle's count_when to a response.
    let logins = counting_failures("outcome:settle", "1/h");
    let mut admitted = logins.hit(&request).await.unwrap();
    assert!(!admitted.settle(&StatusCode::UNAUTHORIZED.into_response()).await.unwrap(), "a failure counts");
    assert!(logins.hit(&request).await.is_err());
    let logins = counting_failures("outcome:settle", "1/h");
    let mut admitted = logins.hit(&request).await.unwrap();
    assert!(admitted.settle(&StatusCode::OK.into_response()).await.unwrap(), "a success is given back");
    assert!(logins.hit(&request).await.is_ok());
}

/// On Redis (decisions on a manual clock, so they are exact and repeatable), every
/// strategy gives back: those stored as one string through compare-and-set, the log
/// and the queue by taking the cost out of the entries beside their header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_every_strategy_gives_back() {
    let Some(server) = RedisServer::start() else { return };
    let names = throttle::strategy::StrategyKind::ALL.iter().map(|kind| kind.name()).chain(["user_cas"]);
    for name in names {
        let clock = ManualClock::new(T0);
        let redis = TestRedis::connect(&server.url()).await.unwrap().with_clock(clock);
        let builder = HttpThrottle::builder(format!("outcome:redis:{name}")).rate("3/15min");
        let builder = match name {
            "user_cas" => builder.strategy(UserStrategy(throttle::strategy::StrategyKind::Gcra.build())),
            _ => builder.strategy_name(name),
        };
        let throttle = builder.count_when(CountWhen::Failures).backend(redis).build().unwrap();
        let app = Router::new().route("/login", post(check_password)).route_layer(ThrottleLayer::new(throttle));
        assert_login_limiter(&app, &format!("redis {name}")).await;
    }
}

/// Spawns `n` login attempts at once, with `password`.
fn spawn_attempts(app: &Router, n: usize, password: &'static str) -> Vec<tokio::task::JoinHandle<u16>> {
    (0..n)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { attempt(&app, password).await })
        })
        .collect()
}

async fn joined(tasks: Vec<tokio::task::JoinHandle<u16>>) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(tasks.len());
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// Exact under concurrency, on a real redis-server, for every strategy (the log and
/// the queue change the list beside their header): 100 concurrent attempts against a
/// limit of 40 hold exactly 40 units; 15 of them succeed and are given back at once,
/// while 100 more attempts race with those refunds; then 100 more. Across the two
/// later waves, exactly 15 are admitted: no refund is lost or counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_redis_concurrent_refunds_give_back_exactly() {
    let Some(server) = RedisServer::start() else { return };
    const LIMIT: usize = 40;
    const GIVEN_BACK: usize = 15;
    for kind in throttle::strategy::StrategyKind::ALL {
        // A frozen clock: nothing drains or ages out on its own, so every count is exact.
        let redis = TestRedis::connect(&server.url()).await.unwrap().with_clock(ManualClock::new(T0));
        let throttle = HttpThrottle::builder(format!("outcome:concurrent-refunds:{}", kind.name()))
            .rate("40/h")
            .strategy_name(kind.name())
            .count_when(CountWhen::Failures)
            .backend(redis)
            // A loaded machine may take long to answer 300 requests: never a timeout
            // (which would be a 429, or a refund kept counted), and no error hidden.
            .timeout(std::time::Duration::from_secs(60))
            .on_error(throttle::OnError::Raise)
            .build()
            .unwrap();
        let successes = Arc::new(AtomicUsize::new(GIVEN_BACK));
        let gate = Arc::new(Semaphore::new(0));
        let inside = Arc::new(AtomicUsize::new(0));
        let handler = {
            let (successes, gate, inside) = (successes.clone(), gate.clone(), inside.clone());
            move |headers: HeaderMap| {
                let (successes, gate, inside) = (successes.clone(), gate.clone(), inside.clone());
                async move {
                    inside.fetch_add(1, Ordering::SeqCst);
                    gate.acquire().await.expect("open").forget();
                    // 15 of the first wave succeed (and are given back); all else fails.
                    let first = headers.get("x-password").is_some_and(|p| p == "first");
                    let success = first
                        && successes.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                    if success { StatusCode::NO_CONTENT } else { StatusCode::UNAUTHORIZED }
                }
            }
        };
        let app = Router::new().route("/login", post(handler)).route_layer(ThrottleLayer::new(throttle));
        let name = kind.name();

        let first = spawn_attempts(&app, 100, "first");
        let finished = || first.iter().filter(|t| t.is_finished()).count();
        let reached = async {
            while inside.load(Ordering::SeqCst) < LIMIT || finished() < 60 {
                tokio::task::yield_now().await;
            }
        };
        let waited = tokio::time::timeout(std::time::Duration::from_secs(30), reached).await;
        let (held, refused) = (inside.load(Ordering::SeqCst), finished());
        assert!(waited.is_ok(), "{name}: 40 admitted and 60 refused, not {held} and {refused}");
        // Release the 40 and send 100 more at the same moment: refunds race with hits.
        gate.add_permits(1_000);
        let racing = spawn_attempts(&app, 100, "later");
        let first = joined(first).await;
        assert_eq!((count(&first, 204), count(&first, 401), count(&first, 429)), (15, 25, 60), "{name}");
        let racing = joined(racing).await;
        let after = joined(spawn_attempts(&app, 100, "later")).await;
        assert_eq!(inside.load(Ordering::SeqCst), LIMIT + count(&racing, 401) + count(&after, 401), "{name}");
        assert_eq!(count(&racing, 204) + count(&after, 204), 0, "{name}: every later admission fails");
        assert_eq!(
            count(&racing, 401) + count(&after, 401),
            GIVEN_BACK,
            "{name}: exactly the 15 given back are admitted again"
        );
    }
}

/// On Redis server time, the moment a refund measures from is the server's reading
/// less the time elapsed here: a fixed window gives back exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_server_time_a_fixed_window_gives_back() {
    let Some(server) = RedisServer::start() else { return };
    let redis = TestRedis::connect(&server.url()).await.unwrap();
    let throttle = HttpThrottle::builder("outcome:redis:server-time")
        .rate("3/h")
        .count_when(CountWhen::Failures)
        .backend(redis)
        .build()
        .unwrap();
    let app = Router::new().route("/login", post(check_password)).route_layer(ThrottleLayer::new(throttle));
    assert_login_limiter(&app, "redis server time").await;
}

/// A deny cache in front of Redis forgets the client's cached rejection once a hit is
/// given back, so the unit is usable at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_clears_the_deny_cache() {
    let Some(server) = RedisServer::start() else { return };
    let cached = DenyCache::new(RedisBackend::connect(&server.url()).await.unwrap());
    let throttle = HttpThrottle::builder("outcome:deny-cache").rate("1/h").backend(cached.clone()).build().unwrap();
    let request = get_from("/", CLIENT);
    let mut admitted = throttle.hit(&request).refundable().await.unwrap();
    assert!(throttle.hit(&request).await.is_err());
    assert_eq!(cached.len(), 1, "the rejection is cached");
    assert!(admitted.refund().await.unwrap());
    assert_eq!(cached.len(), 0, "and forgotten with the refund");
    assert!(throttle.hit(&request).await.is_ok());
    assert!(throttle.hit(&request).await.is_err());
}

/// A backend with no refunds (the trait's default) keeps hits counted.
#[tokio::test]
async fn a_backend_without_refunds_keeps_the_hit_counted() {
    #[derive(Debug, Clone)]
    struct NoRefunds(throttle::backend::MemoryBackend);
    impl Backend for NoRefunds {
        fn namespace(&self) -> &str {
            self.0.namespace()
        }
        fn hit<'a>(&'a self, hit: Hit<'a>) -> Reply<'a, throttle::strategy::Decision> {
            self.0.hit(hit)
        }
        fn stat<'a>(
            &'a self,
            key: Key<'a>,
            strategy: &'a dyn throttle::strategy::DynStrategy,
            rate: throttle::Rate,
        ) -> Reply<'a, throttle::strategy::Snapshot> {
            self.0.stat(key, strategy, rate)
        }
        fn reset<'a>(&'a self, key: Key<'a>) -> Reply<'a, ()> {
            self.0.reset(key)
        }
    }
    let (backend, _clock) = manual_backend();
    let throttle = HttpThrottle::builder("outcome:no-refunds").rate("1/h").backend(NoRefunds(backend)).build().unwrap();
    let mut admitted = throttle.hit(&get_from("/", CLIENT)).refundable().await.unwrap();
    assert!(!admitted.refund().await.unwrap());
    assert!(throttle.hit(&get_from("/", CLIENT)).await.is_err());
}

static HEADERS_BACKEND: std::sync::LazyLock<(throttle::backend::MemoryBackend, ManualClock)> =
    std::sync::LazyLock::new(manual_backend);

#[throttle(uid = "outcome:burst", rate = "10/min", name = BURST, backend = HEADERS_BACKEND.0.clone())]
#[throttle(
    uid = "outcome:headers",
    rate = "2/15min",
    count = "failures",
    headers = "always",
    backend = HEADERS_BACKEND.0.clone()
)]
async fn login_with_headers(headers: HeaderMap) -> (StatusCode, [(&'static str, &'static str); 1]) {
    (check_password(headers).await, [("x-ratelimit-remaining", "handler's own")])
}

/// Stacked attributes, one counting failures: its hits are settled, the other's count
/// every request; the handler's own headers win, as with `headers` alone.
#[tokio::test]
async fn stacked_attributes_settle_only_the_throttle_that_counts_by_outcome() {
    let app = Router::new().route("/login", post(login_with_headers));
    for _ in 0..5 {
        let response = send(&app, login("right")).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(header(&response, "x-ratelimit-remaining"), Some("handler's own"));
        assert_eq!(header(&response, "x-ratelimit-limit"), Some("2"), "the throttle's headers are added");
    }
    assert_eq!(attempt(&app, "wrong").await, 401);
    assert_eq!(attempt(&app, "wrong").await, 401);
    assert_eq!(attempt(&app, "wrong").await, 429, "2 failures per 15 minutes");
    let burst = BURST.stat(&get_from("/", CLIENT)).await.unwrap().unwrap();
    assert_eq!(
        burst.hits_remaining, 3,
        "the burst limit counted the 7 admitted requests (one store: not the refused one)"
    );
}
