//! A zero period multiplier is refused.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:rate-zero-period", rate = "5/0s")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
