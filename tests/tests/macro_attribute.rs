//! `#[throttle]` end to end through axum Routers: the attribute limits exactly as the
//! equivalent direct-API code, runs before every other extractor, attaches headers to
//! 200s and 429s, and keeps the handler's own behaviour (`?`, `return`, extractors).

mod support;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use http::request::Parts;
use serde::Deserialize;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::*;
use throttle::{
    HttpThrottle, ThrottleError,
    backend::{ManualClock, MemoryBackend},
    throttle,
};

/// One clock (and backend) per handler under test, so tests stay independent.
struct Clocked {
    clock: ManualClock,
    backend: MemoryBackend,
}

impl Clocked {
    fn new() -> Self {
        let (backend, clock) = manual_backend();
        Clocked { clock, backend }
    }
}

// --- limits exactly like the direct API ---------------------------------------------

static ATTR: LazyLock<Clocked> = LazyLock::new(Clocked::new);
static DIRECT: LazyLock<Clocked> = LazyLock::new(Clocked::new);

#[throttle(uid = "macro:parity", rate = "3/min", backend = ATTR.backend.clone())]
async fn annotated() -> &'static str {
    "ok"
}

static DIRECT_THROTTLE: LazyLock<HttpThrottle> = LazyLock::new(|| {
    HttpThrottle::builder("direct:parity").rate("3/min").backend(DIRECT.backend.clone()).build().expect("valid")
});

async fn hand_written(request: Request) -> Result<&'static str, ThrottleError> {
    DIRECT_THROTTLE.hit(&request).await?;
    Ok("ok")
}

/// (client, ms to advance before the request)
const SCRIPT: &[([u8; 4], u64)] = &[
    ([10, 0, 0, 1], 0),
    ([10, 0, 0, 1], 1_000),
    ([10, 0, 0, 2], 0),
    ([10, 0, 0, 1], 1_000),
    ([10, 0, 0, 1], 1_000),
    ([10, 0, 0, 1], 10_000),
    ([10, 0, 0, 2], 0),
    ([10, 0, 0, 1], 32_000), // the window ends 45 s after T0
    ([10, 0, 0, 1], 0),
    ([10, 0, 0, 1], 0),
    ([10, 0, 0, 1], 0),
];

async fn run_script(app: &Router, clock: &ManualClock) -> Vec<(StatusCode, Option<String>, String)> {
    let mut seen = Vec::new();
    for (client, advance) in SCRIPT {
        clock.advance(Duration::from_millis(*advance));
        let response = send(app, get_from("/", *client)).await;
        let retry_after = header(&response, "retry-after").map(str::to_string);
        seen.push((response.status(), retry_after, body_text(response).await));
    }
    seen
}

#[tokio::test]
async fn the_attribute_limits_exactly_like_the_direct_api() {
    let attr = run_script(&Router::new().route("/", get(annotated)), &ATTR.clock).await;
    let direct = run_script(&Router::new().route("/", get(hand_written)), &DIRECT.clock).await;
    assert_eq!(attr, direct);
    let statuses: Vec<u16> = attr.iter().map(|(status, ..)| status.as_u16()).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429, 200, 200, 200, 200, 429]);
    assert_eq!(attr[4].1.as_deref(), Some("42"), "3 s into a window that ends at 45 s");
}

// --- the throttle runs before every other extractor ---------------------------------

static FIRST: LazyLock<Clocked> = LazyLock::new(Clocked::new);
static EXTRACTOR_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Counts how often axum ran it.
struct Counted;

impl<S: Send + Sync> FromRequestParts<S> for Counted {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        EXTRACTOR_RUNS.fetch_add(1, Ordering::SeqCst);
        Ok(Counted)
    }
}

#[derive(Deserialize)]
struct NewItem {
    name: String,
}

#[throttle(uid = "macro:first", rate = "2/min", backend = FIRST.backend.clone())]
async fn create(_counted: Counted, Json(item): Json<NewItem>) -> String {
    format!("created {}", item.name)
}

