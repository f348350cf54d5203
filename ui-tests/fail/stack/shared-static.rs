//! Two stacked attributes cannot both generate the default static: the lower one is
//! told to take a `name`.

use throttle::throttle;

#[throttle(uid = "ui:stack-burst", rate = "10/s")]
#[throttle(uid = "ui:stack-daily", rate = "1000/day")]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    let _ = (handler, HANDLER_THROTTLE.name());
}
