//! Shadow mode through real Routers: a shadowed throttle admits everything, decides and
//! counts exactly as the same throttle enforcing on another backend, carries no headers
//! unless told to, switches at runtime (from the throttle or the registry), and in a
//! stack leaves the enforcing throttles exact.

mod support;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use std::time::Duration;
use support::*;
use throttle::registry::Registry;
use throttle::{
    HttpThrottle, ThrottleLayer,
    backend::{ManualClock, MemoryBackend},
    headers::DEFAULT_HEADERS_ALWAYS,
};

fn app(throttle: HttpThrottle) -> Router {
    Router::new().route("/", get(|| async { "ok" })).layer(ThrottleLayer::new(throttle))
}

/// A hostile mix: three clients, bursts, waits across window boundaries.
fn script() -> Vec<([u8; 4], u64)> {
    let mut script = Vec::new();
    for round in 0u64..40 {
        let client = [[10, 0, 0, 1], [10, 0, 0, 2], [10, 0, 0, 3]][(round % 3) as usize];
        let burst = 1 + round % 7;
        for i in 0..burst {
            script.push((client, if i == 0 { (round * 7_919) % 20_000 } else { 0 }));
        }
    }
    script
}

/// Runs the script on a router; how many got each status, per client.
async fn replay(app: &Router, clock: &ManualClock, script: &[([u8; 4], u64)]) -> Vec<(u8, StatusCode)> {
    let mut statuses = Vec::new();
    for &(client, advance) in script {
        clock.advance(Duration::from_millis(advance));
        statuses.push((client[3], send(app, get_from("/", client)).await.status()));
    }
    statuses
}

#[tokio::test]
async fn shadow_mode_admits_everything_and_counts_exactly_the_rejections_enforcing_mode_makes() {
    for strategy in ["fixed_window", "sliding_window_counter", "sliding_window_log", "token_bucket", "gcra"] {
        let (enforcing_backend, enforcing_clock) = manual_backend();
        let (shadow_backend, shadow_clock) = manual_backend();
        let build = |uid: &str, backend: &MemoryBackend, shadow: bool| {
            HttpThrottle::builder(uid)
                .rate("5/10s")
                .strategy_name(strategy)
                .backend(backend.clone())
                .shadow(shadow)
                .track_top_denied(10)
                .build()
                .unwrap()
        };
        let enforcing = build("shadow:enforcing", &enforcing_backend, false);
        let shadowed = build("shadow:shadowed", &shadow_backend, true);
        let script = script();
        let enforced = replay(&app(enforcing.clone()), &enforcing_clock, &script).await;
        let shadowed_statuses = replay(&app(shadowed.clone()), &shadow_clock, &script).await;

        assert!(shadowed_statuses.iter().all(|(_, s)| *s == StatusCode::OK), "{strategy}: shadow mode never rejects");
        let rejected = |client: u8| {
            enforced.iter().filter(|(c, s)| *c == client && *s == StatusCode::TOO_MANY_REQUESTS).count() as u64
        };
        let total: u64 = [1, 2, 3].iter().map(|&c| rejected(c)).sum();
        assert!(total >= 10, "{strategy}: the script must make enforcing mode reject ({total})");
        // Per client, the would-be rejections are exactly the enforced ones.
        let denials = |throttle: &HttpThrottle, client: u8| {
            let key = format!(":ip=10.0.0.{client}:");
            throttle.top_denied().iter().find(|d| d.key.contains(&key)).map_or(0, |d| {
                assert_eq!(d.overcount, 0, "a list larger than the clients counts exactly");
                d.denials
            })
        };
        for client in [1, 2, 3] {
            assert_eq!(denials(&shadowed, client), rejected(client), "{strategy}: client {client}");
            assert_eq!(denials(&enforcing, client), rejected(client), "{strategy}: client {client}");
        }
        // And the state left behind is the same: the next decisions agree.
        for client in [[10, 0, 0, 1], [10, 0, 0, 2], [10, 0, 0, 3]] {
            let a = enforcing.stat(&get_from("/", client)).await.unwrap().unwrap();
            let b = shadowed.stat(&get_from("/", client)).await.unwrap().unwrap();
            assert_eq!((a.hits_remaining, a.wait_ms), (b.hits_remaining, b.wait_ms), "{strategy}");
        }
    }
}

