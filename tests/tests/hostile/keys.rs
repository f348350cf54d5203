//! Hostile: keys. Whatever a client sends (a huge API key, re-encoded paths, invented
//! 404 paths and methods, an empty header), keys stay at most 256 bytes, the client
//! gets no more than the limit, and the number of buckets follows the app's routes, not
//! the client's inventions.

use crate::support::redis_server::{RedisCluster, RedisServer};
use crate::support::{get_from, manual_backend, request_from, send};
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::routing::{any, get};
use http::{HeaderValue, StatusCode};
use throttle::backend::RedisBackend;
use throttle::{HttpThrottle, ThrottleLayer, backend::MemoryBackend, identity::Identifier};
use tower::{Layer, ServiceExt};

/// The bound the crate promises for every stored key (`throttle::key::MAX_KEY_LEN`).
const MAX_KEY_LEN: usize = 256;

fn by_api_key(uid: &str, rate: &str, backend: &MemoryBackend) -> HttpThrottle {
    HttpThrottle::builder(uid)
        .rate(rate)
        .backend(backend.clone())
        .identifier(Identifier::header("x-api-key").unwrap())
        .build()
        .unwrap()
}

/// A GET of `/data` carrying `api_key`.
fn with_api_key(api_key: &[u8]) -> Request {
    let mut request = get_from("/data", [203, 0, 113, 9]);
    request.headers_mut().insert("x-api-key", HeaderValue::from_bytes(api_key).expect("obs-text is a valid value"));
    request
}

fn data_app(layer: ThrottleLayer) -> Router {
    Router::new().route("/data", get(|| async { "data" })).layer(layer)
}

/// `n` requests from `request()`: (admitted, throttled).
async fn count(app: &Router, n: usize, request: impl Fn() -> Request) -> (usize, usize) {
    let (mut ok, mut throttled) = (0, 0);
    for _ in 0..n {
        match send(app, request()).await.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    (ok, throttled)
}

/// An 8,000-byte API key, and a 400 KB one of `0xFF` bytes (each a 3-byte U+FFFD once
/// decoded, then 9 bytes escaped: 3.6 MB before): both keys fit in 256 bytes, and each
/// client is throttled at the limit when it repeats its key.
#[tokio::test]
async fn a_huge_api_key_gives_a_bounded_key_and_is_throttled_at_the_limit() {
    let (backend, _clock) = manual_backend();
    let api = by_api_key("hostile:keys:huge", "3/min", &backend);
    let app = data_app(ThrottleLayer::new(api.clone()));
    let long = "k".repeat(8_000);
    let junk = vec![0xFF; 400_000];
    for api_key in [long.as_bytes(), &junk] {
        assert_eq!(count(&app, 5, || with_api_key(api_key)).await, (3, 2), "{} bytes", api_key.len());
        let key = api.stat(&with_api_key(api_key)).await.unwrap().expect("counted").key;
        assert!(key.len() <= MAX_KEY_LEN, "a {}-byte API key gave a {}-byte key", api_key.len(), key.len());
    }
    assert_eq!(backend.len(), 2, "one bucket per client");
}

/// Long keys that differ in one byte only (first or last) are still different clients,
/// with bounded keys: the bound is a digest, not a truncation.
#[tokio::test]
async fn distinct_long_api_keys_stay_distinct_buckets() {
    let (backend, _clock) = manual_backend();
    let api = by_api_key("hostile:keys:distinct", "1/min", &backend);
    let app = data_app(ThrottleLayer::new(api.clone()));
    let base = "k".repeat(8_000);
    let variants = [format!("{base}a"), format!("{base}b"), format!("a{base}"), format!("b{base}")];
    let mut keys = Vec::new();
    for api_key in &variants {
        assert_eq!(count(&app, 3, || with_api_key(api_key.as_bytes())).await, (1, 2));
        let key = api.stat(&with_api_key(api_key.as_bytes())).await.unwrap().expect("counted").key;
        assert!(key.len() <= MAX_KEY_LEN, "{} bytes", key.len());
        keys.push(key);
    }
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), variants.len(), "four clients, four keys");
    assert_eq!(backend.len(), variants.len());
}

