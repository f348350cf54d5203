//! Throttle metrics in Prometheus format on `/metrics`: what each throttle admitted,
//! rejected, shadowed, exempted and bypassed, and how long its backend took. The
//! throttles record through the `metrics` facade (feature `metrics`); the exporter
//! here is `metrics-exporter-prometheus` without its HTTP listener: the app renders it
//! on a route of its own.
//!
//! ```text
//! cargo run --example metrics             # serves on 127.0.0.1:3006 (PORT=... to change)
//! for i in $(seq 7); do curl -s -o /dev/null localhost:3006/api/items; done
//! curl -s localhost:3006/metrics | grep throttle_
//! ```

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::time::Duration;
use throttle::{
    ConfigError, HttpThrottle, Rule, ThrottleLayer,
    identity::{EXEMPTED, Identifier, Identity},
};

/// The app; `metrics` renders whatever recorder the throttles were built under.
fn app(metrics: PrometheusHandle) -> Result<Router, ConfigError> {
    // Internal jobs (a header the edge proxy strips from outside traffic) are exempted.
    let by_ip_but_jobs = Identifier::from_fn(|conn| match conn.headers().get("x-internal-job") {
        Some(_) => EXEMPTED,
        None => Identity::client(conn.peer_addr().map_or("unknown".to_string(), |addr| addr.ip().to_string())),
    });
    let api = HttpThrottle::builder("metrics:api")
        .rate("5/min")
        .identifier(by_ip_but_jobs)
        .rule(Rule::bypass_if().path("/api/health")?)
        .build()?;
    // A limit being tried out: decided and counted, never enforced.
    let search = HttpThrottle::builder("metrics:search").rate("2/min").shadow(true).build()?;

    let api_routes = Router::new()
        .route("/api/items", get(|| async { "items\n" }))
        .route("/api/health", get(|| async { "ok\n" }))
        .layer(ThrottleLayer::new(api));
    let search_routes = Router::new().route("/search", get(|| async { "results\n" })).layer(ThrottleLayer::new(search));
    Ok(api_routes.merge(search_routes).route("/metrics", get(move || std::future::ready(metrics.render()))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Install the exporter before building the throttles: they register their metrics
    // with the recorder installed when they are built.
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3006);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("throttle metrics example on http://{}", listener.local_addr()?);
    println!("  GET /api/items   5 per minute per client (X-Internal-Job: exempted)");
    println!("  GET /api/health  bypassed");
    println!("  GET /search      2 per minute, in shadow mode");
    println!("  GET /metrics     Prometheus text format");
    axum::serve(listener, app(metrics)?.into_make_service_with_connect_info::<SocketAddr>()).await?;
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

    fn get(uri: &str, ip: [u8; 4]) -> Request<Body> {
        let mut request = Request::get(uri).body(Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from((ip, 1))));
        request
    }

    async fn status(app: &Router, request: Request<Body>) -> StatusCode {
        app.clone().oneshot(request).await.unwrap().status()
    }

    /// The value of the sample `name{labels}` in a Prometheus text scrape.
    fn sample(scrape: &str, name_and_labels: &str) -> Option<f64> {
        scrape.lines().find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
    }

    #[tokio::test]
    async fn the_scrape_shows_exactly_what_happened() {
        // A recorder of this test's own: the throttles built under it record there.
        let recorder = PrometheusBuilder::new().build_recorder();
        let app = metrics::with_local_recorder(&recorder, || app(recorder.handle())).unwrap();

        // 7 requests from one client against 5/min: 5 admitted (the last two with at
        // most 20 % left: near the limit), 2 rejected.
        let mut statuses = Vec::new();
        for _ in 0..7 {
            statuses.push(status(&app, get("/api/items", [203, 0, 113, 9])).await.as_u16());
        }
        assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
        // 3 health checks (bypassed) and 2 internal jobs (exempted): never limited.
        for _ in 0..3 {
            assert_eq!(status(&app, get("/api/health", [203, 0, 113, 9])).await, StatusCode::OK);
        }
        for _ in 0..2 {
            let mut job = get("/api/items", [203, 0, 113, 9]);
            job.headers_mut().insert("x-internal-job", "nightly".parse().unwrap());
            assert_eq!(status(&app, job).await, StatusCode::OK);
        }
        // 4 searches against a shadowed 2/min: all served, 2 would have been rejected.
        for _ in 0..4 {
            assert_eq!(status(&app, get("/search", [198, 51, 100, 7])).await, StatusCode::OK);
        }

        let response = app.clone().oneshot(get("/metrics", [127, 0, 0, 1])).await.unwrap();
        let scrape = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        let api = |name: &str| sample(&scrape, &format!("{name}{{throttle=\"metrics:api\"}}"));
        let search = |name: &str| sample(&scrape, &format!("{name}{{throttle=\"metrics:search\"}}"));
        assert_eq!(api("throttle_admitted_total"), Some(5.0), "{scrape}");
        assert_eq!(api("throttle_rejected_total"), Some(2.0));
        assert_eq!(api("throttle_near_limit_total"), Some(2.0));
        assert_eq!(api("throttle_bypassed_total"), Some(3.0));
        assert_eq!(api("throttle_exempted_total"), Some(2.0));
        assert_eq!(api("throttle_shadow_rejected_total"), Some(0.0));
        assert_eq!(api("throttle_decision_seconds_count"), Some(7.0), "one decision per limited request");
        assert_eq!(search("throttle_admitted_total"), Some(2.0));
        assert_eq!(search("throttle_shadow_rejected_total"), Some(2.0));
        assert_eq!(search("throttle_rejected_total"), Some(0.0));
        assert!(!scrape.contains("203.0.113.9"), "no label names a client");
    }
}
