//! A login limiter that counts only failures: 5 failed attempts per 15 minutes per
//! client, while successful logins are free. The attempt is decided before the
//! handler runs, so a client cannot race many guesses at once: pending attempts hold
//! their units until their outcome is known, then a success gives its unit back.
//!
//! ```text
//! cargo run --example login                   # serves on 127.0.0.1:3008 (PORT=... to change)
//! curl -i -X POST localhost:3008/login -d 'user=ada&password=wrong'
//! curl -i -X POST localhost:3008/login -d 'user=ada&password=correct-horse'
//! ```

use axum::http::StatusCode;
use axum::routing::post;
use axum::{Form, Router};
use serde::Deserialize;
use std::net::SocketAddr;
use throttle::throttle;

#[derive(Deserialize)]
struct Credentials {
    user: String,
    password: String,
}

/// Counts responses of 400 and above: a wrong password (401) costs an attempt, a
/// successful login (204) does not. The handler returns a `Response` after settling.
#[throttle(uid = "example:login", rate = "5/15min", count = "failures")]
async fn login(Form(credentials): Form<Credentials>) -> StatusCode {
    // A real app checks a password hash; the shape of the limit is the same.
    if credentials.user == "ada" && credentials.password == "correct-horse" {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNAUTHORIZED
    }
}

fn app() -> Router {
    Router::new().route("/login", post(login))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3008);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("throttle login example on http://{}", listener.local_addr()?);
    println!("  POST /login  user=ada&password=correct-horse; 5 failed attempts per 15 minutes per client");
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

    async fn attempt(app: &Router, ip: [u8; 4], password: &str) -> u16 {
        let body = format!("user=ada&password={password}");
        let mut request = Request::post("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from((ip, 1))));
        app.clone().oneshot(request).await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn successes_are_free_and_the_sixth_failure_is_refused() {
        let app = app();
        let client = [192, 0, 2, 10];
        for _ in 0..50 {
            assert_eq!(attempt(&app, client, "correct-horse").await, 204);
        }
        for _ in 0..5 {
            assert_eq!(attempt(&app, client, "guess").await, 401);
        }
        assert_eq!(attempt(&app, client, "guess").await, 429, "the 6th failure");
        assert_eq!(attempt(&app, client, "correct-horse").await, 429, "decided before the password is checked");
        assert_eq!(attempt(&app, [192, 0, 2, 11], "guess").await, 401, "another client has its own attempts");
    }
}
