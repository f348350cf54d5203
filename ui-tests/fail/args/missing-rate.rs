//! A missing rate is reported with the full grammar and the rate_fn alternative.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:missing-rate")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