fn json_request(body: &'static str) -> Request<Body> {
    let mut request = request_from("POST", "/items", [10, 0, 0, 9], Body::from(body));
    request.headers_mut().insert("content-type", "application/json".parse().expect("header"));
    request
}

#[tokio::test]
async fn a_throttled_request_never_reaches_the_other_extractors() {
    let app = Router::new().route("/items", post(create));
    let created = send(&app, json_request(r#"{"name":"a"}"#)).await;
    assert_eq!(created.status(), StatusCode::OK);
    assert_eq!(body_text(created).await, "created a");
    // Admitted, then refused by the JSON extractor: the hit still counts.
    assert_eq!(send(&app, json_request("{not json")).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(EXTRACTOR_RUNS.load(Ordering::SeqCst), 2);
    // Over the limit: 429 although the body is invalid, and no extractor ran.
    let throttled = send(&app, json_request("{not json")).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&throttled, "retry-after").is_some());
    assert_eq!(send(&app, json_request(r#"{"name":"b"}"#)).await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(EXTRACTOR_RUNS.load(Ordering::SeqCst), 2);
}

// --- headers on 200s and 429s ------------------------------------------------------

static ALWAYS: LazyLock<Clocked> = LazyLock::new(Clocked::new);
static ON_429: LazyLock<Clocked> = LazyLock::new(Clocked::new);

#[throttle(uid = "macro:headers-always", rate = "2/min", headers = "always", backend = ALWAYS.backend.clone())]
async fn with_always() -> Json<Vec<u32>> {
    Json(vec![1, 2])
}

#[throttle(uid = "macro:headers-429", rate = "1/min", headers = "throttled", backend = ON_429.backend.clone())]
async fn with_throttled() -> Response {
    // The handler's own header wins over the throttle's.
    ([("x-ratelimit-limit", "custom")], "ok").into_response()
}

#[tokio::test]
async fn headers_always_are_on_admitted_and_throttled_responses() {
    let app = Router::new().route("/", get(with_always));
    let first = send(&app, get_from("/", [10, 0, 1, 1])).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "x-ratelimit-limit"), Some("2"));
    assert_eq!(header(&first, "x-ratelimit-remaining"), Some("1"));
    assert_eq!(header(&first, "retry-after"), None);
    assert_eq!(header(&first, "content-type"), Some("application/json"));
    assert_eq!(body_text(first).await, "[1,2]");

    let second = send(&app, get_from("/", [10, 0, 1, 1])).await;
    assert_eq!(header(&second, "x-ratelimit-remaining"), Some("0"));

    let third = send(&app, get_from("/", [10, 0, 1, 1])).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&third, "x-ratelimit-limit"), Some("2"));
    assert_eq!(header(&third, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&third, "retry-after"), Some("45"));
}

#[tokio::test]
async fn headers_throttled_are_on_429s_only() {
    let app = Router::new().route("/", get(with_throttled));
    let admitted = send(&app, get_from("/", [10, 0, 1, 2])).await;
    assert_eq!(admitted.status(), StatusCode::OK);
    assert_eq!(header(&admitted, "x-ratelimit-limit"), Some("custom"));
    assert_eq!(header(&admitted, "x-ratelimit-remaining"), None);

    let throttled = send(&app, get_from("/", [10, 0, 1, 2])).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&throttled, "x-ratelimit-limit"), Some("1"));
    assert_eq!(header(&throttled, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&throttled, "retry-after"), Some("45"));
}

// --- the handler's own behaviour is kept --------------------------------------------

#[derive(Clone)]
struct AppState {
    greeting: &'static str,
}

#[derive(Deserialize)]
struct Page {
    page: Option<u32>,
}

#[derive(Debug)]
struct AppError(&'static str);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (StatusCode::IM_A_TEAPOT, self.0).into_response()
    }
}

fn parse_id(raw: &str) -> Result<u32, AppError> {
    raw.parse().map_err(|_| AppError("not a number"))
}

