//! The uid must be a string literal.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

const UID: &str = "ui:const";

#[throttle(uid = UID, rate = "100/min")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
