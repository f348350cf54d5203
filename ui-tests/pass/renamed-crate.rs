//! `crate = "..."` for a renamed dependency, in the attribute (stacked too) and in
//! `rate!`.

extern crate throttle as my_throttle;

use axum::Router;
use axum::routing::get;
use my_throttle::Rate;

const RATE: Rate = my_throttle::rate!("100/min", crate = "my_throttle");

#[my_throttle::throttle(uid = "ui:renamed", rate = RATE, headers = "always", crate = "my_throttle")]
async fn renamed() -> &'static str {
    "ok"
}

#[my_throttle::throttle(uid = "ui:renamed-path", rate = "1/s", crate = my_throttle)]
async fn renamed_path() -> &'static str {
    "ok"
}

/// The stacked attribute is taken in by its `my_throttle::throttle` path and inherits
/// the top one's `crate`.
#[my_throttle::throttle(uid = "ui:renamed-top", rate = "10/s", crate = "my_throttle")]
#[my_throttle::throttle(uid = "ui:renamed-low", rate = "100/min", name = RENAMED_LOW)]
async fn renamed_stacked() -> &'static str {
    "ok"
}

fn main() {
    let _app: Router = Router::new()
        .route("/", get(renamed))
        .route("/path", get(renamed_path))
        .route("/stacked", get(renamed_stacked));
    assert_eq!(RENAMED_LOW.handler(), "renamed_stacked");
}
