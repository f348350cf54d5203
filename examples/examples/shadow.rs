//! Rolling a new limit out in shadow mode: the new, stricter limit decides and counts
//! on every request but rejects nothing; its would-be rejections are logged (`info`)
//! and listed per client. An admin route turns it to enforcing at runtime through the
//! registry, with no redeploy.
//!
//! ```text
//! cargo run --example shadow                  # serves on 127.0.0.1:3007 (PORT=... to change)
//! for i in $(seq 5); do curl -s -o /dev/null -w '%{http_code}\n' localhost:3007/api/search; done
//! curl localhost:3007/admin/would-reject      # who the new limit would have stopped
//! curl -X POST localhost:3007/admin/enforce   # from now on the limit rejects
//! ```

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use std::net::SocketAddr;
use throttle::registry::Registry;
use throttle::{ConfigError, HttpThrottle, ThrottleLayer};

const NEW_LIMIT: &str = "search:per-client";

fn app() -> Result<Router, ConfigError> {
    let registry = Registry::new();
    let new_limit = HttpThrottle::builder(NEW_LIMIT)
        .rate("3/min")
        .shadow(true) // decide and count, never reject: watch first
        .track_top_denied(10)
        .registry(&registry)
        .build()?;
    let api = Router::new().route("/api/search", get(|| async { "results\n" })).layer(ThrottleLayer::new(new_limit));
    let admin = Router::new()
        .route("/admin/would-reject", get(would_reject))
        .route("/admin/enforce", post(enforce))
        .with_state(registry);
    Ok(api.merge(admin))
}

/// The clients the new limit denied (or would have), most first.
async fn would_reject(State(registry): State<Registry>) -> String {
    let Some(entry) = registry.get(NEW_LIMIT) else { return "no such throttle\n".into() };
    let mode = if entry.is_shadow() { "shadow" } else { "enforcing" };
    let mut out = format!("{NEW_LIMIT} ({mode})\n");
    for client in entry.top_denied() {
        out.push_str(&format!("{} {}\n", client.denials, client.key));
    }
    out
}

async fn enforce(State(registry): State<Registry>) -> &'static str {
    match registry.get(NEW_LIMIT) {
        Some(entry) => {
            entry.set_shadow(false);
            "enforcing\n"
        }
        None => "no such throttle\n",
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3007);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("throttle shadow example on http://{}", listener.local_addr()?);
    println!("  GET  /api/search          3 per minute per client, in shadow mode");
    println!("  GET  /admin/would-reject  the clients it would have stopped");
    println!("  POST /admin/enforce       enforce it from now on");
    axum::serve(listener, app()?.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn request(method: &str, uri: &str) -> Request<Body> {
        let mut request = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([198, 51, 100, 4], 1))));
        request
    }

    async fn call(app: &Router, method: &str, uri: &str) -> (StatusCode, String) {
        let response = app.clone().oneshot(request(method, uri)).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn shadow_first_then_enforce_at_runtime() {
        let app = app().unwrap();
        for _ in 0..5 {
            assert_eq!(call(&app, "GET", "/api/search").await.0, StatusCode::OK, "shadow mode rejects nothing");
        }
        let (_, report) = call(&app, "GET", "/admin/would-reject").await;
        assert_eq!(report, "search:per-client (shadow)\n2 throttle:search:per-client:ip=198.51.100.4:default\n");

        assert_eq!(call(&app, "POST", "/admin/enforce").await.1, "enforcing\n");
        assert_eq!(call(&app, "GET", "/api/search").await.0, StatusCode::TOO_MANY_REQUESTS, "the counts carried over");
        let (_, report) = call(&app, "GET", "/admin/would-reject").await;
        assert!(report.starts_with("search:per-client (enforcing)\n3 "), "{report}");
    }
}
