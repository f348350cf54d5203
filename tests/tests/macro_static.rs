//! The statics `#[throttle]` generates: direct calls that share the handler's counts,
//! duplicate uids reported at first use with both handlers named, and the value forms
//! of the keys (`rate!` constants, rate and cost functions, header collections).

mod support;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;
use support::*;
use throttle::{ConfigError, Connection, Context, Rate, rate, throttle};

struct Clocked {
    clock: throttle::backend::ManualClock,
    backend: throttle::backend::MemoryBackend,
}

fn clocked() -> Clocked {
    let (backend, clock) = manual_backend();
    Clocked { clock, backend }
}

// --- the static sees the handler's counts -------------------------------------------

static SHARED: LazyLock<Clocked> = LazyLock::new(clocked);

#[throttle(uid = "static:shared", rate = "4/min", headers = "always", backend = SHARED.backend.clone())]
async fn shared() -> &'static str {
    "ok"
}

#[tokio::test]
async fn the_static_shares_the_handlers_counts() {
    let app = Router::new().route("/", get(shared));
    let client = [10, 1, 0, 1];
    assert_eq!(send(&app, get_from("/", client)).await.status(), StatusCode::OK);
    assert_eq!(send(&app, get_from("/", client)).await.status(), StatusCode::OK);

    let request = get_from("/", client);
    let stat = SHARED_THROTTLE.stat(&request).await.expect("stat").expect("not exempted");
    assert_eq!((stat.hits_remaining, stat.rate), (2, rate!("4/min")));
    assert!(SHARED_THROTTLE.check(&request).cost(2).await);
    assert!(!SHARED_THROTTLE.check(&request).cost(3).await);
    let headers = SHARED_THROTTLE.get_headers(&request).await.expect("headers");
    assert_eq!(headers.get("x-ratelimit-remaining").map(|v| v.to_str().ok()), Some(Some("2")));

    // A direct hit spends the same quota the route does.
    let admitted = SHARED_THROTTLE.hit(&request).cost(2).await.expect("admitted");
    assert_eq!(admitted.remaining(), Some(0));
    let throttled = send(&app, get_from("/", client)).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(SHARED_THROTTLE.hit(&request).await.is_err());

    // A new window for everyone.
    SHARED.clock.advance(Duration::from_secs(45));
    assert_eq!(send(&app, get_from("/", client)).await.status(), StatusCode::OK);

    let throttle = SHARED_THROTTLE.get().expect("built");
    assert_eq!((throttle.uid(), throttle.rate()), ("static:shared", Some(rate!("4/min"))));
    let entry = throttle::registry::global().get("static:shared").expect("registered on first use");
    assert!(entry.origin().starts_with("handler `shared` ("), "{}", entry.origin());
    assert!(entry.origin().contains("macro_static.rs:"), "{}", entry.origin());
}

// --- duplicate uids ----------------------------------------------------------------

#[throttle(uid = "static:duplicate", rate = "10/min")]
async fn dup_first() -> &'static str {
    "first"
}

#[throttle(uid = "static:duplicate", rate = "10/min")]
async fn dup_second() -> &'static str {
    "second"
}

#[tokio::test]
async fn a_duplicate_uid_fails_at_first_use_naming_both_handlers() {
    let app = Router::new().route("/first", get(dup_first)).route("/second", get(dup_second));
    assert_eq!(send(&app, get_from("/first", [10, 1, 1, 1])).await.status(), StatusCode::OK);
    let second = send(&app, get_from("/second", [10, 1, 1, 1])).await;
    assert_eq!(second.status(), StatusCode::INTERNAL_SERVER_ERROR, "never a panic");

    match DUP_SECOND_THROTTLE.get() {
        Err(ConfigError::DuplicateUid { uid, existing, new }) => {
            assert_eq!(uid, "static:duplicate");
            assert!(existing.starts_with("handler `dup_first` (") && existing.contains("macro_static.rs:"));
            assert!(new.starts_with("handler `dup_second` ("), "{new}");
        }
        other => panic!("expected a duplicate uid, got {other:?}"),
    }
    let request = get_from("/second", [10, 1, 1, 1]);
    let error = DUP_SECOND_THROTTLE.hit(&request).await.expect_err("not built");
    assert!(matches!(error, throttle::ThrottleError::NotBuilt { .. }), "{error:?}");
    let error = error.to_string();
    assert!(
        error.starts_with("throttle `DUP_SECOND_THROTTLE` of handler `dup_second` could not be built: ")
            && error.contains("dup_first"),
        "{error}"
    );
    assert!(DUP_SECOND_THROTTLE.stat(&request).await.is_err());
    assert!(DUP_SECOND_THROTTLE.get_headers(&request).await.is_err());
    assert!(!DUP_SECOND_THROTTLE.check(&request).await);
    // The first one is unaffected.
    assert!(DUP_FIRST_THROTTLE.get().is_ok());
}

// A stack in which one throttle cannot be built answers 500 before spending anything.

#[throttle(uid = "static:stack-uid-owner", rate = "10/min")]
async fn stack_uid_owner() -> &'static str {
    "owner"
}

#[throttle(uid = "static:stack-healthy", rate = "10/min", name = STACK_HEALTHY)]
#[throttle(uid = "static:stack-uid-owner", rate = "10/min", name = STACK_BROKEN)]
async fn broken_stack() -> &'static str {
    "never"
}

