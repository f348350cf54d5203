//! An unknown time unit lists the units and suggests the closest one.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:rate-unknown-unit", rate = "100/minn")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
