//! The process-wide shadow switch (its own test binary: it flips a global).

mod support;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use support::*;
use throttle::{HttpThrottle, ThrottleLayer, throttle};

#[throttle(uid = "shadow:global:attribute", rate = "1/min")]
async fn annotated() -> &'static str {
    "ok"
}

#[tokio::test]
async fn the_global_switch_shadows_every_throttle_and_gives_each_its_own_setting_back() {
    let (backend, _clock) = manual_backend();
    let layered = HttpThrottle::builder("shadow:global:layer").rate("1/min").backend(backend).build().unwrap();
    let app = Router::new()
        .route("/layer", get(|| async { "ok" }).layer(ThrottleLayer::new(layered.clone())))
        .route("/attribute", get(annotated));
    let status = |uri: &'static str| {
        let app = app.clone();
        async move { send(&app, get_from(uri, [4, 4, 4, 4])).await.status() }
    };
    for uri in ["/layer", "/attribute"] {
        assert_eq!(status(uri).await, StatusCode::OK);
        assert_eq!(status(uri).await, StatusCode::TOO_MANY_REQUESTS, "{uri}");
    }
    throttle::shadow::set_global(true);
    assert!(throttle::shadow::is_global() && layered.is_shadow());
    for uri in ["/layer", "/attribute"] {
        for _ in 0..3 {
            assert_eq!(status(uri).await, StatusCode::OK, "{uri}: shadowed process-wide");
        }
    }
    throttle::shadow::set_global(false);
    assert!(!layered.is_shadow(), "back to its own setting");
    for uri in ["/layer", "/attribute"] {
        assert_eq!(status(uri).await, StatusCode::TOO_MANY_REQUESTS, "{uri}");
    }
}
