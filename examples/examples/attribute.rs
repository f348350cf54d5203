//! `#[throttle]` on plain axum handlers, and direct calls on the statics it generates.
//!
//! ```text
//! cargo run --example attribute            # serves on 127.0.0.1:3001 (PORT=... to change)
//! curl -i localhost:3001/data              # 5 per minute, X-RateLimit-* on every response
//! curl -i -X POST localhost:3001/items -H 'content-type: application/json' -d '{"name":"a"}'
//! curl -i localhost:3001/status            # what /data has left, read from its static
//! ```

use axum::extract::{Path, Request};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::net::SocketAddr;
use throttle::{ThrottleError, throttle};

#[derive(Serialize)]
struct Item {
    id: u32,
    name: String,
}

#[derive(Deserialize)]
struct NewItem {
    name: String,
}

/// 5 requests a minute per client, with `X-RateLimit-Limit`/`-Remaining` on every
/// response (and `Retry-After` on 429s). Generates `GET_DATA_THROTTLE`.
#[throttle(uid = "example:data", rate = "5/min", headers = "always")]
async fn get_data() -> Json<Vec<Item>> {
    Json(vec![Item { id: 1, name: "first".into() }, Item { id: 2, name: "second".into() }])
}

/// Writes cost 2 of 10 per minute. The throttle runs before the JSON extractor, so a
/// client over its limit gets 429 even with a malformed body, which is never read.
#[throttle(uid = "example:items", rate = "10/min", cost = 2, headers = "throttled")]
async fn create_item(Json(item): Json<NewItem>) -> (StatusCode, Json<Item>) {
    (StatusCode::CREATED, Json(Item { id: 3, name: item.name }))
}

/// Two limits on one handler: a burst limit and a daily quota, each with its static.
#[throttle(uid = "example:item-burst", rate = "3/s", name = ITEM_BURST)]
#[throttle(uid = "example:item-daily", rate = "1000/day", name = ITEM_DAILY)]
async fn get_item(Path(id): Path<u32>) -> Result<Json<Item>, StatusCode> {
    if id == 0 {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(Json(Item { id, name: format!("item {id}") }))
}

/// Reads the quota `/data` has left for this client, consuming nothing.
async fn status(request: Request) -> Result<Json<Value>, ThrottleError> {
    let data = GET_DATA_THROTTLE.stat(&request).await?;
    let daily = ITEM_DAILY.stat(&request).await?;
    Ok(Json(json!({
        "data_remaining": data.as_ref().map(|s| s.hits_remaining),
        "data_resets_in_ms": data.as_ref().map(|s| s.reset_ms),
        "items_today_remaining": daily.map(|s| s.hits_remaining),
        "data_would_admit": GET_DATA_THROTTLE.check(&request).await,
    })))
}

/// Spends `/data`'s quota from another route: an export costs 3 of its 5.
async fn export(request: Request) -> Result<String, ThrottleError> {
    GET_DATA_THROTTLE.hit(&request).cost(3).await?;
    Ok("exported\n".to_string())
}

fn app() -> Router {
    Router::new()
        .route("/data", get(get_data))
        .route("/items", post(create_item))
        .route("/items/{id}", get(get_item))
        .route("/status", get(status))
        .route("/export", post(export))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Build every throttle now, so a configuration mistake (a uid used twice) stops
    // the server at startup instead of failing requests with 500.
    for throttle in [&GET_DATA_THROTTLE, &CREATE_ITEM_THROTTLE, &ITEM_BURST, &ITEM_DAILY] {
        throttle.get()?;
    }
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3001);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("throttle attribute example on http://{}", listener.local_addr()?);
    println!("  GET  /data         5 per minute, X-RateLimit-* headers on every response");
    println!("  POST /items        JSON {{\"name\": ...}}, cost 2 of 10 per minute");
    println!("  GET  /items/{{id}}   3 per second and 1000 per day");
    println!("  GET  /status       what /data and /items/{{id}} have left (direct `stat` calls)");
    println!("  POST /export       spends 3 of /data's quota (a direct `hit` call)");
    axum::serve(listener, app().into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::Request;
    use tower::ServiceExt;

    fn from(method: &str, uri: &str, body: &'static str) -> Request<Body> {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request");
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 1], 5000))));
        request
    }

    #[tokio::test]
    async fn routes_share_the_generated_statics() {
        let app = app();
        let first = app.clone().oneshot(from("GET", "/data", "")).await.expect("response");
        assert_eq!(first.headers()["x-ratelimit-remaining"], "4");
        // The export spends 3 of the 4 left, through the static.
        let export = app.clone().oneshot(from("POST", "/export", "")).await.expect("response");
        assert_eq!(export.status(), StatusCode::OK);
        let last = app.clone().oneshot(from("GET", "/data", "")).await.expect("response");
        assert_eq!(last.headers()["x-ratelimit-remaining"], "0");
        let over = app.clone().oneshot(from("GET", "/data", "")).await.expect("response");
        assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);

        for expected in [StatusCode::CREATED; 5] {
            let created = app.clone().oneshot(from("POST", "/items", r#"{"name":"a"}"#)).await.expect("response");
            assert_eq!(created.status(), expected);
        }
        let refused = app.clone().oneshot(from("POST", "/items", "{malformed")).await.expect("response");
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}