#[tokio::test]
async fn a_shadowed_throttle_sends_no_headers_unless_told_to() {
    let (backend, _clock) = manual_backend();
    let quiet = HttpThrottle::builder("shadow:quiet")
        .rate("1/min")
        .headers(&DEFAULT_HEADERS_ALWAYS)
        .backend(backend.clone())
        .shadow(true)
        .build()
        .unwrap();
    let app_quiet = app(quiet);
    for _ in 0..3 {
        let response = send(&app_quiet, get_from("/", [1, 1, 1, 1])).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "x-ratelimit-remaining"), None, "no sign of the shadowed throttle");
        assert_eq!(header(&response, "retry-after"), None);
    }
    let loud = HttpThrottle::builder("shadow:loud")
        .rate("1/min")
        .headers(&DEFAULT_HEADERS_ALWAYS)
        .backend(backend)
        .shadow(true)
        .shadow_headers(true)
        .build()
        .unwrap();
    let app_loud = app(loud);
    let first = send(&app_loud, get_from("/", [1, 1, 1, 1])).await;
    assert_eq!(header(&first, "x-ratelimit-remaining"), Some("0"));
    let second = send(&app_loud, get_from("/", [1, 1, 1, 1])).await;
    assert_eq!(second.status(), StatusCode::OK, "still admitted");
    assert_eq!(header(&second, "x-ratelimit-remaining"), Some("0"), "the headers its 429 would have had");
}

#[tokio::test]
async fn shadow_mode_switches_at_runtime_from_the_throttle_and_the_registry() {
    let (backend, _clock) = manual_backend();
    let registry = Registry::new();
    let throttle =
        HttpThrottle::builder("shadow:switch").rate("2/min").backend(backend).registry(&registry).build().unwrap();
    let app = app(throttle.clone());
    let status = || async { send(&app, get_from("/", [2, 2, 2, 2])).await.status() };
    assert_eq!(status().await, StatusCode::OK);
    assert_eq!(status().await, StatusCode::OK);
    assert_eq!(status().await, StatusCode::TOO_MANY_REQUESTS);

    let entry = registry.get("shadow:switch").expect("registered");
    entry.set_shadow(true);
    assert!(throttle.is_shadow() && entry.is_shadow());
    for _ in 0..5 {
        assert_eq!(status().await, StatusCode::OK, "shadowed from the registry");
    }
    throttle.set_shadow(false);
    assert!(!entry.is_shadow());
    assert_eq!(status().await, StatusCode::TOO_MANY_REQUESTS, "enforcing again, with the same counts");
}

/// A shadowed throttle in a stack never lets the enforcing ones miss a hit: when it
/// would reject, the others are decided as if it were not there, in either order, on
/// one store (decided jointly) and on two.
#[tokio::test]
async fn in_a_stack_the_enforcing_throttles_stay_exact_around_a_shadowed_one() {
    for (shared_store, shadow_first) in [(true, true), (true, false), (false, true), (false, false)] {
        let (backend, _clock) = manual_backend();
        let (other, _other_clock) = manual_backend();
        let shadowed = HttpThrottle::builder("shadow:stack:shadowed")
            .rate("2/min")
            .backend(backend.clone())
            .shadow(true)
            .track_top_denied(4)
            .build()
            .unwrap();
        let enforcing = HttpThrottle::builder("shadow:stack:enforcing")
            .rate("5/min")
            .backend(if shared_store { backend } else { other })
            .build()
            .unwrap();
        let layer = match shadow_first {
            true => ThrottleLayer::new(shadowed.clone()).and(enforcing.clone()),
            false => ThrottleLayer::new(enforcing.clone()).and(shadowed.clone()),
        };
        let app = Router::new().route("/", get(|| async { "ok" })).layer(layer);
        let mut statuses = Vec::new();
        for _ in 0..8 {
            statuses.push(send(&app, get_from("/", [3, 3, 3, 3])).await.status().as_u16());
        }
        let case = format!("shared store: {shared_store}, shadow first: {shadow_first}");
        assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429], "{case}");
        let remaining = enforcing.stat(&get_from("/", [3, 3, 3, 3])).await.unwrap().unwrap().hits_remaining;
        assert_eq!(remaining, 0, "{case}");
        // The shadowed limit saw every request it was asked about: 3 would-be
        // rejections among the 5 admitted, and those the enforcing one rejected when
        // it came first and stopped the request (it never reached the shadowed one).
        let denials: u64 = shadowed.top_denied().iter().map(|d| d.denials).sum();
        assert_eq!(denials, if shadow_first { 6 } else { 3 }, "{case}");
    }
}