static BEHAVIOUR: LazyLock<Clocked> = LazyLock::new(Clocked::new);

/// Early `return`, `?`, State, Path and Query all behave as written.
#[throttle(uid = "macro:behaviour", rate = "100/min", headers = "always", backend = BEHAVIOUR.backend.clone())]
async fn item(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(page): Query<Page>,
) -> Result<String, AppError> {
    if raw == "zero" {
        return Ok(format!("{}, nothing", state.greeting));
    }
    let id = parse_id(&raw)?;
    Ok(format!("{}, item {id} page {}", state.greeting, page.page.unwrap_or(1)))
}

#[tokio::test]
async fn return_question_mark_and_extractors_behave_as_written() {
    let app = Router::new().route("/items/{id}", get(item)).with_state(AppState { greeting: "hello" });
    let ok = send(&app, get_from("/items/7?page=3", [10, 0, 2, 1])).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(header(&ok, "x-ratelimit-remaining"), Some("99"));
    assert_eq!(body_text(ok).await, "hello, item 7 page 3");

    let early = send(&app, get_from("/items/zero", [10, 0, 2, 1])).await;
    assert_eq!(body_text(early).await, "hello, nothing");

    let failed = send(&app, get_from("/items/seven", [10, 0, 2, 1])).await;
    assert_eq!(failed.status(), StatusCode::IM_A_TEAPOT);
    // Headers go on every response of the handler, errors included.
    assert_eq!(header(&failed, "x-ratelimit-remaining"), Some("97"));
    assert_eq!(body_text(failed).await, "not a number");
}

// --- optional keys -----------------------------------------------------------------

static COSTLY: LazyLock<Clocked> = LazyLock::new(Clocked::new);

#[throttle(
    uid = "macro:cost",
    rate = "5/min",
    cost = 2,
    strategy = "fixed_window",
    scope = "exports",
    on_error = "allow",
    name = EXPORTS,
    backend = COSTLY.backend.clone(),
    identifier = throttle::identity::Identifier::from_fn(|conn| {
        let id = conn.headers().get("x-api-key").map_or("anonymous", |v| v.to_str().unwrap_or("invalid"));
        throttle::identity::Identity::client(id.to_string())
    }),
)]
async fn export() -> &'static str {
    "exported"
}

fn with_key(key: &'static str) -> Request<Body> {
    let mut request = get_from("/export", [10, 0, 3, 1]);
    request.headers_mut().insert("x-api-key", key.parse().expect("header"));
    request
}

#[tokio::test]
async fn cost_scope_identifier_and_name_are_applied() {
    let app = Router::new().route("/export", get(export));
    let statuses = [
        send(&app, with_key("k1")).await.status(),
        send(&app, with_key("k1")).await.status(),
        send(&app, with_key("k1")).await.status(),
        send(&app, with_key("k2")).await.status(),
    ];
    assert_eq!(statuses, [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS, StatusCode::OK]);
    let stat = EXPORTS.stat(&with_key("k1")).await.expect("stat").expect("not exempted");
    assert_eq!(stat.hits_remaining, 1);
    assert!(stat.key.ends_with(":fn=k1:exports"), "{}", stat.key);
    assert_eq!(EXPORTS.name(), "EXPORTS");
    assert_eq!(EXPORTS.handler(), "export");
}

static BURSTY: LazyLock<Clocked> = LazyLock::new(Clocked::new);

#[throttle(uid = "macro:gcra", rate = "10/min", strategy = "gcra(burst = 2)", backend = BURSTY.backend.clone())]
async fn bursty() -> &'static str {
    "ok"
}

#[tokio::test]
async fn the_strategy_and_its_parameters_are_applied() {
    let app = Router::new().route("/", get(bursty));
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(send(&app, get_from("/", [10, 0, 4, 1])).await.status().as_u16());
    }
    // A burst of 2 although the rate is 10 per minute; one more every 6 s.
    assert_eq!(statuses, [200, 200, 429]);
    BURSTY.clock.advance(Duration::from_secs(6));
    assert_eq!(send(&app, get_from("/", [10, 0, 4, 1])).await.status(), StatusCode::OK);
    let stat = BURSTY_THROTTLE.stat(&get_from("/", [10, 0, 4, 1])).await.expect("stat").expect("counted");
    assert_eq!(stat.strategy, "gcra");
}

