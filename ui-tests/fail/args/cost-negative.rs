//! A negative cost is refused.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:cost-negative", rate = "100/min", cost = -1)]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
