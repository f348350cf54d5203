//! `shadow` takes `true` or `false`, not a string.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:shadow", rate = "100/min", shadow = "true")]
async fn handler() -> &'static str {
    "ok"
}

#[throttle(uid = "ui:shadow-number", rate = "100/min", shadow = 1)]
async fn numbered() -> &'static str {
    "ok"
}

fn main() {
    // The handlers still exist, so routes naming them add no errors.
    let _app: Router = Router::new().route("/", get(handler)).route("/n", get(numbered));
}
