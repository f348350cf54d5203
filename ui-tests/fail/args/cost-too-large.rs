//! A cost above 2^53 - 1 is refused on the literal.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:cost-large", rate = "100/min", cost = 9007199254740992)]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
