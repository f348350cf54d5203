//! The direct API through real axum Routers: hit, cost, context/scope, check, stat.
//! Each seed example of the reference "Direct Usage" page appears here, translated.

mod support;

use axum::body::Body;
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use support::*;
use throttle::{Context, HttpThrottle, RequestInfo, ThrottleError};

fn throttle(uid: &str, rate: &str) -> (HttpThrottle, throttle::backend::ManualClock, throttle::backend::MemoryBackend) {
    let (backend, clock) = manual_backend();
    let throttle = HttpThrottle::builder(uid).rate(rate).backend(backend.clone()).build().expect("valid throttle");
    (throttle, clock, backend)
}

fn data_app(api: HttpThrottle) -> Router {
    Router::new().route(
        "/data",
        get(move |request: Request| async move {
            api.hit(&request).await?;
            Ok::<_, ThrottleError>(Json(json!({ "data": [] })))
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_admit_exactly_the_limit() {
    for (limit, n) in [(10usize, 50usize), (25, 25), (40, 10)] {
        let (api, _clock, _) = throttle(&format!("concurrent:{limit}:{n}"), &format!("{limit}/min"));
        let (ok, throttled) = burst(&data_app(api), "/data", n).await;
        assert_eq!(ok, n.min(limit), "limit {limit}, {n} requests");
        assert_eq!(throttled, n - n.min(limit));
    }
}

#[tokio::test]
async fn over_the_limit_is_a_429_whose_retry_after_is_honest() {
    let (api, clock, _) = throttle("honest:wait", "3/min");
    let app = data_app(api);
    for _ in 0..3 {
        assert_eq!(send(&app, get_from("/data", [1, 1, 1, 1])).await.status(), StatusCode::OK);
    }
    let rejected = send(&app, get_from("/data", [1, 1, 1, 1])).await;
    assert_eq!(rejected.status(), StatusCode::TOO_MANY_REQUESTS);
    // T0 is 15 s into a minute: the window ends in 45 s.
    assert_eq!(header(&rejected, "retry-after"), Some("45"));
    assert_eq!(body_text(rejected).await, "Too many requests. Retry in 45 seconds.");

    clock.advance(Duration::from_millis(44_999));
    assert_eq!(send(&app, get_from("/data", [1, 1, 1, 1])).await.status(), StatusCode::TOO_MANY_REQUESTS);
    clock.advance(Duration::from_millis(1));
    assert_eq!(send(&app, get_from("/data", [1, 1, 1, 1])).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn retry_after_rounds_sub_second_waits_up() {
    let (api, clock, _) = throttle("honest:subsecond", "1/s");
    clock.set(T0 + 999); // 1 ms before the next second
    let app = data_app(api);
    assert_eq!(send(&app, get_from("/data", [1, 1, 1, 1])).await.status(), StatusCode::OK);
    let rejected = send(&app, get_from("/data", [1, 1, 1, 1])).await;
    assert_eq!(header(&rejected, "retry-after"), Some("1"));
    clock.advance(Duration::from_millis(1));
    assert_eq!(send(&app, get_from("/data", [1, 1, 1, 1])).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn clients_are_limited_separately() {
    let (api, _clock, _) = throttle("clients:separate", "1/min");
    let app = data_app(api);
    assert_eq!(send(&app, get_from("/data", [1, 1, 1, 1])).await.status(), StatusCode::OK);
    assert_eq!(send(&app, get_from("/data", [2, 2, 2, 2])).await.status(), StatusCode::OK);
    assert_eq!(send(&app, get_from("/data", [1, 1, 1, 1])).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// Seed: `await upload_throttle.hit(request, cost=cost)` with cost = max(1, KB).
#[tokio::test]
async fn dynamic_cost_from_the_body_size() {
    let (uploads, _clock, _) = throttle("uploads", "10/min");
    let app = Router::new().route(
        "/upload",
        post(move |info: RequestInfo, body: axum::body::Bytes| async move {
            let cost = (body.len() / 1024).max(1);
            uploads.hit(&info).cost(cost).await?;
            Ok::<_, ThrottleError>(Json(json!({ "bytes_received": body.len() })))
        }),
    );
    let upload = |kb: usize| request_from("POST", "/upload", [3, 3, 3, 3], Body::from(vec![0u8; kb * 1024]));
    assert_eq!(send(&app, upload(6)).await.status(), StatusCode::OK); // 6 of 10
    assert_eq!(send(&app, upload(5)).await.status(), StatusCode::TOO_MANY_REQUESTS); // 11 > 10
    assert_eq!(send(&app, upload(4)).await.status(), StatusCode::OK); // the rejection consumed nothing
    assert_eq!(send(&app, upload(0)).await.status(), StatusCode::TOO_MANY_REQUESTS); // min cost 1
}

/// Seed tip: `cost = 0 if internal else 1` skips throttling without a branch.
#[tokio::test]
async fn cost_zero_is_a_no_op_with_no_backend_io() {
    let (api, _clock, backend) = throttle("cost:zero", "1/min");
    let app = Router::new().route(
        "/data",
        get(move |request: Request| async move {
            let internal = request.headers().get("x-internal").is_some_and(|v| v == "true");
            api.hit(&request).cost(if internal { 0 } else { 1 }).await?;
            Ok::<_, ThrottleError>("ok")
        }),
    );
    for _ in 0..5 {
        let mut request = get_from("/data", [4, 4, 4, 4]);
        request.headers_mut().insert("x-internal", "true".parse().unwrap());
        assert_eq!(send(&app, request).await.status(), StatusCode::OK);
    }
    assert!(backend.is_empty(), "cost 0 must not touch the backend");
    assert_eq!(send(&app, get_from("/data", [4, 4, 4, 4])).await.status(), StatusCode::OK);
    assert_eq!(backend.len(), 1);
}

/// Seed: `await throttle(request, context={"scope": tenant_id})`.
#[tokio::test]
async fn a_call_scope_splits_buckets() {
    let (api, _clock, _) = throttle("api:scoped", "2/min");
    let app = Router::new().route(
        "/resource/{tenant}",
        get(move |axum::extract::Path(tenant): axum::extract::Path<String>, info: RequestInfo| async move {
            api.hit(&info).scope(tenant.clone()).await?;
            Ok::<_, ThrottleError>(Json(json!({ "tenant": tenant })))
        }),
    );
    for tenant in ["a", "b"] {
        for _ in 0..2 {
            let uri = format!("/resource/{tenant}");
            assert_eq!(send(&app, get_from(&uri, [5, 5, 5, 5])).await.status(), StatusCode::OK);
        }
    }
    let over = send(&app, get_from("/resource/a", [5, 5, 5, 5])).await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_call_scope_overrides_the_throttles_and_the_rejection_stays_typed() {
    let (backend, _clock) = manual_backend();
    let api = HttpThrottle::builder("context:merge")
        .rate("1/min")
        .backend(backend)
        .scope("shared")
        .throttled_detail("Slow down.")
        .build()
        .unwrap();
    let app = Router::new().route(
        "/{scope}",
        get(move |axum::extract::Path(scope): axum::extract::Path<String>, info: RequestInfo| async move {
            let call = api.hit(&info);
            let call = if scope == "default" { call } else { call.scope(scope) };
            call.await?;
            Ok::<_, ThrottleError>("ok")
        }),
    );
    assert_eq!(send(&app, get_from("/default", [6, 6, 6, 6])).await.status(), StatusCode::OK);
    // The throttle's scope "shared" is now exhausted; a call scope is a fresh bucket...
    assert_eq!(send(&app, get_from("/other", [6, 6, 6, 6])).await.status(), StatusCode::OK);
    // ...and the throttle's detail applies to every scope's rejection.
    for path in ["/default", "/other"] {
        let rejected = send(&app, get_from(path, [6, 6, 6, 6])).await;
        assert_eq!(rejected.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body_text(rejected).await, "Slow down.");
    }
    // A call scope named like the throttle's is its bucket.
    assert_eq!(send(&app, get_from("/shared", [6, 6, 6, 6])).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// The context carries user values only: the old magic keys, whatever a client
/// steers into it, change nothing. Values reach the rate function (the call's over
/// the throttle's), and the rejection's status, detail and headers come from typed
/// builder calls.
#[tokio::test]
async fn context_values_reach_hooks_and_change_no_behaviour() {
    #[derive(Clone, Copy, PartialEq)]
    enum Plan {
        Free,
        Pro,
    }
    let (backend, _clock) = manual_backend();
    let api = HttpThrottle::builder("context:typed")
        .rate_fn(|_conn, context| {
            let limit = if context.get::<Plan>() == Some(&Plan::Pro) { 3 } else { 1 };
            async move { throttle::Rate::per_minute(limit) }
        })
        .context(Context::new().with(Plan::Free))
        .throttled_status(StatusCode::SERVICE_UNAVAILABLE)
        .throttled_detail("Busy.")
        .throttled_header("Cache-Control", "no-store")
        .backend(backend)
        .build()
        .unwrap();
    let app = Router::new().route(
        "/",
        get(move |headers: http::HeaderMap, info: RequestInfo| async move {
            // A client-chosen string as a value: under the old API this was a key.
            let claimed = headers.get("x-claim").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let mut context = Context::new().with(claimed);
            if headers.contains_key("x-pro") {
                context.insert(Plan::Pro);
            }
            api.hit(&info).context(context).await?;
            Ok::<_, ThrottleError>("ok")
        }),
    );
    let request = |claim: &str, pro: bool| {
        let mut request = get_from("/", [6, 6, 6, 7]);
        request.headers_mut().insert("x-claim", claim.parse().unwrap());
        if pro {
            request.headers_mut().insert("x-pro", "1".parse().unwrap());
        }
        request
    };
    assert_eq!(send(&app, request("scope", false)).await.status(), StatusCode::OK);
    // One bucket whatever the values say: the free plan's single unit is spent.
    let rejected = send(&app, request("status_code", false)).await;
    assert_eq!(rejected.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(rejected.headers()["cache-control"], "no-store");
    assert!(rejected.headers().contains_key("retry-after"));
    assert_eq!(body_text(rejected).await, "Busy.");
    // The call's plan wins over the default: the same bucket, a higher limit.
    assert_eq!(send(&app, request("extras", true)).await.status(), StatusCode::OK);
    assert_eq!(send(&app, request("detail", true)).await.status(), StatusCode::OK);
    assert_eq!(send(&app, request("headers", true)).await.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn an_invalid_throttled_header_fails_the_build() {
    for (name, value) in [("bad name", "v"), ("X-Ok", "line\nbreak"), ("", "v")] {
        let built = HttpThrottle::builder("context:bad-header").rate("1/min").throttled_header(name, value).build();
        assert!(matches!(built, Err(throttle::ConfigError::Header(_))), "{name:?}: {value:?}");
    }
}

/// Seed: the `/export` pre-check, then consume only after the work is done.
#[tokio::test]
async fn check_is_a_non_consuming_pre_check() {
    let (exports, _clock, _) = throttle("exports", "10/min");
    let app = Router::new().route(
        "/export",
        post(move |info: RequestInfo, body: axum::body::Bytes| async move {
            let cost = (body.len() / 512).max(1);
            if !exports.check(&info).cost(cost).await {
                let detail = format!("Rate limit would be exceeded. This request costs {cost} units.");
                return Ok((StatusCode::TOO_MANY_REQUESTS, detail).into_response());
            }
            exports.hit(&info).cost(cost).await?;
            Ok::<_, ThrottleError>((StatusCode::OK, format!("exported {cost}")).into_response())
        }),
    );
    let export = |bytes: usize| request_from("POST", "/export", [7, 7, 7, 7], Body::from(vec![1u8; bytes]));
    assert_eq!(body_text(send(&app, export(512 * 8)).await).await, "exported 8");
    let refused = send(&app, export(512 * 3)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body_text(refused).await, "Rate limit would be exceeded. This request costs 3 units.");
    assert_eq!(body_text(send(&app, export(512 * 2)).await).await, "exported 2");
}

#[tokio::test]
async fn check_and_stat_consume_nothing() {
    let (api, _clock, _) = throttle("nonconsuming", "3/min");
    let request = get_from("/", [8, 8, 8, 8]);
    for _ in 0..20 {
        assert!(api.check(&request).await);
        assert_eq!(api.stat(&request).await.unwrap().unwrap().hits_remaining, 3);
    }
    assert!(api.check(&request).cost(3).await);
    assert!(!api.check(&request).cost(4).await);
    assert!(!api.check(&request).cost(-1).await, "an invalid cost can never pass");
}

/// Seed: the `/status` route returns `hits_remaining` and `retry_after_ms`.
#[tokio::test]
async fn stat_reports_the_standing_of_the_client() {
    let (api, clock, _) = throttle("api:metered", "3/min");
    let status_api = api.clone();
    let app = data_app(api).route(
        "/status",
        get(move |request: Request| async move {
            let stat = status_api.stat(&request).await?;
            Ok::<_, ThrottleError>(Json(match stat {
                None => json!({ "quota": "unknown" }),
                Some(stat) => json!({ "hits_remaining": stat.hits_remaining, "retry_after_ms": stat.wait_ms }),
            }))
        }),
    );
    let status = |app: Router| async move {
        let body = body_text(send(&app, get_from("/status", [9, 9, 9, 9])).await).await;
        serde_json::from_str::<Value>(&body).unwrap()
    };
    assert_eq!(status(app.clone()).await, json!({ "hits_remaining": 3, "retry_after_ms": 0 }));
    for _ in 0..3 {
        send(&app, get_from("/data", [9, 9, 9, 9])).await;
    }
    assert_eq!(status(app.clone()).await, json!({ "hits_remaining": 0, "retry_after_ms": 45_000 }));
    clock.advance(Duration::from_secs(45));
    assert_eq!(status(app).await, json!({ "hits_remaining": 3, "retry_after_ms": 0 }));
}

#[tokio::test]
async fn stat_carries_key_rate_and_fixed_window_metadata() {
    let (api, _clock, _) = throttle("stat:fields", "5/min");
    let request = get_from("/", [10, 1, 2, 3]);
    api.hit(&request).cost(2).await.unwrap();
    let stat = api.stat(&request).await.unwrap().unwrap();
    assert_eq!(stat.key, "throttle:stat:fields:ip=10.1.2.3:default");
    assert_eq!(stat.rate, "5/min".parse().unwrap());
    assert_eq!((stat.hits_remaining, stat.wait_ms, stat.reset_ms), (3, 0, 45_000));
    assert_eq!(stat.strategy, "fixed_window");
    let window_start = T0 - 15_000;
    assert_eq!(
        stat.metadata,
        throttle::strategy::Metadata::FixedWindow {
            window_start_ms: window_start,
            window_end_ms: window_start + 60_000,
            current_count: 2
        }
    );
}

/// Seed: read the stat before consuming to report `quota_remaining`.
#[tokio::test]
async fn stat_before_hit_pattern() {
    let (api, _clock, _) = throttle("stat:before", "10/min");
    let app = Router::new().route(
        "/data",
        get(move |request: Request| async move {
            let before = api.stat(&request).await?;
            api.hit(&request).await?;
            Ok::<_, ThrottleError>(Json(json!({
                "data": [],
                "quota_used": 1,
                "quota_remaining": before.map(|s| s.hits_remaining - 1),
            })))
        }),
    );
    let body = body_text(send(&app, get_from("/data", [11, 0, 0, 1])).await).await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["quota_remaining"], 9);
}

/// Seed: "Putting it together": batch of items, pre-check, 429 with computed
/// Retry-After, consume the actual cost after processing.
#[tokio::test]
async fn batch_items_putting_it_together() {
    let (batch, _clock, _) = throttle("batch:items", "10/min");
    let app = Router::new().route(
        "/batch",
        post(move |info: RequestInfo, Json(data): Json<Value>| async move {
            let items = data["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                return Ok(Json(json!({ "processed": 0 })).into_response());
            }
            let cost = items.len();
            if !batch.check(&info).cost(cost).await {
                let stat = batch.stat(&info).await?;
                // Quota is left but not enough for the batch: it fits once the window resets.
                let retry_after = stat.map_or(60, |s| s.reset_ms.div_ceil(1000));
                let detail = format!("Batch of {cost} items would exceed quota.");
                return Ok(
                    (StatusCode::TOO_MANY_REQUESTS, [("retry-after", retry_after.to_string())], detail).into_response()
                );
            }
            let results: Vec<&Value> = items.iter().filter(|item| !item.is_null()).collect();
            batch.hit(&info).cost(results.len()).await?;
            Ok::<_, ThrottleError>(Json(json!({ "processed": results.len() })).into_response())
        }),
    );
    let post_items = |items: Value| {
        let mut request =
            request_from("POST", "/batch", [12, 0, 0, 1], Body::from(json!({ "items": items }).to_string()));
        request.headers_mut().insert("content-type", "application/json".parse().unwrap());
        request
    };
    let ok = send(&app, post_items(json!([1, null, 3, 4, 5, 6, 7]))).await;
    assert_eq!(body_text(ok).await, r#"{"processed":6}"#); // 6 of 10 consumed: a failed item is free
    let refused = send(&app, post_items(json!([1, 2, 3, 4, 5]))).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "retry-after"), Some("45"));
    assert_eq!(body_text(refused).await, "Batch of 5 items would exceed quota.");
    assert_eq!(body_text(send(&app, post_items(json!([]))).await).await, r#"{"processed":0}"#);
    assert_eq!(body_text(send(&app, post_items(json!([1, 2, 3, 4]))).await).await, r#"{"processed":4}"#);
    let exhausted = send(&app, post_items(json!([1]))).await;
    assert_eq!(exhausted.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn disabled_throttles_and_unlimited_rates_admit_without_io() {
    let (api, _clock, backend) = throttle("switch", "1/min");
    let request = get_from("/", [13, 0, 0, 1]);
    api.set_enabled(false);
    for _ in 0..5 {
        assert!(!api.hit(&request).await.unwrap().is_counted());
    }
    assert!(backend.is_empty());
    api.set_enabled(true);
    api.set_rate(throttle::Rate::UNLIMITED);
    for _ in 0..5 {
        api.hit(&request).await.unwrap();
    }
    assert!(backend.is_empty());
    api.set_rate("1/min".parse().unwrap());
    api.hit(&request).await.unwrap();
    assert!(api.hit(&request).await.is_err());
}

#[tokio::test]
async fn a_custom_throttled_handler_replaces_the_response() {
    let (backend, _clock) = manual_backend();
    let api = HttpThrottle::builder("custom:handler")
        .rate("1/min")
        .backend(backend)
        .throttled_handler(|t| {
            let body = Json(json!({ "error": "slow down", "retry_after_ms": t.wait_ms() }));
            (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
        })
        .build()
        .unwrap();
    let app = data_app(api);
    send(&app, get_from("/data", [14, 0, 0, 1])).await;
    let response = send(&app, get_from("/data", [14, 0, 0, 1])).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body_text(response).await, r#"{"error":"slow down","retry_after_ms":45000}"#);
}

#[tokio::test]
async fn dynamic_rates_work_for_hit_stat_check_and_headers() {
    let (backend, _clock) = manual_backend();
    let api = HttpThrottle::builder("dynamic:rate")
        .rate_fn(|conn, _ctx| {
            let premium = conn.headers().contains_key("x-premium");
            async move { if premium { throttle::Rate::per_minute(5) } else { throttle::Rate::per_minute(2) } }
        })
        .backend(backend)
        .headers(&*throttle::headers::DEFAULT_HEADERS_ALWAYS)
        .build()
        .unwrap();
    let mut premium = get_from("/", [15, 0, 0, 1]);
    premium.headers_mut().insert("x-premium", "1".parse().unwrap());
    let admitted = api.hit(&premium).await.unwrap();
    assert_eq!(admitted.headers()["x-ratelimit-limit"], "5");
    assert_eq!(admitted.headers()["x-ratelimit-remaining"], "4");
    let stat = api.stat(&premium).await.unwrap().unwrap();
    assert_eq!((stat.rate.limit(), stat.hits_remaining), (5, 4));
    assert!(api.check(&premium).cost(4).await);
    let basic = get_from("/", [15, 0, 0, 2]);
    let headers = api.get_headers(&basic).await.unwrap();
    assert_eq!(headers["x-ratelimit-limit"], "2");
}

/// The key a stat reports is the key the hit counted under: the in-memory fast path
/// writes an address's bytes into its key without making the id's text, and the
/// backend holds a digest of the key, never the key; both must name the same bucket.
#[tokio::test]
async fn the_key_a_stat_reports_is_the_key_the_hits_counted_under() {
    use std::net::{IpAddr, SocketAddr};
    use throttle::Rate;
    use throttle::strategy::FixedWindow;

    let (api, _clock, backend) = throttle("key:text", "5/min");
    let stat_api = api.clone();
    let app = data_app(api).route(
        "/stat",
        get(move |request: Request| async move {
            let stat = stat_api.stat(&request).await?.expect("a client");
            Ok::<_, ThrottleError>(stat.key)
        }),
    );
    let from = |uri: &str, ip: IpAddr| {
        let mut request = Request::builder().uri(uri).body(Body::empty()).expect("valid request");
        request.extensions_mut().insert(axum::extract::ConnectInfo(SocketAddr::new(ip, 40_000)));
        request
    };
    for ip in ["203.0.113.7", "0.0.0.0", "2001:db8:1:2:3:4:5:6", "::ffff:198.51.100.9"] {
        let ip: IpAddr = ip.parse().expect("an address");
        for _ in 0..2 {
            assert_eq!(send(&app, from("/data", ip)).await.status(), StatusCode::OK);
        }
        let key = body_text(send(&app, from("/stat", ip)).await).await;
        assert!(key.starts_with("throttle:key:text:ip="), "{key}");
        assert_eq!(backend.stat_now(&key, &FixedWindow, Rate::per_minute(5)).remaining, 3, "{key}");
        // And the other way: a hit on the text counts against the client's requests.
        assert!(backend.hit_now(&key, &FixedWindow, Rate::per_minute(5), 3).allowed);
        assert_eq!(send(&app, from("/data", ip)).await.status(), StatusCode::TOO_MANY_REQUESTS, "{key}");
    }
}

/// The seed's `/batch`: a batch that does not fit is told how long until *it* fits
/// (`stat(..).cost(n)`; `wait_ms` alone is for a cost of 1), for every built-in
/// strategy. The answer is exact: a millisecond before it the batch is still refused
/// (and told 1 ms), at it the batch is admitted.
#[tokio::test]
async fn a_batch_that_does_not_fit_is_told_when_it_will() {
    for kind in throttle::strategy::StrategyKind::ALL {
        let (backend, clock) = manual_backend();
        let batch = HttpThrottle::builder(format!("batch:{}", kind.name()))
            .rate("10/min")
            .strategy_name(kind.name())
            .backend(backend)
            .build()
            .unwrap();
        let app = Router::new().route(
            "/batch/{items}",
            post(move |axum::extract::Path(items): axum::extract::Path<u64>, info: RequestInfo| async move {
                if !batch.check(&info).cost(items).await {
                    let wait_ms = batch.stat(&info).cost(items).await?.map_or(0, |stat| stat.wait_ms);
                    let retry_after = wait_ms.div_ceil(1_000).max(1).to_string();
                    let body = format!("a batch of {items} fits in {wait_ms} ms");
                    return Ok((StatusCode::TOO_MANY_REQUESTS, [("retry-after", retry_after)], body).into_response());
                }
                batch.hit(&info).cost(items).await?;
                Ok::<_, ThrottleError>("processed".into_response())
            }),
        );
        let post_batch = |items: u64| request_from("POST", &format!("/batch/{items}"), [8, 8, 8, 8], Body::empty());
        assert_eq!(send(&app, post_batch(7)).await.status(), StatusCode::OK, "{kind:?}");
        let refused = send(&app, post_batch(6)).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "{kind:?}");
        let text = body_text(refused).await;
        let wait: u64 = text.trim_start_matches("a batch of 6 fits in ").trim_end_matches(" ms").parse().unwrap();
        let one = send(&app, post_batch(1)).await;
        assert_eq!(one.status(), StatusCode::OK, "{kind:?}: 3 were left, so 1 fits now");
        assert!(wait > 0, "{kind:?}");
        // After the single item: 6 needs longer than before, and the answer is exact.
        let text = body_text(send(&app, post_batch(6)).await).await;
        let wait: u64 = text.trim_start_matches("a batch of 6 fits in ").trim_end_matches(" ms").parse().unwrap();
        clock.advance(Duration::from_millis(wait - 1));
        let early = send(&app, post_batch(6)).await;
        assert_eq!(early.status(), StatusCode::TOO_MANY_REQUESTS, "{kind:?}: 1 ms early");
        assert_eq!(body_text(early).await, "a batch of 6 fits in 1 ms", "{kind:?}");
        clock.advance(Duration::from_millis(1));
        assert_eq!(send(&app, post_batch(6)).await.status(), StatusCode::OK, "{kind:?}: on time");
        // A batch no wait can admit is an error, not a wait.
        let never = send(&app, post_batch(11)).await;
        assert_eq!(never.status(), StatusCode::TOO_MANY_REQUESTS, "{kind:?}");
        assert!(!never.headers().contains_key("retry-after"), "{kind:?}: no wait would ever admit it");
    }
}
