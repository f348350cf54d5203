//! Methods are refused: handlers are free functions.

use throttle::throttle;

struct Api;

impl Api {
    #[throttle(uid = "ui:self", rate = "100/min")]
    async fn handler(&self) -> &'static str {
        "ok"
    }
}

fn main() {
    let _ = Api.handler();
}