/// The same script, shadowed on Redis and enforced in memory, on one manual clock:
/// the same would-be rejections per client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadowed_on_redis_it_counts_what_memory_enforces() {
    let Some(server) = support::redis_server::RedisServer::start() else { return };
    let clock = ManualClock::new(T0);
    let memory = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
    let redis = support::test_redis::TestRedis::connect(&server.url()).await.unwrap().with_clock(clock.clone());
    let enforcing = HttpThrottle::builder("shadow:redis:enforcing").rate("5/10s").backend(memory).build().unwrap();
    let shadowed = HttpThrottle::builder("shadow:redis:shadowed")
        .rate("5/10s")
        .backend(redis)
        .shadow(true)
        .track_top_denied(10)
        .build()
        .unwrap();
    let (enforcing_app, shadowed_app) = (app(enforcing), app(shadowed.clone()));
    let mut rejected = [0u64; 4];
    for (client, advance) in script() {
        clock.advance(Duration::from_millis(advance));
        if send(&enforcing_app, get_from("/", client)).await.status() == StatusCode::TOO_MANY_REQUESTS {
            rejected[usize::from(client[3])] += 1;
        }
        assert_eq!(send(&shadowed_app, get_from("/", client)).await.status(), StatusCode::OK);
    }
    for client in 1..=3u8 {
        let key = format!(":{{ip=10.0.0.{client}}}:");
        let plain = format!(":ip=10.0.0.{client}:");
        let denials = shadowed
            .top_denied()
            .iter()
            .find(|d| d.key.contains(&key) || d.key.contains(&plain))
            .map_or(0, |d| d.denials);
        assert_eq!(denials, rejected[usize::from(client)], "client {client}");
    }
}

static ATTRIBUTE_BACKEND: std::sync::LazyLock<(MemoryBackend, ManualClock)> = std::sync::LazyLock::new(manual_backend);

#[throttle::throttle(uid = "shadow:attribute", rate = "1/min", shadow = true, backend = ATTRIBUTE_BACKEND.0.clone())]
async fn annotated() -> &'static str {
    "ok"
}

#[tokio::test]
async fn the_attribute_and_the_direct_api_shadow_too() {
    let app = Router::new().route("/", get(annotated));
    for _ in 0..3 {
        assert_eq!(send(&app, get_from("/", [5, 5, 5, 5])).await.status(), StatusCode::OK);
    }
    let throttle = ANNOTATED_THROTTLE.get().unwrap();
    assert!(throttle.is_shadow());
    throttle.set_shadow(false);
    assert_eq!(send(&app, get_from("/", [5, 5, 5, 5])).await.status(), StatusCode::TOO_MANY_REQUESTS);

    let (backend, _clock) = manual_backend();
    let direct = HttpThrottle::builder("shadow:direct").rate("1/min").backend(backend).shadow(true).build().unwrap();
    let request = get_from("/", [5, 5, 5, 5]);
    let first = direct.hit(&request).await.unwrap();
    assert!(first.is_counted() && !first.is_shadowed());
    let second = direct.hit(&request).await.expect("admitted in shadow mode");
    assert!(second.is_shadowed() && !second.is_counted(), "a would-be rejection, not counted");
}
