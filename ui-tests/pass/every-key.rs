//! Every key at once, with each value form the docs list.

use axum::Router;
use axum::routing::get;
use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;
use throttle::strategy::FixedWindow;
use throttle::{Connection, Context, CountWhen, OnError, Rate, throttle, backend::MemoryBackend, headers::Headers, identity::{Identifier, Identity}};

static BACKEND: LazyLock<MemoryBackend> = LazyLock::new(MemoryBackend::new);
static CUSTOM_HEADERS: LazyLock<Headers> = LazyLock::new(|| throttle::headers::DEFAULT_HEADERS_ALWAYS.clone());

fn by_key() -> Identifier {
    Identifier::from_fn(|conn| match conn.headers().get("x-api-key") {
        Some(key) => Identity::client(String::from_utf8_lossy(key.as_bytes()).into_owned()),
        None => throttle::identity::EXEMPTED,
    })
}

fn cost_of(conn: &Connection<'_>, _context: &Context) -> impl Future<Output = u64> + Send + use<> {
    let bulk = conn.uri().query() == Some("bulk");
    async move { if bulk { 5 } else { 2 } }
}

fn rate_of(_conn: &Connection<'_>, _context: &Context) -> impl Future<Output = Rate> + Send + use<> {
    async { Rate::per_minute(10) }
}

#[throttle(
    uid = "ui:every-key",
    rate = "1000/1h30m",
    headers = CUSTOM_HEADERS,
    strategy = FixedWindow,
    cost = cost_of,
    backend = BACKEND.clone(),
    identifier = by_key(),
    rules = [throttle::Rule::bypass_if().predicate(|conn| {
        let internal = conn.headers().contains_key("x-internal");
        async move { internal }
    })],
    scope = "reports",
    on_error = OnError::Throttle(Duration::from_secs(5)),
    shadow = true,
    count = CountWhen::custom(|response| response.status().is_server_error()),
    name = REPORTS,
)]
async fn reports() -> &'static str {
    "reports"
}

#[throttle(uid = "ui:every-key-fn", rate_fn = rate_of, strategy = "token_bucket_debt(burst = 15, max_debt = 5)", on_error = "raise", cost = 0, shadow = cfg!(debug_assertions), count = "failures")]
async fn dynamic() -> &'static str {
    "dynamic"
}

fn main() {
    let _app: Router = Router::new().route("/reports", get(reports)).route("/dynamic", get(dynamic));
    let _ = (&REPORTS, &DYNAMIC_THROTTLE);
}