#[tokio::test]
async fn a_stack_with_an_unbuildable_throttle_spends_nothing_in_the_others() {
    assert!(STACK_UID_OWNER_THROTTLE.get().is_ok(), "the uid's owner is built first");
    let app = Router::new().route("/broken", get(broken_stack)).route("/owner", get(stack_uid_owner));
    for _ in 0..3 {
        let response = send(&app, get_from("/broken", [10, 1, 2, 1])).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "never a panic");
    }
    assert!(matches!(STACK_BROKEN.get(), Err(ConfigError::DuplicateUid { .. })));
    let probe = get_from("/", [10, 1, 2, 1]);
    let healthy = STACK_HEALTHY.stat(&probe).await.expect("built").expect("counted");
    assert_eq!(healthy.hits_remaining, 10, "nothing spent in the healthy limit");
    assert_eq!(send(&app, get_from("/owner", [10, 1, 2, 1])).await.status(), StatusCode::OK);
}

// --- value forms of the keys ----------------------------------------------------------

const TWO_PER_MINUTE: Rate = rate!("2 per minute");

#[test]
fn rate_macro_yields_const_rates() {
    const API: Rate = rate!("100/min");
    assert_eq!(API, Rate::per_minute(100));
    assert_eq!(rate!("100/1h30m").period_ms(), 5_400_000);
    assert_eq!(rate!(" 5 PER 10 Seconds ").to_string(), "5/10s");
    assert!(rate!("unlimited").is_unlimited());
    assert_eq!(TWO_PER_MINUTE, "2/min".parse().expect("valid"));
}

static FORMS: LazyLock<Clocked> = LazyLock::new(clocked);

#[throttle(uid = "static:const-rate", rate = TWO_PER_MINUTE, backend = FORMS.backend.clone())]
async fn const_rate() -> &'static str {
    "ok"
}

#[throttle(uid = "static:unlimited", rate = "unlimited", headers = "always")]
async fn unlimited() -> &'static str {
    "ok"
}

/// Premium clients get 3 per minute, everyone else 1.
fn plan_rate(conn: &Connection<'_>, _context: &Context) -> impl Future<Output = Rate> + Send + use<> {
    let premium = conn.headers().contains_key("x-premium");
    async move { if premium { rate!("3/min") } else { rate!("1/min") } }
}

#[throttle(uid = "static:rate-fn", rate_fn = plan_rate, backend = FORMS.backend.clone())]
async fn planned() -> &'static str {
    "ok"
}

/// Bulk requests cost 5.
fn bulk_cost(conn: &Connection<'_>, _context: &Context) -> impl Future<Output = u64> + Send + use<> {
    let cost = if conn.uri().query() == Some("bulk") { 5 } else { 1 };
    async move { cost }
}

#[throttle(uid = "static:cost-fn", rate = "6/min", cost = bulk_cost, backend = FORMS.backend.clone())]
async fn bulk() -> &'static str {
    "ok"
}

const THREE: u32 = 3;

#[throttle(uid = "static:cost-const", rate = "6/min", cost = THREE, backend = FORMS.backend.clone())]
async fn triple() -> &'static str {
    "ok"
}

#[throttle(uid = "static:ietf", rate = "5/min", headers = throttle::headers::IETF_HEADERS, backend = FORMS.backend.clone())]
async fn ietf() -> &'static str {
    "ok"
}

async fn statuses(app: &Router, uri: &str, n: usize, premium: bool) -> Vec<u16> {
    let mut seen = Vec::new();
    for _ in 0..n {
        let mut request = get_from(uri, [10, 1, 2, 1]);
        if premium {
            request.headers_mut().insert("x-premium", "1".parse().expect("header"));
        }
        seen.push(send(app, request).await.status().as_u16());
    }
    seen
}

#[tokio::test]
async fn rates_costs_and_headers_accept_values_and_functions() {
    let app = Router::new()
        .route("/const", get(const_rate))
        .route("/unlimited", get(unlimited))
        .route("/planned", get(planned))
        .route("/premium", get(planned))
        .route("/bulk", get(bulk))
        .route("/triple", get(triple))
        .route("/ietf", get(ietf));
    assert_eq!(statuses(&app, "/const", 3, false).await, [200, 200, 429]);
    assert_eq!(statuses(&app, "/unlimited", 20, false).await, [200; 20]);
    assert_eq!(statuses(&app, "/planned", 2, false).await, [200, 429]);
    // Same client and bucket, a higher rate for premium requests.
    assert_eq!(statuses(&app, "/premium", 3, true).await, [200, 200, 429]);
    assert_eq!(statuses(&app, "/bulk?bulk", 2, false).await, [200, 429]);
    assert_eq!(statuses(&app, "/bulk", 2, false).await, [200, 429]);
    assert_eq!(statuses(&app, "/triple", 3, false).await, [200, 200, 429]);

    let response = send(&app, get_from("/ietf", [10, 1, 2, 1])).await;
    assert_eq!(header(&response, "ratelimit-policy"), Some("\"static:ietf\";q=5;w=60"));
    assert!(header(&response, "ratelimit").is_some_and(|v| v.contains(";r=4;")));
    assert_eq!(header(&unlimited_response(&app).await, "x-ratelimit-limit"), None);
}

async fn unlimited_response(app: &Router) -> http::Response<axum::body::Body> {
    send(app, get_from("/unlimited", [10, 1, 2, 1])).await
}
