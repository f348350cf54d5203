//! A `const fn` is refused (and is not async either).

use throttle::throttle;

#[throttle(uid = "ui:const-fn", rate = "100/min")]
const fn handler() -> u32 {
    1
}

fn main() {
    let _ = handler();
}
