//! Who is limited and where: identifiers, trusted proxies, rules, the router layer,
//! stacked limits and the registry, all through real Routers.

mod support;

use axum::Router;
use axum::routing::{get, post};
use http::{Method, StatusCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use support::*;
use throttle::{
    HttpThrottle, Rule, ThrottleLayer,
    backend::MemoryBackend,
    headers::DEFAULT_HEADERS_ALWAYS,
    identity::{ClientIp, EXEMPTED, Identifier, Identity},
    registry,
};

fn throttle(uid: &str, rate: &str, backend: &MemoryBackend) -> throttle::ThrottleBuilder<HttpThrottle> {
    HttpThrottle::builder(uid).rate(rate).backend(backend.clone())
}

fn routes() -> Router {
    Router::new()
        .route("/api/items", get(|| async { "items" }).post(|| async { "created" }))
        .route("/api/v1/users", get(|| async { "users" }))
        .route("/health", get(|| async { "ok" }))
        .route("/files/{name}", get(|| async { "file" }))
}

async fn status(app: &Router, method: &str, uri: &str) -> StatusCode {
    send(app, request_from(method, uri, [1, 2, 3, 4], axum::body::Body::empty())).await.status()
}

#[tokio::test]
async fn layer_limits_every_route_and_attaches_headers() {
    let (backend, _clock) = manual_backend();
    let api = throttle("layer:all", "2/min", &backend).headers(&DEFAULT_HEADERS_ALWAYS).build().unwrap();
    let app = routes().layer(ThrottleLayer::new(api));
    let ok = send(&app, get_from("/api/items", [1, 1, 1, 1])).await;
    assert_eq!(header(&ok, "x-ratelimit-remaining"), Some("1"));
    assert_eq!(body_text(ok).await, "items");
    let unmatched = send(&app, get_from("/nowhere", [1, 1, 1, 1])).await;
    assert_eq!(unmatched.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&unmatched, "x-ratelimit-remaining"), Some("0"), "Router::layer covers unmatched paths too");
    let rejected = send(&app, get_from("/health", [1, 1, 1, 1])).await;
    assert_eq!(rejected.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&rejected, "retry-after"), Some("45"));
    assert_eq!(header(&rejected, "x-ratelimit-remaining"), Some("0"));
}