// --- concurrency --------------------------------------------------------------------

static CONCURRENT: LazyLock<Clocked> = LazyLock::new(Clocked::new);

#[throttle(uid = "macro:concurrent", rate = "10/min", backend = CONCURRENT.backend.clone())]
async fn busy() -> &'static str {
    tokio::task::yield_now().await;
    "ok"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_admit_exactly_the_limit() {
    let app = Router::new().route("/busy", get(busy));
    let (ok, throttled) = burst(&app, "/busy", 50).await;
    assert_eq!((ok, throttled), (10, 40));
    let stat = BUSY_THROTTLE.stat(&get_from("/busy", [10, 0, 0, 1])).await.expect("stat");
    assert_eq!(stat.map(|s| s.hits_remaining), Some(0));
}

// --- rules ----------------------------------------------------------------------------

fn health_and_internal() -> Vec<throttle::Rule> {
    vec![
        throttle::Rule::bypass_if().path("/health").expect("valid glob"),
        throttle::Rule::bypass_if().methods([http::Method::OPTIONS]),
    ]
}

static RULED: LazyLock<Clocked> = LazyLock::new(Clocked::new);

#[throttle(uid = "macro:rules", rate = "1/min", rules = health_and_internal(), backend = RULED.backend.clone())]
async fn ruled() -> &'static str {
    "ruled"
}

#[tokio::test]
async fn rules_in_the_attribute_bypass_matching_requests() {
    let app = Router::new().route("/health", get(ruled)).route("/work", get(ruled).options(ruled));
    for _ in 0..3 {
        assert_eq!(send(&app, get_from("/health", [10, 9, 9, 1])).await.status(), StatusCode::OK);
        let options = request_from("OPTIONS", "/work", [10, 9, 9, 1], axum::body::Body::empty());
        assert_eq!(send(&app, options).await.status(), StatusCode::OK);
    }
    assert_eq!(send(&app, get_from("/work", [10, 9, 9, 1])).await.status(), StatusCode::OK);
    assert_eq!(send(&app, get_from("/work", [10, 9, 9, 1])).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

// --- stacked attributes -----------------------------------------------------------------

static STACKED: LazyLock<Clocked> = LazyLock::new(Clocked::new);

#[throttle(uid = "macro:stack:burst", rate = "10/min", name = STACK_BURST, backend = STACKED.backend.clone(), headers = "always")]
#[throttle(uid = "macro:stack:daily", rate = "3/min", name = STACK_DAILY, backend = STACKED.backend.clone())]
async fn stacked() -> &'static str {
    "stacked"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stacked_attributes_are_exact_and_a_later_rejection_consumes_nothing_earlier() {
    let app = Router::new().route("/stacked", get(stacked));
    let (ok, throttled) = burst(&app, "/stacked", 30).await;
    assert_eq!((ok, throttled), (3, 27));
    let probe = get_from("/", [10, 0, 0, 1]);
    assert_eq!(STACK_BURST.stat(&probe).await.unwrap().unwrap().hits_remaining, 7, "nothing leaked into the first");
    assert_eq!(STACK_DAILY.stat(&probe).await.unwrap().unwrap().hits_remaining, 0);

    // The top attribute's headers still reach its responses, admitted or not.
    STACKED.clock.advance(Duration::from_secs(60));
    let ok = send(&app, get_from("/stacked", [10, 0, 0, 2])).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(header(&ok, "x-ratelimit-remaining"), Some("9"));
}

// Three stacked limits, the lower two spelled by path, two of them with headers.
static LAYERED: LazyLock<Clocked> = LazyLock::new(Clocked::new);

#[throttle(uid = "macro:layered:top", rate = "10/min", name = LAYER_TOP, headers = "always", backend = LAYERED.backend.clone())]
#[throttle::throttle(uid = "macro:layered:mid", rate = "5/min", name = LAYER_MID, headers = throttle::headers::IETF_HEADERS, backend = LAYERED.backend.clone())]
#[::throttle::throttle(uid = "macro:layered:low", rate = "2/min", name = LAYER_LOW, backend = LAYERED.backend.clone())]
async fn layered() -> &'static str {
    "layered"
}

#[tokio::test]
async fn a_lower_limit_rejects_without_consuming_the_higher_ones_and_every_policy_adds_its_headers() {
    let app = Router::new().route("/layered", get(layered));
    let client = [10, 0, 7, 1];
    let first = send(&app, get_from("/layered", client)).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "x-ratelimit-remaining"), Some("9"), "the top attribute's headers");
    let ietf = header(&first, "ratelimit").expect("the middle attribute's headers");
    assert!(ietf.contains("r=4"), "{ietf}");
    assert!(header(&first, "ratelimit-policy").is_some());
    assert_eq!(send(&app, get_from("/layered", client)).await.status(), StatusCode::OK);

    // The lowest limit (2/min) refuses from now on: nothing more is spent above it.
    for _ in 0..5 {
        let refused = send(&app, get_from("/layered", client)).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(header(&refused, "retry-after").is_some());
    }
    let probe = get_from("/", client);
    let remaining = |stat: Option<throttle::strategy::StrategyStat>| stat.expect("not exempted").hits_remaining;
    assert_eq!(remaining(LAYER_TOP.stat(&probe).await.expect("stat")), 8);
    assert_eq!(remaining(LAYER_MID.stat(&probe).await.expect("stat")), 3);
    assert_eq!(remaining(LAYER_LOW.stat(&probe).await.expect("stat")), 0);
}