/// On Redis the stored key (hash-tag braces included) fits in 256 bytes too, and every
/// instance computes the same one (a second backend throttles the same client).
#[tokio::test]
async fn huge_api_keys_are_stored_bounded_in_redis() {
    let Some(server) = RedisServer::start() else { return };
    let first = RedisBackend::connect(&server.url()).await.expect("connects");
    let second = RedisBackend::connect(&server.url()).await.expect("connects");
    let build = |uid: &str, backend: RedisBackend| {
        HttpThrottle::builder(uid)
            .rate("2/min")
            .backend(backend)
            .identifier(Identifier::header("x-api-key").unwrap())
            .build()
            .unwrap()
    };
    let one = data_app(ThrottleLayer::new(build("hostile:keys:redis", first)));
    let long = "k".repeat(8_000);
    let junk = vec![0xFF; 400_000];
    for api_key in [long.as_bytes(), &junk] {
        assert_eq!(count(&one, 3, || with_api_key(api_key)).await, (2, 1));
    }
    drop(one);
    // Another process's throttle with the same uid: same keys, so still throttled.
    let two = data_app(ThrottleLayer::new(build("hostile:keys:redis", second)));
    for api_key in [long.as_bytes(), &junk] {
        assert_eq!(count(&two, 1, || with_api_key(api_key)).await, (0, 1));
    }
    let stored = server.cli(&["KEYS", "*"]);
    let stored: Vec<&str> = stored.lines().filter(|line| !line.is_empty()).collect();
    assert_eq!(stored.len(), 2, "{stored:?}");
    for key in stored {
        let head: String = key.chars().take(80).collect();
        assert!(key.len() <= MAX_KEY_LEN, "stored key of {} bytes: {head}...", key.len());
    }
}

/// A per-path throttle and a handler that reports its key for the request.
fn per_path(uid: &str, backend: &MemoryBackend) -> HttpThrottle {
    HttpThrottle::builder(uid).rate("1/min").backend(backend.clone()).per_path().build().unwrap()
}

fn users(throttle: HttpThrottle) -> Router {
    let key = move |request: Request| {
        let throttle = throttle.clone();
        async move { throttle.stat(&request).await.unwrap().expect("counted").key }
    };
    Router::new().route("/users/{id}", get(key)).route("/health", get(|| async { "ok" }))
}

async fn status(app: &Router, method: &str, uri: &str) -> StatusCode {
    send(app, request_from(method, uri, [198, 51, 100, 7], Body::empty())).await.status()
}

/// `/users/1`, `/users/%31` and `/users/2` are one route, so one bucket; `/health` is
/// another. Under `Router::layer`, `Router::route_layer`, and inside a nested router
/// with the layer outside or inside the nest.
#[tokio::test]
async fn per_path_follows_the_route_not_the_raw_path() {
    let (backend, _clock) = manual_backend();
    let layered = per_path("hostile:keys:route:layer", &backend);
    let route_layered = per_path("hostile:keys:route:route-layer", &backend);
    let nested_outside = per_path("hostile:keys:route:nest-outside", &backend);
    let nested_inside = per_path("hostile:keys:route:nest-inside", &backend);
    let apps = [
        ("layer", "", users(layered.clone()).layer(ThrottleLayer::new(layered))),
        ("route_layer", "", users(route_layered.clone()).route_layer(ThrottleLayer::new(route_layered))),
        (
            "nest, layer outside",
            "/api",
            Router::new().nest("/api", users(nested_outside.clone())).layer(ThrottleLayer::new(nested_outside)),
        ),
        (
            "nest, layer inside",
            "/api",
            Router::new().nest("/api", users(nested_inside.clone()).layer(ThrottleLayer::new(nested_inside))),
        ),
    ];
    for (name, prefix, app) in apps {
        let first = send(&app, get_from(&format!("{prefix}/users/1"), [198, 51, 100, 7])).await;
        assert_eq!(first.status(), StatusCode::OK, "{name}");
        let key = crate::support::body_text(first).await;
        assert!(key.ends_with(&format!(":default|{prefix}/users/%7Bid%7D")), "{name}: the route template in {key}");
        for uri in ["/users/%31", "/users/2", "/users/%32"] {
            assert_eq!(
                status(&app, "GET", &format!("{prefix}{uri}")).await,
                StatusCode::TOO_MANY_REQUESTS,
                "{name}: {uri}"
            );
        }
        assert_eq!(status(&app, "GET", &format!("{prefix}/health")).await, StatusCode::OK, "{name}: another route");
    }
    assert_eq!(backend.len(), 4 * 2, "two routes per app");
}

/// A throttle wrapped around the whole `Router` from outside runs before routing, so
/// it sees no route: every request, whatever its path, is the `unmatched` bucket.
#[tokio::test]
async fn a_throttle_around_the_router_sees_no_route() {
    let (backend, _clock) = manual_backend();
    let throttle = per_path("hostile:keys:route:outside", &backend);
    let app = ThrottleLayer::new(throttle.clone()).layer(users(throttle));
    let call = |uri: &str| app.clone().oneshot(get_from(uri, [198, 51, 100, 7]));
    assert_eq!(call("/users/1").await.unwrap().status(), StatusCode::OK);
    for uri in ["/health", "/users/2", "/anything/else"] {
        assert_eq!(call(uri).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS, "{uri}");
    }
    assert_eq!(backend.len(), 1);
}

