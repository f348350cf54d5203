//! A missing uid is reported with the full grammar.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(rate = "100/min")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
