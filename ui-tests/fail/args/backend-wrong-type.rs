//! A backend expression of the wrong type is reported on the expression.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:backend", rate = "100/min", backend = 42)]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
