//! A stacked `#[throttle]` without arguments: the missing keys are reported on it, not
//! on the top attribute.

use throttle::throttle;

#[throttle(uid = "ui:stack-keys", rate = "10/s")]
#[throttle]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    let _ = handler;
}
