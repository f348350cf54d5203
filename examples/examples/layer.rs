//! Throttles for a whole router: a layer with trusted proxies, a bypass rule for
//! health checks, and stacked limits (a burst limit and a sustained one).
//!
//! ```text
//! cargo run --example layer               # serves on 127.0.0.1:3003 (PORT=... to change)
//! curl -i localhost:3003/api/items        # 429 after 5 in 10 s, or 20 in a minute
//! curl -i localhost:3003/health           # never throttled
//! curl -i -H 'x-forwarded-for: 198.51.100.7' localhost:3003/api/items
//! ```

use axum::Router;
use axum::routing::get;
use std::net::SocketAddr;
use throttle::{
    ConfigError, HttpThrottle, Rule, ThrottleLayer,
    headers::DEFAULT_HEADERS_ALWAYS,
    identity::{ClientIp, Identifier},
};

fn app() -> Result<Router, ConfigError> {
    // Behind a load balancer on 10.0.0.0/8 that appends X-Forwarded-For (and curl from
    // this machine): read that header, and only from there. IPv6 clients count per /64.
    let client_ip = ClientIp::x_forwarded_for().trust("10.0.0.0/8")?.trust("127.0.0.1")?;
    let health = Rule::bypass_if().path("/health")?;

    let burst = HttpThrottle::builder("layer:burst")
        .rate("5/10s")
        .identifier(Identifier::client_ip(client_ip.clone()))
        .headers(&DEFAULT_HEADERS_ALWAYS)
        .rule(health.clone())
        .build()?;
    let sustained = HttpThrottle::builder("layer:sustained")
        .rate("20/min")
        .identifier(Identifier::client_ip(client_ip))
        .rule(health)
        .build()?;

    Ok(Router::new()
        .route("/api/items", get(|| async { "items\n" }))
        .route("/api/users/{id}", get(|| async { "user\n" }))
        .route("/health", get(|| async { "ok\n" }))
        // Burst first: a request it rejects never reaches (or consumes) the hourly quota.
        .layer(ThrottleLayer::new(burst).and(sustained)))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3003);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("throttle layer example on http://{}", listener.local_addr()?);
    println!("  GET /api/items, /api/users/{{id}}  5 per 10 s and 20 per minute per client");
    println!("  GET /health                        bypassed");
    println!("  X-Forwarded-For is honoured only from 10.0.0.0/8 and 127.0.0.1");
    axum::serve(listener, app()?.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    fn get(uri: &str, forwarded_for: &str) -> Request<Body> {
        let mut request = Request::get(uri).header("x-forwarded-for", forwarded_for).body(Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 1))));
        request
    }

    #[tokio::test]
    async fn health_is_bypassed_and_clients_behind_the_proxy_are_separate() {
        let app = app().unwrap();
        for _ in 0..10 {
            assert_eq!(app.clone().oneshot(get("/health", "198.51.100.1")).await.unwrap().status(), StatusCode::OK);
        }
        let mut statuses = Vec::new();
        for _ in 0..6 {
            statuses.push(app.clone().oneshot(get("/api/items", "198.51.100.1")).await.unwrap().status().as_u16());
        }
        assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
        let other = app.oneshot(get("/api/users/7", "198.51.100.2")).await.unwrap();
        assert_eq!(other.status(), StatusCode::OK);
    }
}
