//! The header system of the reference "Response Headers" page, translated: builders,
//! conditions, collections, presets, DISABLE, and exact header strings.

mod support;

use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use http::{HeaderMap, StatusCode};
use serde_json::json;
use std::time::Duration;
use support::*;
use throttle::headers::{
    DEFAULT_HEADERS_ALWAYS, DEFAULT_HEADERS_THROTTLED, Header, HeaderError, Headers, IETF_HEADERS, When,
};
use throttle::{HttpThrottle, ThrottleError};

fn throttle_with(uid: &str, rate: &str, headers: &Headers) -> (HttpThrottle, throttle::backend::ManualClock) {
    let (backend, clock) = manual_backend();
    let throttle = HttpThrottle::builder(uid).rate(rate).backend(backend).headers(headers).build().unwrap();
    (throttle, clock)
}

fn pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<_> = headers.iter().map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string())).collect();
    out.sort();
    out
}

/// The headers a response carries besides its body's own (content type and length).
fn rate_limit_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    pairs(headers).into_iter().filter(|(n, _)| n != "content-type" && n != "content-length").collect()
}

fn owned(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<_> = expected.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    out.sort();
    out
}

/// An app that attaches the admitted hit's headers to its responses.
fn app(api: HttpThrottle) -> Router {
    Router::new().route(
        "/items",
        get(move |request: Request| async move {
            let admitted = api.hit(&request).await?;
            Ok::<_, ThrottleError>((admitted, Json(json!({ "items": ["widget", "gizmo"] }))))
        }),
    )
}

#[tokio::test]
async fn default_headers_always_on_200s_and_429s_with_retry_after_only_on_429() {
    let (api, _clock) = throttle_with("h:always", "3/min", &DEFAULT_HEADERS_ALWAYS);
    let app = app(api);
    let expected_remaining = ["2", "1", "0"];
    for remaining in expected_remaining {
        let ok = send(&app, get_from("/items", [1, 0, 0, 1])).await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(
            rate_limit_pairs(ok.headers()),
            owned(&[("x-ratelimit-limit", "3"), ("x-ratelimit-remaining", remaining)])
        );
    }
    let rejected = send(&app, get_from("/items", [1, 0, 0, 1])).await;
    assert_eq!(rejected.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        rate_limit_pairs(rejected.headers()),
        owned(&[("x-ratelimit-limit", "3"), ("x-ratelimit-remaining", "0"), ("retry-after", "45")])
    );
}

#[tokio::test]
async fn default_headers_throttled_only_on_429s() {
    let (api, _clock) = throttle_with("h:throttled", "1/min", &DEFAULT_HEADERS_THROTTLED);
    let app = app(api);
    let ok = send(&app, get_from("/items", [1, 0, 0, 2])).await;
    assert!(ok.headers().get("x-ratelimit-limit").is_none());
    assert!(ok.headers().get("retry-after").is_none());
    let rejected = send(&app, get_from("/items", [1, 0, 0, 2])).await;
    assert_eq!(header(&rejected, "x-ratelimit-limit"), Some("1"));
    assert_eq!(header(&rejected, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&rejected, "retry-after"), Some("45"));
}

