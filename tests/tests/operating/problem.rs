//! RFC 9457 problem details on 429s, through real Routers: the attribute-free direct
//! API, the layer, and a custom handler starting from it.

use crate::support::*;
use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use http::StatusCode;
use throttle::{HttpThrottle, ThrottleError, ThrottleLayer, headers::DEFAULT_HEADERS_ALWAYS};

async fn json(response: http::Response<axum::body::Body>) -> serde_json::Value {
    serde_json::from_str(&body_text(response).await).expect("a JSON body")
}

#[tokio::test]
async fn a_rejection_is_problem_json_with_the_wait_and_the_policy() {
    let (backend, _clock) = manual_backend();
    let api = HttpThrottle::builder("problem:direct")
        .rate("2/min")
        .backend(backend)
        .headers(&*DEFAULT_HEADERS_ALWAYS)
        .problem_details()
        .build()
        .unwrap();
    let app = Router::new().route(
        "/data",
        get(move |request: Request| {
            let api = api.clone();
            async move {
                let admitted = api.hit(&request).await?;
                Ok::<_, ThrottleError>((admitted, "data"))
            }
        }),
    );
    for _ in 0..2 {
        let ok = send(&app, get_from("/data", [1, 1, 1, 1])).await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(header(&ok, "content-type"), Some("text/plain; charset=utf-8"), "admitted bodies are the handler's");
    }
    let rejected = send(&app, get_from("/data", [1, 1, 1, 1])).await;
    assert_eq!(rejected.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&rejected, "content-type"), Some("application/problem+json"));
    assert_eq!(header(&rejected, "retry-after"), Some("45"));
    assert_eq!(header(&rejected, "x-ratelimit-remaining"), Some("0"), "the throttled headers stay");
    assert_eq!(
        json(rejected).await,
        serde_json::json!({
            "type": "https://iana.org/assignments/http-problem-types#quota-exceeded",
            "title": "Request cannot be satisfied as assigned quota has been exceeded",
            "status": 429,
            "detail": "Too many requests. Retry in 45 seconds.",
            "retry_after": 45,
            "violated-policies": ["problem:direct"],
            "policy": { "uid": "problem:direct", "limit": 2, "period_ms": 60000, "rate": "2/min" },
        })
    );
}

#[tokio::test]
async fn the_layer_answers_with_problem_details_and_the_text_body_stays_the_default() {
    let (backend, _clock) = manual_backend();
    let problem = HttpThrottle::builder("problem:layer")
        .rate("1/10s")
        .backend(backend.clone())
        .problem_details()
        .throttled_detail("Slow down.")
        .build()
        .unwrap();
    let text = HttpThrottle::builder("problem:text").rate("1/10s").backend(backend).build().unwrap();
    let app = Router::new()
        .route("/problem", get(|| async { "ok" }))
        .layer(ThrottleLayer::new(problem))
        .route("/text", get(|| async { "ok" }).layer(ThrottleLayer::new(text)));
    for uri in ["/problem", "/text"] {
        assert_eq!(send(&app, get_from(uri, [2, 2, 2, 2])).await.status(), StatusCode::OK);
    }
    let rejected = send(&app, get_from("/problem", [2, 2, 2, 2])).await;
    assert_eq!(header(&rejected, "content-type"), Some("application/problem+json"));
    let body = json(rejected).await;
    assert_eq!(body["detail"], "Slow down.", "the throttle's detail");
    assert_eq!(body["retry_after"], 5);
    assert_eq!(body["policy"]["rate"], "1/10s");
    let rejected = send(&app, get_from("/text", [2, 2, 2, 2])).await;
    assert_eq!(header(&rejected, "content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(body_text(rejected).await, "Too many requests. Retry in 5 seconds.");
}

/// Shedding load: a typed 503 with its own detail and header is the draft's
/// `temporary-reduced-capacity` problem, and `Retry-After` is still the wait.
#[tokio::test]
async fn a_typed_503_is_a_reduced_capacity_problem() {
    let (backend, _clock) = manual_backend();
    let shed = HttpThrottle::builder("problem:shed")
        .rate("1/10s")
        .backend(backend)
        .problem_details()
        .throttled_status(StatusCode::SERVICE_UNAVAILABLE)
        .throttled_detail("Busy, try again shortly.")
        .throttled_header("Cache-Control", "no-store")
        .throttled_header("Retry-After", "3600")
        .build()
        .unwrap();
    let app = Router::new().route("/", get(|| async { "ok" })).layer(ThrottleLayer::new(shed));
    assert_eq!(send(&app, get_from("/", [3, 3, 3, 3])).await.status(), StatusCode::OK);
    let rejected = send(&app, get_from("/", [3, 3, 3, 3])).await;
    assert_eq!(rejected.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&rejected, "cache-control"), Some("no-store"));
    assert_eq!(header(&rejected, "retry-after"), Some("5"), "a header cannot lie about the wait");
    let body = json(rejected).await;
    assert_eq!(body["type"], "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity");
    assert_eq!((body["status"].as_u64(), body["detail"].as_str()), (Some(503), Some("Busy, try again shortly.")));
}

#[tokio::test]
async fn a_custom_handler_can_start_from_the_problem_response() {
    let (backend, _clock) = manual_backend();
    let api = HttpThrottle::builder("problem:custom")
        .rate("1/min")
        .backend(backend)
        .throttled_handler(|rejection| {
            let mut response = rejection.problem_details();
            response.headers_mut().insert("x-policy", rejection.rate().to_string().parse().unwrap());
            response
        })
        .build()
        .unwrap();
    let app = Router::new().route("/", get(|| async { "ok" })).layer(ThrottleLayer::new(api));
    send(&app, get_from("/", [3, 3, 3, 3])).await;
    let rejected = send(&app, get_from("/", [3, 3, 3, 3])).await;
    assert_eq!(header(&rejected, "x-policy"), Some("1/min"));
    assert_eq!(json(rejected).await["violated-policies"], serde_json::json!(["problem:custom"]));
}
