//! Independent mistakes are all reported in one compile.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "", rate = "5/weeks", headers = "sometimes", cost = -2)]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
