//! `crate` must name a path.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:crate", rate = "100/min", crate = "not a path")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
