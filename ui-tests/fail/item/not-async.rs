//! A non-async handler is refused on the `fn` token.

use throttle::throttle;

#[throttle(uid = "ui:not-async", rate = "100/min")]
fn handler() -> &'static str {
    "ok"
}

fn main() {
    let _ = handler();
}
