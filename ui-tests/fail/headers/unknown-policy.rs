//! An unknown header policy lists the policies and suggests one.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:headers", rate = "100/min", headers = "allways")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
