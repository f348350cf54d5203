//! Throttles shared by every process that uses the same Redis: run this twice (on two
//! ports) and both count against one quota per client. A deny cache in front of Redis
//! answers clients already over their limit in-process, with the wait Redis gave,
//! counted down: their retries cost Redis nothing until the wait ends.
//!
//! ```text
//! redis-server --port 6379 --save '' &
//! cargo run --example redis -- redis://127.0.0.1:6379   # serves on 127.0.0.1:3004 (PORT=... to change)
//! curl -i localhost:3004/data             # fixed window: 5 per 10 s, X-RateLimit-* headers
//! curl -i localhost:3004/search           # GCRA: 2 per second, bursts of 4, IETF RateLimit headers
//! curl -s localhost:3004/status           # remaining quota per throttle (consumes nothing)
//! curl -s -X POST localhost:3004/reset    # forget every key of the example's namespace
//! ```

use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use throttle::backend::{DenyCache, RedisBackend};
use throttle::{
    HttpThrottle, OnError, ThrottleError,
    headers::{DEFAULT_HEADERS_ALWAYS, IETF_HEADERS},
};

/// The throttles, built once Redis is connected.
#[derive(Clone)]
struct Throttles {
    redis: RedisBackend,
    /// Redis's rejections, remembered until their wait ends.
    cache: DenyCache<RedisBackend>,
    data: HttpThrottle,
    search: HttpThrottle,
}

impl Throttles {
    fn new(redis: RedisBackend) -> Result<Self, throttle::ConfigError> {
        let cache = DenyCache::new(redis.clone());
        let data = HttpThrottle::builder("example:data")
            .rate("5/10s")
            .headers(&DEFAULT_HEADERS_ALWAYS)
            .backend(cache.clone())
            // A Redis that does not answer within 100 ms fails open for this route...
            .timeout(Duration::from_millis(100))
            .on_error(OnError::Allow)
            .build()?;
        let search = HttpThrottle::builder("example:search")
            .rate("2/s")
            .strategy_name("gcra(burst = 4)")
            .headers(&IETF_HEADERS)
            .backend(cache.clone())
            // ...and closed for this one: 429 with Retry-After: 1.
            .timeout(Duration::from_millis(100))
            .on_error(OnError::Throttle(Duration::from_secs(1)))
            .build()?;
        Ok(Throttles { redis, cache, data, search })
    }
}

async fn data(State(t): State<Arc<Throttles>>, request: Request) -> Result<impl IntoResponse, ThrottleError> {
    let admitted = t.data.hit(&request).await?;
    Ok((admitted, Json(json!({ "data": [1, 2, 3] }))))
}

async fn search(State(t): State<Arc<Throttles>>, request: Request) -> Result<impl IntoResponse, ThrottleError> {
    let admitted = t.search.hit(&request).await?;
    Ok((admitted, Json(json!({ "results": ["widget", "gizmo"] }))))
}

/// One read-only script call per throttle.
async fn status(State(t): State<Arc<Throttles>>, request: Request) -> Result<Json<Value>, ThrottleError> {
    let mut report = serde_json::Map::new();
    for throttle in [&t.data, &t.search] {
        if let Some(stat) = throttle.stat(&request).await? {
            let entry = json!({
                "rate": stat.rate.to_string(),
                "strategy": stat.strategy,
                "remaining": stat.hits_remaining,
                "wait_ms": stat.wait_ms,
            });
            report.insert(throttle.uid().to_string(), entry);
        }
    }
    Ok(Json(Value::Object(report)))
}

/// SCAN + UNLINK of the namespace (on every master of a Cluster); this process's deny
/// cache forgets its rejections too (another instance's cache would keep its own until
/// their waits end).
async fn reset(State(t): State<Arc<Throttles>>) -> Result<Json<Value>, ThrottleError> {
    let deleted = t.redis.reset_namespace().await?;
    t.cache.clear();
    Ok(Json(json!({ "deleted_keys": deleted })))
}

fn app(throttles: Throttles) -> Router {
    Router::new()
        .route("/data", get(data))
        .route("/search", get(search))
        .route("/status", get(status))
        .route("/reset", post(reset))
        .with_state(Arc::new(throttles))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "redis://127.0.0.1:6379".to_string());
    let redis = match RedisBackend::connect(&url).await {
        Ok(redis) => redis.with_namespace("throttle-example")?,
        Err(error) => {
            eprintln!("cannot reach Redis at {url}: {error}");
            eprintln!("start one with `redis-server --port 6379 --save ''`, or pass its URL as the first argument");
            std::process::exit(1);
        }
    };
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3004);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("throttle redis example on http://{addr} (state in {url}, namespace `throttle-example`)");
    println!("  GET  /data    fixed window, 5 per 10 s, X-RateLimit-* headers; fails open if Redis is down");
    println!("  GET  /search  GCRA, 2 per second with bursts of 4, IETF RateLimit headers; fails closed");
    println!("  GET  /status  remaining quota per throttle (consumes nothing)");
    println!("  POST /reset   forget every key of the namespace");
    println!("  (a deny cache answers clients over their limit without asking Redis until their wait ends)");
    axum::serve(listener, app(Throttles::new(redis)?).into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
