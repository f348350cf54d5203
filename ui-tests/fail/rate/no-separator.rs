//! A rate without `/` or `per` shows the accepted forms.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:rate-no-separator", rate = "100")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    // The handler still exists, so routes naming it add no errors.
    let _app: Router = Router::new().route("/", get(handler));
}
