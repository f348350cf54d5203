//! A uid longer than 64 bytes (the runtime's `throttle::key::MAX_UID_LEN`) is refused
//! on the literal: keys must fit in 256 bytes.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "v1/reports/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", rate = "100/min")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    let _app: Router = Router::new().route("/", get(handler));
}
