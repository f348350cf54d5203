//! Stacked limits need distinct uids: the repeat is reported on its literal.

use throttle::throttle;

#[throttle(uid = "ui:stack-same", rate = "10/s")]
#[throttle(uid = "ui:stack-same", rate = "1000/day", name = DAILY)]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    let _ = (handler, DAILY.name());
}
