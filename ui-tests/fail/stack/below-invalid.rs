//! Mistakes in a stacked attribute are reported on its own tokens, and the handler and
//! both statics still exist, so code naming them adds no errors.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:stack-top", rate = "10/s")]
#[throttle(uid = "ui:stack-low", rate = "5/weeks", name = LOW, cost = -1)]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    let _app: Router = Router::new().route("/", get(handler));
    let _ = (HANDLER_THROTTLE.name(), LOW.name());
}
