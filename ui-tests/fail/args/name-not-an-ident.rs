//! The static name must be an identifier, not a string.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:name", rate = "100/min", name = "DATA_THROTTLE")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
