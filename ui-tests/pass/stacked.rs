//! Two throttles on one handler (the top one is hit first), mixed with other
//! attributes, each static named.

use axum::Router;
use axum::routing::get;
use throttle::throttle;

/// Per-second burst and a daily quota.
#[allow(clippy::unused_async)]
#[throttle(uid = "ui:stacked-burst", rate = "10/s", headers = "always", name = BURST)]
#[inline]
#[throttle(uid = "ui:stacked-daily", rate = "1000/day", name = DAILY)]
async fn search(axum::extract::Query(q): axum::extract::Query<Vec<(String, String)>>) -> String {
    q.len().to_string()
}

fn main() {
    let _app: Router = Router::new().route("/search", get(search));
    assert_eq!((BURST.name(), DAILY.name()), ("BURST", "DAILY"));
}
