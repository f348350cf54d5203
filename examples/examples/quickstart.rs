//! The demo server: direct use of `throttle` on the embedded in-memory backend.
//!
//! ```text
//! cargo run --example quickstart          # serves on 127.0.0.1:3000 (PORT=... to change)
//! curl -i localhost:3000/data             # X-RateLimit-* headers; 429 + Retry-After after 5
//! curl -i -X POST --data-binary @file localhost:3000/upload
//! curl -i -X POST -d '{"items":[1,2,3]}' -H 'content-type: application/json' localhost:3000/batch
//! curl -s localhost:3000/status
//! ```

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::net::SocketAddr;
use throttle::{ConfigError, HttpThrottle, RequestInfo, ThrottleError, headers::DEFAULT_HEADERS_ALWAYS};

/// The app's throttles, built with the app and shared with the handlers as state.
#[derive(Clone)]
struct Throttles {
    /// 5 requests per 10 seconds per client, with `X-RateLimit-*` on every response.
    data: HttpThrottle,
    /// 100 KiB of uploads per minute per client: one unit per KiB.
    uploads: HttpThrottle,
    /// 20 batch items per minute per client.
    batch: HttpThrottle,
}

impl Throttles {
    fn new() -> Result<Self, ConfigError> {
        Ok(Throttles {
            data: HttpThrottle::builder("quickstart:data").rate("5/10s").headers(&DEFAULT_HEADERS_ALWAYS).build()?,
            uploads: HttpThrottle::builder("quickstart:uploads").rate("100/min").build()?,
            batch: HttpThrottle::builder("quickstart:batch").rate("20/min").build()?,
        })
    }
}

/// A plain hit; the admitted hit carries the headers for the response.
async fn data(State(throttles): State<Throttles>, request: Request) -> Result<impl IntoResponse, ThrottleError> {
    let admitted = throttles.data.hit(&request).await?;
    Ok((admitted, Json(json!({ "data": [1, 2, 3] }))))
}

/// Cost from the body size: 1 unit per KiB, at least 1.
async fn upload(
    State(throttles): State<Throttles>,
    info: RequestInfo,
    body: Bytes,
) -> Result<Json<Value>, ThrottleError> {
    throttles.uploads.hit(&info).cost((body.len() / 1024).max(1)).await?;
    Ok(Json(json!({ "bytes_received": body.len() })))
}

/// A non-consuming pre-check before expensive work; quota is taken only for what
/// was actually processed. A batch that does not fit is told when it will.
async fn batch(
    State(throttles): State<Throttles>,
    info: RequestInfo,
    Json(body): Json<Value>,
) -> Result<Response, ThrottleError> {
    let items = body["items"].as_array().cloned().unwrap_or_default();
    if !throttles.batch.check(&info).cost(items.len()).await {
        // How long until a cost of `items.len()` fits (a stat's `wait_ms` alone is for 1).
        let wait_ms = throttles.batch.stat(&info).cost(items.len()).await?.map_or(0, |stat| stat.wait_ms);
        let retry_after = wait_ms.div_ceil(1_000).max(1);
        let detail = format!("a batch of {} items would exceed the quota; retry in {retry_after} s", items.len());
        return Ok((StatusCode::TOO_MANY_REQUESTS, [(RETRY_AFTER, retry_after.to_string())], detail).into_response());
    }
    let processed = items.iter().filter(|item| !item.is_null()).count();
    throttles.batch.hit(&info).cost(processed).await?;
    Ok(Json(json!({ "processed": processed })).into_response())
}

/// The client's standing with each throttle, consuming nothing.
async fn status(State(throttles): State<Throttles>, request: Request) -> Result<Json<Value>, ThrottleError> {
    let mut report = serde_json::Map::new();
    for throttle in [&throttles.data, &throttles.uploads, &throttles.batch] {
        if let Some(stat) = throttle.stat(&request).await? {
            let entry =
                json!({ "limit": stat.rate.to_string(), "remaining": stat.hits_remaining, "wait_ms": stat.wait_ms });
            report.insert(throttle.uid().to_string(), entry);
        }
    }
    Ok(Json(Value::Object(report)))
}

fn app() -> Result<Router, ConfigError> {
    Ok(Router::new()
        .route("/data", get(data))
        .route("/upload", post(upload))
        .route("/batch", post(batch))
        .route("/status", get(status))
        .with_state(Throttles::new()?))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = app()?;
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("throttle quickstart on http://{addr} (in-memory backend)");
    println!("  GET  /data    5 per 10 s, X-RateLimit-* headers on every response");
    println!("  POST /upload  100 KiB per minute, cost = body size in KiB");
    println!("  POST /batch   20 items per minute, checked before the work, charged after");
    println!("  GET  /status  remaining quota per throttle (consumes nothing)");
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use tower::ServiceExt;

    fn from(method: &str, uri: &str, body: Body) -> Request {
        let mut request = Request::builder().method(method).uri(uri).header("content-type", "application/json");
        request.extensions_mut().unwrap().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 9], 1))));
        request.body(body).unwrap()
    }

    #[tokio::test]
    async fn the_demo_routes_limit_as_they_print() {
        let app = app().expect("valid throttles");
        let mut statuses = Vec::new();
        for _ in 0..6 {
            let response = app.clone().oneshot(from("GET", "/data", Body::empty())).await.unwrap();
            assert!(response.headers().contains_key("x-ratelimit-limit"));
            statuses.push(response.status().as_u16());
        }
        assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);

        let big = from("POST", "/upload", Body::from(vec![0u8; 101 * 1024]));
        let too_big = app.clone().oneshot(big).await.unwrap();
        assert_eq!(too_big.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(!too_big.headers().contains_key("retry-after"), "no wait would ever admit it");
        let ok = from("POST", "/upload", Body::from(vec![0u8; 60 * 1024]));
        assert_eq!(app.clone().oneshot(ok).await.unwrap().status(), StatusCode::OK);

        let items = |n: usize| from("POST", "/batch", Body::from(json!({ "items": vec![1; n] }).to_string()));
        assert_eq!(app.clone().oneshot(items(15)).await.unwrap().status(), StatusCode::OK);
        let refused = app.clone().oneshot(items(6)).await.unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = refused.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry_after), "the window ends within the minute: {retry_after}");
        // 21 items could never fit a limit of 20: an error, not a wait.
        let never = app.clone().oneshot(items(21)).await.unwrap();
        assert_eq!(never.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(!never.headers().contains_key(RETRY_AFTER));

        let status = app.oneshot(from("GET", "/status", Body::empty())).await.unwrap();
        let body = axum::body::to_bytes(status.into_body(), 1 << 16).await.unwrap();
        let report: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(report["quickstart:data"]["remaining"], 0);
        assert_eq!(report["quickstart:uploads"]["remaining"], 40);
        assert_eq!(report["quickstart:batch"]["remaining"], 5);
    }
}
