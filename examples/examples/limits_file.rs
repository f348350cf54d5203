//! Limits from a TOML file: loaded at startup, reloaded when the file changes (polled
//! every 2 s) or on `POST /admin/reload`. The file sets rates, strategies and the
//! enabled and shadow switches; a bad version is refused with its line, column, uid
//! and field, and the running limits stay.
//!
//! ```text
//! cargo run --example limits_file -- examples/limits.toml   # serves on 127.0.0.1:3006
//! curl -i localhost:3006/api/items        # 429 after the file's rate
//! curl -s localhost:3006/admin/limits     # what runs now
//! $EDITOR examples/limits.toml            # change a rate: applied within 2 s
//! curl -i -X POST localhost:3006/admin/reload
//! ```

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::time::Duration;
use throttle::limits::LimitsFile;
use throttle::{ConfigError, HttpThrottle, ThrottleLayer, registry};

/// The throttles the file tunes, with the code's defaults.
fn throttles() -> Result<(HttpThrottle, HttpThrottle), ConfigError> {
    let items = HttpThrottle::builder("limits:items").rate("100/min").registry(registry::global()).build()?;
    let search = HttpThrottle::builder("limits:search").rate("10/min").registry(registry::global()).build()?;
    Ok((items, search))
}

fn app(items: HttpThrottle, search: HttpThrottle, limits: LimitsFile) -> Router {
    // Protect the admin routes in a real deployment.
    let admin = Router::new().route("/admin/limits", get(list)).route(
        "/admin/reload",
        post(move || {
            let limits = limits.clone();
            async move {
                match limits.load() {
                    Ok(named) => (StatusCode::OK, format!("applied to {named} throttles\n")),
                    Err(error) => (StatusCode::BAD_REQUEST, format!("refused, nothing changed: {error}\n")),
                }
            }
        }),
    );
    Router::new()
        .route("/api/items", get(|| async { "items\n" }).layer(ThrottleLayer::new(items)))
        .route("/api/search", get(|| async { "results\n" }).layer(ThrottleLayer::new(search)))
        .merge(admin)
}

/// One line per live throttle: uid, rate, strategy, enabled, shadow.
async fn list() -> String {
    registry::global()
        .list()
        .iter()
        .map(|entry| {
            let rate = entry.rate().map_or("(a rate function)".to_string(), |rate| rate.to_string());
            let (uid, strategy) = (entry.uid(), entry.strategy());
            format!("{uid} {rate} {strategy} enabled={} shadow={}\n", entry.is_enabled(), entry.is_shadow())
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "examples/limits.toml".to_string());
    let (items, search) = throttles()?;
    // The throttles exist before the file is applied: it names live ones.
    let limits = LimitsFile::new(&path);
    limits.load()?;
    let _watcher = limits.watch(Duration::from_secs(2));
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3006);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("throttle limits-file example on http://{}, limits from {path}", listener.local_addr()?);
    print!("{}", list().await);
    let app = app(items, search, limits);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn request(method: &str, uri: &str) -> Request<Body> {
        let mut request = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([198, 51, 100, 7], 1))));
        request
    }

    async fn text(app: &Router, method: &str, uri: &str) -> (StatusCode, String) {
        let response = app.clone().oneshot(request(method, uri)).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_file_sets_the_limits_and_a_bad_reload_changes_nothing() {
        let dir = std::env::temp_dir().join(format!("throttle-example-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("limits.toml");
        std::fs::write(&path, std::fs::read_to_string("limits.toml").unwrap()).unwrap();
        let (items, search) = throttles().unwrap();
        let limits = LimitsFile::new(&path);
        limits.load().unwrap();
        let app = app(items, search, limits);
        let listed = text(&app, "GET", "/admin/limits").await.1;
        assert!(listed.contains("limits:items 5/10s fixed_window enabled=true shadow=false"), "{listed}");
        assert!(listed.contains("limits:search 20/min token_bucket enabled=true shadow=true"), "{listed}");
        assert_eq!(statuses(&app, "/api/items", 6).await, [200, 200, 200, 200, 200, 429]);
        assert_eq!(statuses(&app, "/api/search", 8).await, [200; 8], "shadow mode: observed, not enforced");

        std::fs::write(&path, "[throttles.\"limits:items\"]\nrate = \"5/10s\"\nenabled = fals\n").unwrap();
        let (status, refusal) = text(&app, "POST", "/admin/reload").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(refusal.contains("limits.toml:3:11: invalid TOML"), "{refusal}");
        assert_eq!(text(&app, "GET", "/api/items").await.0, StatusCode::TOO_MANY_REQUESTS, "unchanged");

        std::fs::write(&path, "[throttles.\"limits:items\"]\nenabled = false\n").unwrap();
        assert_eq!(text(&app, "POST", "/admin/reload").await.0, StatusCode::OK);
        assert_eq!(text(&app, "GET", "/api/items").await.0, StatusCode::OK, "switched off by the file");
        let listed = text(&app, "GET", "/admin/limits").await.1;
        assert!(
            listed.contains("limits:items 100/min fixed_window enabled=false"),
            "the code's rate is back: {listed}"
        );
        assert!(
            listed.contains("limits:search 10/min fixed_window enabled=true shadow=false"),
            "dropped from the file: the code's rate, strategy and switch: {listed}"
        );
        assert_eq!(statuses(&app, "/api/search", 11).await[10], 429, "the code's 10/min, enforced");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    async fn statuses(app: &Router, uri: &str, n: usize) -> Vec<u16> {
        let mut statuses = Vec::new();
        for _ in 0..n {
            statuses.push(text(app, "GET", uri).await.0.as_u16());
        }
        statuses
    }
}