// --- an unrelated attribute named `throttle` -------------------------------------------

/// A real attribute macro from another crate whose path ends in `throttle`: tracing's
/// `#[instrument]` under another name. It is not ours, so it must neither be taken in
/// nor change how ours expands.
mod other {
    pub(crate) use tracing::instrument as throttle;
}

static FOREIGN: LazyLock<Clocked> = LazyLock::new(Clocked::new);

#[throttle(uid = "macro:foreign:below", rate = "2/min", headers = "always", backend = FOREIGN.backend.clone())]
#[other::throttle(skip_all)]
async fn foreign_below() -> &'static str {
    "below"
}

#[other::throttle(skip_all)]
#[throttle(uid = "macro:foreign:above", rate = "2/min", headers = "always", backend = FOREIGN.backend.clone())]
async fn foreign_above() -> &'static str {
    "above"
}

#[tokio::test]
async fn an_unrelated_attribute_named_throttle_leaves_the_handler_throttled() {
    let app = Router::new().route("/below", get(foreign_below)).route("/above", get(foreign_above));
    for uri in ["/below", "/above"] {
        let client = [10, 0, 8, 1];
        let ok = send(&app, get_from(uri, client)).await;
        assert_eq!(ok.status(), StatusCode::OK, "{uri}");
        assert_eq!(header(&ok, "x-ratelimit-remaining"), Some("1"), "{uri}");
        assert_eq!(send(&app, get_from(uri, client)).await.status(), StatusCode::OK, "{uri}");
        let refused = send(&app, get_from(uri, client)).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "{uri}");
        assert_eq!(header(&refused, "x-ratelimit-remaining"), Some("0"), "{uri}");
    }
    let probe = get_from("/", [10, 0, 8, 1]);
    assert_eq!(FOREIGN_BELOW_THROTTLE.stat(&probe).await.expect("stat").expect("counted").hits_remaining, 0);
    assert_eq!(FOREIGN_ABOVE_THROTTLE.stat(&probe).await.expect("stat").expect("counted").hits_remaining, 0);
}
