//! An unknown error policy lists the policies.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:on-error", rate = "100/min", on_error = "alow")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