#[tokio::test]
async fn ietf_preset_emits_draft_10_structured_fields() {
    let (api, _clock) = throttle_with("api:ietf", "100/min", &IETF_HEADERS);
    let app = app(api);
    let ok = send(&app, get_from("/items", [1, 0, 0, 3])).await;
    assert_eq!(header(&ok, "ratelimit-policy"), Some(r#""api:ietf";q=100;w=60"#));
    assert_eq!(header(&ok, "ratelimit"), Some(r#""api:ietf";r=99;t=45"#));
    assert_eq!(header(&ok, "retry-after"), None);

    let (api, _clock) = throttle_with("api:ietf:sub", "3/50ms", &IETF_HEADERS);
    let request = get_from("/", [1, 0, 0, 3]);
    let headers = api.hit(&request).await.unwrap().into_headers();
    // Windows shorter than a second round up: `w` has no sub-second precision.
    assert_eq!(headers["ratelimit-policy"], r#""api:ietf:sub";q=3;w=1"#);
    assert_eq!(headers["ratelimit"], r#""api:ietf:sub";r=2;t=1"#);
}

/// The page's GitHub/Stripe-style example, response for response.
#[tokio::test]
async fn github_style_headers_example() {
    // The seed's GitHub/Stripe-style collection: one fallible step for the whole set.
    let api_headers = Headers::from_pairs([
        ("X-RateLimit-Limit", Header::limit(When::Always)),
        ("X-RateLimit-Remaining", Header::remaining(When::Always)),
        ("Retry-After", Header::reset_seconds(When::Throttled)),
        ("X-RateLimit-Reset-Ms", Header::reset_milliseconds(When::Always)),
        ("RateLimit-Policy", Header::fixed("1000;w=60")),
    ])
    .expect("valid names and values");
    let (backend, clock) = manual_backend();
    let api = HttpThrottle::builder("api:v1").rate("1000/min").backend(backend).headers(&api_headers).build().unwrap();
    clock.set(T0 + 1_800); // 16.8 s into the minute: 43.2 s left
    let headers_api = api.clone();
    let app = Router::new().route(
        "/items",
        get(move |request: Request| async move {
            headers_api.hit(&request).await?;
            let headers = headers_api.get_headers(&request).await?;
            Ok::<_, ThrottleError>((headers, Json(json!({ "items": ["widget", "gizmo"] }))).into_response())
        }),
    );
    let request = || get_from("/items", [2, 0, 0, 1]);
    api.hit(&request()).cost(2).await.unwrap();
    let ok = send(&app, request()).await;
    assert_eq!(
        rate_limit_pairs(ok.headers()),
        owned(&[
            ("x-ratelimit-limit", "1000"),
            ("x-ratelimit-remaining", "997"),
            ("x-ratelimit-reset-ms", "43200"),
            ("ratelimit-policy", "1000;w=60"),
        ])
    );
    assert_eq!(body_text(ok).await, r#"{"items":["widget","gizmo"]}"#);

    api.hit(&request()).cost(997).await.unwrap();
    clock.advance(Duration::from_millis(34_800)); // 8.4 s left in the window
    let rejected = send(&app, request()).await;
    assert_eq!(rejected.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        rate_limit_pairs(rejected.headers()),
        owned(&[
            ("x-ratelimit-limit", "1000"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset-ms", "8400"),
            ("ratelimit-policy", "1000;w=60"),
            ("retry-after", "9"),
        ])
    );
    assert_eq!(body_text(rejected).await, "Too many requests. Retry in 9 seconds.");
}

/// The seed's handler calls `get_headers` after its hit: when that hit took the last
/// unit, the 200 it answers with carries what the hit's own response would, with no
/// `Retry-After`; the next request's 429 has it.
#[tokio::test]
async fn get_headers_after_the_last_unit_agrees_with_the_admitted_hit() {
    let api_headers = Headers::from_pairs([
        ("X-RateLimit-Limit", Header::limit(When::Always)),
        ("X-RateLimit-Remaining", Header::remaining(When::Always)),
        ("Retry-After", Header::reset_seconds(When::Throttled)),
    ])
    .expect("valid names");
    let (backend, _clock) = manual_backend();
    let api =
        HttpThrottle::builder("h:after-hit").rate("2/min").backend(backend).headers(&api_headers).build().unwrap();
    let app = Router::new().route(
        "/items",
        get(move |request: Request| async move {
            let admitted = api.hit(&request).await?;
            let headers = api.get_headers(&request).await?;
            assert_eq!(&headers, admitted.headers(), "the same headers either way");
            Ok::<_, ThrottleError>((headers, "items").into_response())
        }),
    );
    for remaining in ["1", "0"] {
        let ok = send(&app, get_from("/items", [2, 0, 0, 9])).await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(header(&ok, "x-ratelimit-remaining"), Some(remaining));
        assert_eq!(header(&ok, "retry-after"), None, "a 200 never says when to retry");
    }
    let rejected = send(&app, get_from("/items", [2, 0, 0, 9])).await;
    assert_eq!(rejected.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&rejected, "retry-after"), Some("45"));
}

#[tokio::test]
async fn when_conditions_and_copies() {
    let base = Header::remaining(When::Always);
    let warn_when_low = When::predicate(|_conn, stat, _ctx| stat.hits_remaining * 10 < stat.rate.limit());
    let headers = Headers::new()
        .with("A-Always", base.clone().always())
        .unwrap()
        .with("A-Throttled", base.clone().throttled())
        .unwrap()
        .with("A-When", base.clone().when(When::Throttled))
        .unwrap()
        .with("A-Low", Header::remaining(warn_when_low))
        .unwrap();
    let (api, _clock) = throttle_with("h:when", "20/min", &headers);
    let request = get_from("/", [3, 0, 0, 1]);
    let first = api.hit(&request).await.unwrap().into_headers();
    assert_eq!(pairs(&first), owned(&[("a-always", "19")]));
    api.hit(&request).cost(18).await.unwrap();
    let low = api.hit(&request).await.unwrap().into_headers();
    assert_eq!(pairs(&low), owned(&[("a-always", "0"), ("a-low", "0")]));
    let throttled = api.hit(&request).await.unwrap_err();
    let throttled = throttled.as_throttled().unwrap().headers().clone();
    assert_eq!(pairs(&throttled), owned(&[("a-always", "0"), ("a-low", "0"), ("a-throttled", "0"), ("a-when", "0")]));
}

#[tokio::test]
async fn static_values_and_resolvers() {
    let headers = Headers::from_pairs([
        ("X-Service-Name", Header::fixed("my-api")),
        (
            "X-Custom",
            Header::resolver(
                |conn, stat, ctx| format!("{} {} {}", conn.uri().path(), stat.hits_remaining, ctx.scope()),
                When::Always,
            ),
        ),
        ("X-Broken", Header::resolver(|_, _, _| "line\nbreak".to_string(), When::Always)),
    ])
    .unwrap();
    let (api, _clock) = throttle_with("h:values", "5/min", &headers);
    let request = get_from("/path", [4, 0, 0, 1]);
    let resolved = api.hit(&request).await.unwrap().into_headers();
    // An invalid resolved value is dropped, never sent and never a panic.
    assert_eq!(pairs(&resolved), owned(&[("x-custom", "/path 4 default"), ("x-service-name", "my-api")]));
}

#[tokio::test]
async fn all_static_collections_resolve_without_backend_io() {
    let headers = Headers::from_pairs([("RateLimit-Policy", Header::fixed("100;w=60"))]).unwrap();
    assert!(headers.is_static());
    let (backend, _clock) = manual_backend();
    let api =
        HttpThrottle::builder("h:static").rate("100/min").backend(backend.clone()).headers(&headers).build().unwrap();
    let resolved = api.get_headers(&get_from("/", [5, 0, 0, 1])).await.unwrap();
    assert_eq!(pairs(&resolved), owned(&[("ratelimit-policy", "100;w=60")]));
    assert!(backend.is_empty());
}

#[tokio::test]
async fn disable_removes_a_header_per_call_even_when_all_are_static() {
    let (api, _clock) = throttle_with("h:disable", "10/min", &DEFAULT_HEADERS_ALWAYS);
    let request = get_from("/", [6, 0, 0, 1]);
    let overrides = Headers::new().with("X-RateLimit-Remaining", Header::DISABLE).unwrap();
    let resolved = api.get_headers(&request).overrides(overrides).await.unwrap();
    assert_eq!(pairs(&resolved), owned(&[("x-ratelimit-limit", "10")]));

    let statics = Headers::from_pairs([("X-A", Header::fixed("a")), ("X-B", Header::fixed("b"))]).unwrap();
    let (api, _clock) = throttle_with("h:disable:static", "10/min", &statics);
    let overrides = Headers::new().with("x-a", Header::DISABLE).unwrap();
    let resolved = api.get_headers(&request).overrides(overrides).await.unwrap();
    assert_eq!(pairs(&resolved), owned(&[("x-b", "b")]));
}

#[tokio::test]
async fn overrides_win_and_get_headers_agree_with_the_admitted_hit() {
    let (api, _clock) = throttle_with("h:override", "1/min", &DEFAULT_HEADERS_ALWAYS);
    let request = get_from("/", [7, 0, 0, 1]);
    let admitted = api.hit(&request).await.unwrap();
    // The hit took the last unit; its 200 has no `Retry-After`, and neither has
    // `get_headers` called after it in the same handler.
    let resolved = api.get_headers(&request).await.unwrap();
    assert_eq!(pairs(&resolved), owned(&[("x-ratelimit-limit", "1"), ("x-ratelimit-remaining", "0")]));
    assert_eq!(pairs(admitted.headers()), pairs(&resolved));
    // The rejection that follows carries its own `Retry-After`.
    let rejected = api.hit(&request).await.unwrap_err().into_response();
    assert_eq!(rejected.headers()["retry-after"], "45");
    let overrides = Headers::new().with("X-RateLimit-Limit", Header::fixed("custom")).unwrap();
    let resolved = api.get_headers(&request).overrides(overrides).await.unwrap();
    assert_eq!(resolved["x-ratelimit-limit"], "custom");
}

#[test]
fn merging_with_bitor_copies_and_bitor_assign_mutates() {
    let extra = Headers::new()
        .with("X-Service-Name", Header::fixed("my-api"))
        .unwrap()
        .with("X-RateLimit-Reset-Ms", Header::reset_milliseconds(When::Always))
        .unwrap();
    let combined = &*DEFAULT_HEADERS_ALWAYS | &extra;
    assert_eq!(combined.len(), 5);
    assert_eq!(DEFAULT_HEADERS_ALWAYS.len(), 3, "the preset is not mutated");
    let names: Vec<_> = combined.iter().map(|(n, _)| n.as_str().to_string()).collect();
    assert_eq!(
        names,
        ["x-ratelimit-limit", "x-ratelimit-remaining", "retry-after", "x-service-name", "x-ratelimit-reset-ms"]
    );

    let mut copy = DEFAULT_HEADERS_ALWAYS.clone();
    copy |= Headers::new().with("retry-after", Header::fixed("1")).unwrap();
    assert_eq!(copy.len(), 3, "same name replaces");
    assert_eq!(format!("{:?}", copy.get("Retry-After").unwrap()), r#"Header::fixed("1")"#);
    copy.insert("X-Service-Name", Header::fixed("my-api")).unwrap();
    assert_eq!(copy.len(), 4);
    assert!(copy.remove("x-service-name").is_some());
    assert_eq!(copy.len(), 3);
}

#[test]
fn invalid_header_names_and_values_are_typed_errors() {
    let bad_value = Headers::new().with("X-Policy", Header::fixed("bad\r\nvalue")).unwrap_err();
    assert_eq!(bad_value, HeaderError::InvalidValue("bad\r\nvalue".into()));
    let err = Headers::new().with("Bad Name", Header::limit(When::Always)).unwrap_err();
    assert_eq!(err, HeaderError::InvalidName("Bad Name".into()));
    assert!(err.to_string().contains("invalid header name"));
    assert!(Headers::new().with("", Header::limit(When::Always)).is_err());
}

#[tokio::test]
async fn unlimited_rates_emit_no_numeric_headers() {
    let (api, _clock) = throttle_with("h:unlimited", "unlimited", &(&*DEFAULT_HEADERS_ALWAYS | &*IETF_HEADERS));
    let request = get_from("/", [8, 0, 0, 1]);
    assert!(api.get_headers(&request).await.unwrap().is_empty(), "no `inf`, no fake numbers");
}
