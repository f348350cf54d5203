//! axum takes at most 16 extractors and the attribute adds one.

use axum::http::{HeaderMap, Method, Uri};
use throttle::throttle;

#[throttle(uid = "ui:too-many", rate = "100/min")]
#[allow(clippy::too_many_arguments)]
async fn handler(
    _a: Method, _b: Uri, _c: HeaderMap, _d: Method, _e: Uri, _f: HeaderMap, _g: Method, _h: Uri,
    _i: HeaderMap, _j: Method, _k: Uri, _l: HeaderMap, _m: Method, _n: Uri, _o: HeaderMap, _p: Method,
) -> &'static str {
    "ok"
}

fn main() {
    let _ = &HANDLER_THROTTLE;
}
