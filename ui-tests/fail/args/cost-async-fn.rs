//! An `async fn` whose future borrows the request is not a cost function: a cost
//! function copies what it needs, then returns a `'static` future. The error says so.

use axum::Router;
use axum::routing::get;
use throttle::{Connection, Context, throttle};

async fn cost_of(conn: &Connection<'_>, _context: &Context) -> u64 {
    conn.headers().len() as u64
}

#[throttle(uid = "ui:cost-async-fn", rate = "100/min", cost = cost_of)]
async fn handler() -> &'static str {
    "ok"
}

fn main() {
    let _app: Router = Router::new().route("/", get(handler));
}
