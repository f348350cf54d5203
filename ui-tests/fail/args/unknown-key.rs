//! An unknown key lists the keys and suggests the closest one.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:unknown-key", rtae = "100/min")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
