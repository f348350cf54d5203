//! Strategy parameters are checked: names per strategy, whole-number values.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:strategy-param", rate = "100/min", strategy = "gcra(brust = 5)")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
