//! A fractional limit suggests a longer period.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:rate-fractional-limit", rate = "0.5/s")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
