//! A body that does not match the declared return type is reported against it.

use throttle::throttle;

#[throttle(uid = "ui:mismatch", rate = "100/min", headers = "always")]
async fn handler() -> String {
    42
}

fn main() {
    let _ = handler;
}