#[tokio::test]
async fn route_layer_leaves_unmatched_paths_alone() {
    let (backend, _clock) = manual_backend();
    let api = throttle("layer:route", "1/min", &backend).build().unwrap();
    let app = routes().route_layer(ThrottleLayer::new(api));
    for _ in 0..3 {
        assert_eq!(status(&app, "GET", "/nowhere").await, StatusCode::NOT_FOUND);
    }
    assert_eq!(status(&app, "GET", "/api/items").await, StatusCode::OK);
    assert_eq!(status(&app, "GET", "/api/items").await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn bypass_rule_for_health_checks_and_glob_semantics() {
    let (backend, _clock) = manual_backend();
    let api = throttle("rules:bypass", "1/min", &backend)
        .rule(Rule::bypass_if().path("/health").unwrap().path("/files/*.json").unwrap())
        .build()
        .unwrap();
    let app = routes().layer(ThrottleLayer::new(api));
    for _ in 0..3 {
        assert_eq!(status(&app, "GET", "/health").await, StatusCode::OK);
        assert_eq!(status(&app, "GET", "/files/report.json").await, StatusCode::OK);
    }
    assert!(backend.is_empty(), "bypassed requests touch nothing");
    // `.` is literal, and globs are anchored: these are throttled.
    assert_eq!(status(&app, "GET", "/files/reportjson").await, StatusCode::OK);
    assert_eq!(status(&app, "GET", "/files/report.json.bak").await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn apply_rules_with_globs_and_methods() {
    let (backend, _clock) = manual_backend();
    let writes = throttle("rules:apply", "1/min", &backend)
        .rule(Rule::apply_if().path("/api/*").unwrap().methods([Method::POST]))
        .build()
        .unwrap();
    let app = routes().layer(ThrottleLayer::new(writes));
    for _ in 0..3 {
        assert_eq!(status(&app, "GET", "/api/items").await, StatusCode::OK, "GET is not limited");
        assert_eq!(status(&app, "GET", "/api/v1/users").await, StatusCode::OK, "`*` is one segment");
    }
    assert_eq!(status(&app, "POST", "/api/items").await, StatusCode::OK);
    assert_eq!(status(&app, "POST", "/api/items").await, StatusCode::TOO_MANY_REQUESTS);

    let (backend, _clock) = manual_backend();
    let deep = throttle("rules:apply:deep", "1/min", &backend)
        .rule(Rule::apply_if().path("/api/**").unwrap())
        .build()
        .unwrap();
    let app = routes().layer(ThrottleLayer::new(deep));
    assert_eq!(status(&app, "GET", "/health").await, StatusCode::OK);
    assert_eq!(status(&app, "GET", "/health").await, StatusCode::OK);
    assert_eq!(status(&app, "GET", "/api/v1/users").await, StatusCode::OK);
    assert_eq!(status(&app, "GET", "/api/items").await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn predicates_run_only_after_cheap_conditions_match() {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let (backend, _clock) = manual_backend();
    let api = throttle("rules:predicate", "1/min", &backend)
        .rule(Rule::bypass_if().path("/api/**").unwrap().predicate(|conn| {
            CALLS.fetch_add(1, Ordering::SeqCst);
            let internal = conn.headers().get("x-internal").is_some_and(|v| v == "yes");
            async move { internal }
        }))
        .build()
        .unwrap();
    let app = routes().layer(ThrottleLayer::new(api));
    let mut internal = get_from("/api/items", [1, 2, 3, 4]);
    internal.headers_mut().insert("x-internal", "yes".parse().unwrap());
    assert_eq!(send(&app, internal).await.status(), StatusCode::OK);
    assert_eq!(status(&app, "GET", "/health").await, StatusCode::OK);
    assert_eq!(CALLS.load(Ordering::SeqCst), 1, "the path did not match /health, so no predicate ran");
    assert_eq!(status(&app, "GET", "/api/items").await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stacked_limits_are_exact_and_leak_nothing_under_concurrency() {
    let (backend, _clock) = manual_backend();
    let burst = throttle("stack:burst", "10/min", &backend).build().unwrap();
    let sustained = throttle("stack:sustained", "3/min", &backend).build().unwrap();
    let app = routes().layer(ThrottleLayer::new(burst.clone()).and(sustained.clone()));
    let (ok, throttled) = burst_requests(&app, 40).await;
    assert_eq!((ok, throttled), (3, 37));
    let request = get_from("/", [10, 0, 0, 1]);
    assert_eq!(
        burst.stat(&request).await.unwrap().unwrap().hits_remaining,
        7,
        "rejected requests leave the first limit untouched"
    );
    assert_eq!(sustained.stat(&request).await.unwrap().unwrap().hits_remaining, 0);

    // The same through the direct API.
    let (backend, _clock) = manual_backend();
    let a = throttle("stack:direct:a", "5/min", &backend).build().unwrap();
    let b = throttle("stack:direct:b", "2/min", &backend).build().unwrap();
    let both = [a.clone(), b.clone()];
    let mut admitted = 0;
    for _ in 0..6 {
        admitted += usize::from(throttle::hit_all(&both, &request).await.is_ok());
    }
    assert_eq!(admitted, 2);
    assert_eq!(a.stat(&request).await.unwrap().unwrap().hits_remaining, 3);
}

async fn burst_requests(app: &Router, n: usize) -> (usize, usize) {
    burst(app, "/api/items", n).await
}

#[tokio::test]
async fn first_rejection_wins_with_its_own_retry_after() {
    let (backend, _clock) = manual_backend();
    let per_second = throttle("stack:order:s", "1/s", &backend).build().unwrap();
    let per_minute = throttle("stack:order:m", "100/min", &backend).build().unwrap();
    let app = routes().layer(ThrottleLayer::new(per_second).and(per_minute));
    assert_eq!(status(&app, "GET", "/api/items").await, StatusCode::OK);
    let rejected = send(&app, get_from("/api/items", [1, 2, 3, 4])).await;
    assert_eq!(header(&rejected, "retry-after"), Some("1"));
}

#[tokio::test]
async fn trusted_proxies_through_a_router() {
    let (backend, _clock) = manual_backend();
    let identifier = Identifier::client_ip(ClientIp::x_forwarded_for().trust("10.0.0.0/8").unwrap());
    let api = throttle("ident:proxy", "1/min", &backend).identifier(identifier).build().unwrap();
    let app = routes().layer(ThrottleLayer::new(api));
    let via_proxy = |client: &str| {
        let mut request = get_from("/api/items", [10, 0, 0, 2]);
        request.headers_mut().insert("x-forwarded-for", client.parse().unwrap());
        request
    };
    assert_eq!(send(&app, via_proxy("198.51.100.1")).await.status(), StatusCode::OK);
    assert_eq!(send(&app, via_proxy("198.51.100.2")).await.status(), StatusCode::OK, "another client behind the proxy");
    assert_eq!(send(&app, via_proxy("198.51.100.1")).await.status(), StatusCode::TOO_MANY_REQUESTS);
    // A direct client cannot escape its bucket by forging the header.
    let forged = |fake: &str| {
        let mut request = get_from("/api/items", [203, 0, 113, 5]);
        request.headers_mut().insert("x-forwarded-for", fake.parse().unwrap());
        request
    };
    assert_eq!(send(&app, forged("1.1.1.1")).await.status(), StatusCode::OK);
    assert_eq!(send(&app, forged("2.2.2.2")).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn header_extension_composite_and_exempted_identifiers() {
    #[derive(Clone)]
    struct UserId(&'static str);

    let (backend, _clock) = manual_backend();
    let by_key = throttle("ident:header", "1/min", &backend)
        .identifier(Identifier::header("x-api-key").unwrap())
        .build()
        .unwrap();
    let by_user = throttle("ident:ext", "1/min", &backend)
        .identifier(Identifier::extension(|u: &UserId| u.0.to_string()))
        .build()
        .unwrap();
    let composite = throttle("ident:composite", "1/min", &backend)
        .identifier(Identifier::composite([Identifier::header("x-api-key").unwrap(), Identifier::peer_ip()]))
        .build()
        .unwrap();
    let vip = throttle("ident:exempt", "1/min", &backend)
        .identifier(Identifier::from_fn(|conn| match conn.headers().get("x-api-key") {
            Some(key) if key == "vip" => EXEMPTED,
            _ => Identity::client("everyone"),
        }))
        .build()
        .unwrap();

    let with_key = |key: &'static str, ip: [u8; 4]| {
        let mut request = get_from("/", ip);
        request.headers_mut().insert("x-api-key", key.parse().unwrap());
        request.extensions_mut().insert(UserId(key));
        request
    };
    // Same key from two addresses: one bucket by key...
    assert!(by_key.hit(&with_key("k1", [1, 0, 0, 1])).await.is_ok());
    assert!(by_key.hit(&with_key("k1", [1, 0, 0, 2])).await.is_err());
    assert!(by_user.hit(&with_key("k1", [1, 0, 0, 1])).await.is_ok());
    assert!(by_user.hit(&with_key("k1", [1, 0, 0, 2])).await.is_err());
    // ...two buckets by key and address.
    assert!(composite.hit(&with_key("k1", [1, 0, 0, 1])).await.is_ok());
    assert!(composite.hit(&with_key("k1", [1, 0, 0, 2])).await.is_ok());
    assert!(composite.hit(&with_key("k1", [1, 0, 0, 2])).await.is_err());
    for _ in 0..3 {
        assert!(!vip.hit(&with_key("vip", [1, 0, 0, 3])).await.unwrap().is_counted());
    }
    assert!(vip.stat(&with_key("vip", [1, 0, 0, 3])).await.unwrap().is_none());
}

#[tokio::test]
async fn clients_never_share_a_bucket_whatever_their_ids_contain() {
    let (backend, _clock) = manual_backend();
    let api = throttle("ident:separators", "1/min", &backend)
        .identifier(Identifier::header("x-id").unwrap())
        .build()
        .unwrap();
    let ids = ["a", "a:default", "a%3Adefault", "{a}", "a b", "a:b", "a%", ":", "", "é"];
    for id in ids {
        let mut request = get_from("/", [1, 1, 1, 1]);
        request.headers_mut().insert("x-id", http::HeaderValue::from_bytes(id.as_bytes()).unwrap());
        assert!(api.hit(&request).await.is_ok(), "{id:?} must have its own bucket");
    }
    assert_eq!(backend.len(), ids.len());
}

#[tokio::test]
async fn registry_lists_looks_up_disables_and_updates() {
    let (backend, _clock) = manual_backend();
    let registry = registry::Registry::new();
    let api = throttle("registry:demo", "1/min", &backend).registry(&registry).build().unwrap();
    let app = Router::new().route("/x", post(|| async { "x" })).layer(ThrottleLayer::new(api.clone()));
    let entry = registry.get("registry:demo").expect("registered");
    assert_eq!(
        (entry.uid(), entry.strategy(), entry.backend_namespace()),
        ("registry:demo", "fixed_window", "throttle")
    );
    assert_eq!(entry.rate(), Some("1/min".parse().unwrap()));
    assert!(registry.list().iter().any(|e| e.uid() == "registry:demo"));
    assert!(registry::global().get("registry:demo").is_none(), "a builder joins only the registry it is given");

    entry.disable();
    for _ in 0..3 {
        assert_eq!(status(&app, "POST", "/x").await, StatusCode::OK);
    }
    assert!(backend.is_empty(), "a disabled throttle does no backend I/O");
    entry.enable();
    entry.set_rate("2/min".parse().unwrap());
    assert_eq!(status(&app, "POST", "/x").await, StatusCode::OK);
    assert_eq!(status(&app, "POST", "/x").await, StatusCode::OK);
    assert_eq!(status(&app, "POST", "/x").await, StatusCode::TOO_MANY_REQUESTS);
    drop((app, api, entry));
    assert!(registry.get("registry:demo").is_none(), "dropped throttles leave the registry");
}

#[tokio::test]
async fn without_connect_info_every_client_shares_the_anonymous_bucket() {
    let (backend, _clock) = manual_backend();
    let api = throttle("ident:anonymous", "2/min", &backend).build().unwrap();
    let app = routes().layer(ThrottleLayer::new(api.clone()));
    let bare = || http::Request::get("/api/items").body(axum::body::Body::empty()).unwrap();
    assert_eq!(send(&app, bare()).await.status(), StatusCode::OK, "no 500 without ConnectInfo");
    assert_eq!(send(&app, bare()).await.status(), StatusCode::OK);
    assert_eq!(send(&app, bare()).await.status(), StatusCode::TOO_MANY_REQUESTS);
    let stat = api.stat(&bare()).await.unwrap().unwrap();
    assert_eq!(stat.key, "throttle:ident:anonymous:__anonymous__:default");
}

#[tokio::test]
async fn one_budget_across_routes_unless_split_per_path_or_method() {
    let (backend, _clock) = manual_backend();
    let shared = throttle("keys:shared", "2/min", &backend).build().unwrap();
    let app = routes().layer(ThrottleLayer::new(shared));
    assert_eq!(status(&app, "GET", "/api/items").await, StatusCode::OK);
    assert_eq!(status(&app, "GET", "/api/v1/users").await, StatusCode::OK);
    assert_eq!(status(&app, "POST", "/api/items").await, StatusCode::TOO_MANY_REQUESTS, "one budget by default");

    let split = throttle("keys:split", "1/min", &backend).per_path().per_method().build().unwrap();
    let app = routes().layer(ThrottleLayer::new(split.clone()));
    assert_eq!(status(&app, "GET", "/files/a").await, StatusCode::OK);
    assert_eq!(status(&app, "GET", "/files/b").await, StatusCode::TOO_MANY_REQUESTS, "one route, one bucket");
    assert_eq!(status(&app, "GET", "/health").await, StatusCode::OK, "another route, another bucket");
    assert_eq!(status(&app, "POST", "/api/items").await, StatusCode::OK);
    assert_eq!(status(&app, "GET", "/api/items").await, StatusCode::OK, "another method, another bucket");
    assert_eq!(status(&app, "GET", "/files/a").await, StatusCode::TOO_MANY_REQUESTS);
    // A request built outside the router has no matched route: the `unmatched` bucket.
    let stat = split.stat(&get_from("/files/a", [1, 2, 3, 4])).await.unwrap().unwrap();
    assert_eq!(stat.key, "throttle:keys:split:ip=1.2.3.4:default|GET|unmatched");
}

/// The app of a test suite: built by every test that needs it, in one process.
fn app(backend: &MemoryBackend) -> Router {
    let api = throttle("twice:api", "2/min", backend).build().expect("builds every time");
    routes().layer(ThrottleLayer::new(api))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_router_builds_twice_and_both_serve() {
    let (backend, _clock) = manual_backend();
    let (first, second) = (app(&backend), app(&backend));
    // One uid, one backend: both routers count against the same buckets.
    assert_eq!(status(&first, "GET", "/api/items").await, StatusCode::OK);
    assert_eq!(status(&second, "GET", "/api/items").await, StatusCode::OK);
    assert_eq!(status(&first, "GET", "/api/items").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(status(&second, "GET", "/api/items").await, StatusCode::TOO_MANY_REQUESTS);
    // And on separate backends, separate budgets.
    let (other, _clock) = manual_backend();
    assert_eq!(status(&app(&other), "GET", "/api/items").await, StatusCode::OK);
}
