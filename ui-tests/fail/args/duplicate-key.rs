//! A key given twice is reported on its second occurrence.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:duplicate", rate = "100/min", rate = "10/s")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