/// Under `Router::layer`, 1,000 invented 404 paths are one `unmatched` bucket: the
/// client gets the limit, then 429s, and one key exists.
#[tokio::test]
async fn invented_404_paths_share_one_bucket() {
    let (backend, _clock) = manual_backend();
    let throttle = HttpThrottle::builder("hostile:keys:404").rate("10/min").backend(backend.clone()).per_path();
    let throttle = throttle.build().unwrap();
    let app = users(throttle.clone()).layer(ThrottleLayer::new(throttle));
    let (mut not_found, mut throttled) = (0, 0);
    for i in 0..1_000 {
        match status(&app, "GET", &format!("/invented/{i}/{}", "x".repeat(i % 50))).await {
            StatusCode::NOT_FOUND => not_found += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((not_found, throttled), (10, 990));
    assert_eq!(backend.len(), 1, "one bucket for every unmatched path");
}

/// With `per_method`, 100 invented methods share one bucket: the client gets the limit
/// across all of them. Standard methods keep a bucket each.
#[tokio::test]
async fn invented_methods_cannot_mint_buckets() {
    let (backend, _clock) = manual_backend();
    let throttle = HttpThrottle::builder("hostile:keys:methods").rate("2/min").backend(backend.clone()).per_method();
    let app =
        Router::new().route("/data", any(|| async { "data" })).layer(ThrottleLayer::new(throttle.build().unwrap()));
    let (mut ok, mut throttled) = (0, 0);
    for i in 0..100 {
        match status(&app, &format!("X-INVENTED-{i}"), "/data").await {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, throttled), (2, 98));
    assert_eq!(backend.len(), 1, "one bucket for every extension method");
    for method in ["GET", "POST", "DELETE"] {
        assert_eq!(status(&app, method, "/data").await, StatusCode::OK, "{method} has its own bucket");
    }
    assert_eq!(backend.len(), 4);
}

/// On a Redis Cluster, an empty `X-Api-Key:` through two stacked throttles on one
/// backend: both keys carry one non-empty hash tag, so the joint call lands in one slot
/// (an empty tag `{}` hashes the whole key, and the call failed with CROSSSLOT), and
/// the client gets exactly the tighter limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_api_key_is_one_slot_on_a_cluster() {
    let Some(cluster) = RedisCluster::start() else { return };
    let backend = RedisBackend::connect_cluster(cluster.urls()).await.expect("connects to the cluster");
    let build = |uid: &str, rate: &str| {
        HttpThrottle::builder(uid)
            .rate(rate)
            .backend(backend.clone())
            .identifier(Identifier::header("x-api-key").unwrap())
            .build()
            .unwrap()
    };
    let burst = build("hostile:keys:cluster:burst", "3/min");
    let quota = build("hostile:keys:cluster:quota", "10/min");
    let app = data_app(ThrottleLayer::new(burst).and(quota));
    assert_eq!(count(&app, 5, || with_api_key(b"")).await, (3, 2));

    let mut stored = Vec::new();
    for node in &cluster.nodes {
        stored.extend(
            node.cli(&["KEYS", "*"]).lines().filter(|line| !line.is_empty()).map(|key| (node.port, key.to_string())),
        );
    }
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[0].0, stored[1].0, "both keys on one master: {stored:?}");
    let node = &cluster.nodes[0];
    let slots: Vec<String> = stored.iter().map(|(_, key)| node.cli(&["CLUSTER", "KEYSLOT", key])).collect();
    assert_eq!(slots[0], slots[1], "one slot: {stored:?}");
}

/// A throttle names an IPv4 client's bucket exactly (no digest): the same bucket as its
/// key read as text, and no other spelling of the address reaches it.
#[tokio::test]
async fn an_address_bucket_is_the_bucket_of_its_text_and_of_no_other_spelling() {
    let (backend, _clock) = manual_backend();
    let throttle = HttpThrottle::builder("hostile:exact").rate("5/min").backend(backend.clone()).build().unwrap();
    let app = data_app(ThrottleLayer::new(throttle));
    assert_eq!(count(&app, 3, || get_from("/data", [203, 0, 113, 7])).await, (3, 0));
    let strategy = throttle::strategy::FixedWindow;
    let remaining = |key: &str| backend.stat_now(key, &strategy, throttle::Rate::per_minute(5)).remaining;
    assert_eq!(remaining("throttle:hostile:exact:ip=203.0.113.7:default"), 2);
    for other in ["ip=203.0.113.07", "ip=203.0.113.7 ", "203.0.113.7", "ip=203.000.113.7"] {
        assert_eq!(remaining(&format!("throttle:hostile:exact:{other}:default")), 5, "{other}");
    }
    // And the text's bucket is the throttle's: spending it there throttles the client.
    for _ in 0..2 {
        let text = "throttle:hostile:exact:ip=203.0.113.7:default";
        assert!(backend.hit_now(text, &strategy, throttle::Rate::per_minute(5), 1).allowed);
    }
    assert_eq!(count(&app, 1, || get_from("/data", [203, 0, 113, 7])).await, (0, 1));
}
