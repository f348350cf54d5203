//! The smallest throttled handlers, with and without headers, on a Router.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:basic", rate = "100/min")]
async fn basic() -> &'static str {
    "ok"
}

#[throttle(uid = "ui:basic-headers", rate = "100/min", headers = "always")]
async fn with_headers() -> String {
    "ok".to_string()
}

#[throttle(uid = "ui:basic-unit", rate = "5 per 10 seconds", headers = "throttled")]
async fn returns_unit() {}

fn main() {
    let _app: Router = Router::new()
        .route("/", get(basic))
        .route("/headers", get(with_headers))
        .route("/unit", get(returns_unit));
    let _ = (&BASIC_THROTTLE, &WITH_HEADERS_THROTTLE, &RETURNS_UNIT_THROTTLE);
}
