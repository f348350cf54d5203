//! The attribute applies to functions only.

use throttle::throttle;

#[throttle(uid = "ui:not-a-fn", rate = "100/min")]
struct Handler;

fn main() {
    let _ = Handler;
}
