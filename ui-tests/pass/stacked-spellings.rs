//! Stacked attributes in every spelling that is ours are taken into one guard; an
//! attribute that is not ours stays on the function, even when its path ends in
//! `throttle` (here rustfmt's tool namespace, which rustc accepts and ignores).

use axum::Router;
use axum::routing::get;
use throttle::throttle;

#[throttle(uid = "ui:spelled-a", rate = "10/s", headers = "always", name = A)]
#[rustfmt::throttle]
#[throttle::throttle(uid = "ui:spelled-b", rate = "100/min", name = B)]
#[::throttle::throttle(uid = "ui:spelled-c", rate = "1000/day", headers = throttle::headers::IETF_HEADERS, name = C)]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    let _app: Router = Router::new().route("/", get(handler));
    assert_eq!([A.name(), B.name(), C.name()], ["A", "B", "C"]);
}
