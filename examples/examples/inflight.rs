//! An in-flight limit: at most 2 exports of one client at once, each a slow streamed
//! body that holds its unit until the last byte is sent or the client hangs up. A rate
//! limit runs first, so a client cannot churn through exports either.
//!
//! ```text
//! cargo run --example inflight            # serves on 127.0.0.1:3005 (PORT=... to change)
//! curl -N localhost:3005/export &         # streams one part a second for 5 s
//! curl -N localhost:3005/export &
//! curl -i localhost:3005/export           # 429, application/problem+json, RateLimit-Policy
//! curl -i localhost:3005/health           # never limited
//! ```
//!
//! With several processes, give the limit a shared store:
//! `.store(RedisBackend::connect("redis://127.0.0.1:6379").await?)`; a process that dies
//! holding units gives them back after the lease TTL (60 s by default).

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use throttle::inflight::{InFlightLayer, InFlightLimit};
use throttle::{ConfigError, HttpThrottle, Rule, ThrottleLayer};

fn app(pause: Duration) -> Result<Router, ConfigError> {
    let health = Rule::bypass_if().path("/health")?;
    let exports = InFlightLimit::builder("inflight:exports")
        .max(2)
        .problem_details()
        .headers_on_admitted()
        .rule(health.clone())
        .build()?;
    let rate = HttpThrottle::builder("inflight:exports:rate").rate("30/min").rule(health).build()?;
    Ok(Router::new()
        .route("/export", get(move || async move { export(pause) }))
        .route("/health", get(|| async { "ok\n" }))
        .layer(InFlightLayer::new(exports))
        .layer(ThrottleLayer::new(rate)))
}

/// Five parts, `pause` apart: the first at once, so clients see the response start.
fn export(pause: Duration) -> Body {
    let parts = futures_util::stream::unfold(0, move |n| async move {
        if n == 5 {
            return None;
        }
        if n > 0 {
            tokio::time::sleep(pause).await;
        }
        Some((Ok::<_, Infallible>(format!("part {n}\n")), n + 1))
    });
    Body::from_stream(parts)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3005);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("throttle in-flight example on http://{}", listener.local_addr()?);
    println!("  GET /export   at most 2 at once per client (and 30 per minute), 5 s each");
    println!("  GET /health   never limited");
    let app = app(Duration::from_secs(1))?;
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::ConnectInfo;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn get(uri: &str) -> Request<Body> {
        let mut request = Request::get(uri).body(Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([198, 51, 100, 7], 1))));
        request
    }

    #[tokio::test]
    async fn a_third_export_waits_for_one_of_the_first_two() {
        // Parts after the first never come during the test: the exports stay in flight.
        let app = app(Duration::from_secs(3600)).unwrap();
        let mut running = Vec::new();
        for remaining in ["1", "0"] {
            let response = app.clone().oneshot(get("/export")).await.unwrap();
            assert_eq!(response.headers()["ratelimit"], format!("\"inflight:exports\";r={remaining}").as_str());
            let mut body = response.into_body();
            assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "part 0\n");
            running.push(body);
        }
        let third = app.clone().oneshot(get("/export")).await.unwrap();
        assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(third.headers()["content-type"], "application/problem+json");
        assert_eq!(app.clone().oneshot(get("/health")).await.unwrap().status(), StatusCode::OK);
        running.pop(); // one client hangs up mid-export
        assert_eq!(app.oneshot(get("/export")).await.unwrap().status(), StatusCode::OK);
    }
}
