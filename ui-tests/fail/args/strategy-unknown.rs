//! An unknown strategy name lists the strategies and suggests one.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:strategy", rate = "100/min", strategy = "token-bucket")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
