//! An unknown count policy lists the policies.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:count", rate = "5/15min", count = "failure")]
async fn login() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(login));
}
