//! A return type that is no response is reported on the `-> T`, where it is declared.

use throttle::throttle;

struct NotAResponse;

#[throttle(uid = "ui:not-response", rate = "100/min")]
async fn handler() -> NotAResponse {
    NotAResponse
}

fn main() {
    let _ = handler;
}
