//! `rate` and `rate_fn` exclude each other.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:both", rate = "100/min", rate_fn = plan_rate)]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
