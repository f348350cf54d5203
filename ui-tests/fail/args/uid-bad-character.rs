//! A uid character outside the allowed set is named.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "api data", rate = "100/min")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
