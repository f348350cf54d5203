//! Our attribute under a spelling the top one cannot recognise as ours would be a
//! second guard: it is refused, and the error says how to spell it.

mod limits {
    pub use throttle::throttle as limit;
}

#[throttle::throttle(uid = "ui:stack-spelled", rate = "10/s")]
#[limits::limit(uid = "ui:stack-renamed", rate = "1000/day", name = DAILY)]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    let _ = handler;
}
