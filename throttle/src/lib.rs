//! Rate limiting for axum.
//!
//! Build an [`HttpThrottle`] with your app, keyed by a uid, and call it from handlers:
//!
//! ```
//! use axum::extract::{Request, State};
//! use axum::{Json, Router, response::IntoResponse, routing::get};
//! use throttle::{ConfigError, HttpThrottle, ThrottleError, headers::DEFAULT_HEADERS_ALWAYS};
//!
//! async fn list_items(State(api): State<HttpThrottle>, request: Request) -> Result<impl IntoResponse, ThrottleError> {
//!     let admitted = api.hit(&request).await?; // 429 + Retry-After when over the limit
//!     Ok((admitted, Json(["widget", "gizmo"]))) // X-RateLimit-Limit / -Remaining
//! }
//!
//! fn app() -> Result<Router, ConfigError> {
//!     let api = HttpThrottle::builder("api:items").rate("100/min").headers(&DEFAULT_HEADERS_ALWAYS).build()?;
//!     Ok(Router::new().route("/items", get(list_items)).with_state(api))
//! }
//! # let _ = (app()?, app()?); // the same router builds twice
//! # Ok::<(), ConfigError>(())
//! ```
//!
//! With the `macros` feature (on by default) the same in one line, checked at compile
//! time:
//!
//! ```
//! use throttle::throttle;
//!
//! #[throttle(uid = "api:data", rate = "100/min", headers = "always")]
//! async fn get_data() -> &'static str {
//!     "data"
//! }
//! ```
//!
//! - [`Rate`]: `"100/min"`, `"5 per 10s"`, `"1000/1h30m"`, `"unlimited"`.
//! - [`HttpThrottle`]: `hit`, `check`, `stat`, `get_headers`, with `.cost(n)`,
//!   `.scope(..)` and `.context(ctx)`; [`WebSocketThrottle`] for messages (`hit`) and
//!   handshakes (`hit_upgrade`), with the [`WsConnection`](websocket::WsConnection)
//!   extractor ([`websocket`]).
//! - [`ThrottleLayer`]: throttles for a whole router; [`hit_all`] for stacked limits.
//! - [`identity`]: who is limited ([`Identifier`], and
//!   [`ClientIp`](identity::ClientIp) behind proxies); [`Rule`]: where a throttle
//!   applies.
//! - [`headers`]: header values, conditions, collections and presets.
//! - [`strategy`]: the eight algorithms; [`backend`]: where state lives
//!   ([`MemoryBackend`](backend::MemoryBackend) by default, `RedisBackend` with the
//!   `redis` feature).
//! - [`throttles`]: the per-call builders and the types the throttles' signatures
//!   name; [`rate`](mod@rate): the errors of a rate.
//! - [`registry`]: every live throttle by uid, with runtime switches.
//! - [`shadow`]: decide and count, never reject; [`CountWhen`]: count only failures
//!   (or successes), giving back the others; `metrics` (feature): what each throttle
//!   admitted, rejected, shadowed, and how long its backend took.
//! - [`attribute`]: the static and the response type `#[throttle]` generates.
//! - [`inflight`]: at most N requests of a client at once; [`quota`]: costs queued
//!   during a handler and applied together; `limits` (feature `limits-file`): limits
//!   in a TOML file, reloaded on change.
//!
//! ## Features
//!
//! | Feature | Default | What it adds |
//! | --- | --- | --- |
//! | `macros` | yes | `#[throttle]` and `rate!` |
//! | `ws` | yes | [`WebSocketThrottle`]: per-message limits and the `rate_limit` frame (axum's `ws`) |
//! | `json` | yes | `serde_json`: problem-details rejections ([`ThrottleBuilder::problem_details`], RFC 9457) and extra fields in the WebSocket frame (`frame_extra`) |
//! | `tracing` | yes | warnings through `tracing` (a failing backend, a misconfigured proxy) |
//! | `redis` | no | `RedisBackend`: standalone, Cluster and Sentinel |
//! | `limits-file` | no | `limits`: limits in a TOML file, reloaded on change |
//! | `metrics` | no | counters and a decision-latency histogram per throttle through the `metrics` facade (see `throttle::metrics`) |
//!
//! The crate turns on only axum's `tokio` and `matched-path` features; your app chooses
//! the rest (`http1`, `http2`, `json`, ...).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod attribute;
pub mod backend;
mod client_ip;
mod clock;
mod connection;
mod context;
mod error;
mod extract;
pub mod headers;
pub mod identity;
pub mod inflight;
pub mod key;
mod layer;
#[cfg(feature = "limits-file")]
#[cfg_attr(docsrs, doc(cfg(feature = "limits-file")))]
pub mod limits;
mod log;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod outcome;
#[cfg(feature = "json")]
mod problem;
pub mod quota;
pub mod rate;
pub mod registry;
mod rejection;
mod rules;
pub mod shadow;
mod stack;
pub mod strategy;
pub mod throttles;
#[cfg(feature = "ws")]
#[cfg_attr(docsrs, doc(cfg(feature = "ws")))]
pub mod websocket;

#[doc(hidden)]
#[path = "private/mod.rs"]
pub mod __private;

// The root: the names an application spells most. Everything else has one path, in
// the module of its concept.
pub use connection::{AsConnection, Connection};
pub use context::Context;
pub use error::{ConfigError, Cost, ThrottleError};
pub use extract::RequestInfo;
pub use layer::ThrottleLayer;
pub use outcome::CountWhen;
pub use rate::value::Rate;
pub use rejection::Throttled;
pub use rules::Rule;
pub use stack::hit_all;
pub use throttles::builder::ThrottleBuilder;
pub use throttles::core::Admitted;
pub use throttles::http::HttpThrottle;
pub use throttles::options::OnError;
#[cfg(feature = "ws")]
#[cfg_attr(docsrs, doc(cfg(feature = "ws")))]
pub use throttles::websocket::WebSocketThrottle;

// Short paths inside the crate for names whose public path is a module's.
pub(crate) use clock::Clock;
pub(crate) use error::InvalidCost;
pub(crate) use headers::Headers;
pub(crate) use identity::{Identifier, Identity};
pub(crate) use strategy::StrategyStat;
pub(crate) use throttles::Call;

/// Rate-limits an axum handler: the throttle is hit before any other extractor runs,
/// and a static throttle is generated for direct calls.
///
/// ```
/// use axum::{Json, Router, routing::get};
/// use throttle::throttle;
///
/// #[throttle(uid = "api:data", rate = "100/min", headers = "always")]
/// async fn get_data() -> Json<Vec<u32>> {
///     Json(vec![1, 2, 3])
/// }
///
/// let app: Router = Router::new().route("/data", get(get_data));
/// ```
///
/// Over the limit, the request gets `429 Too Many Requests` with `Retry-After`, and the
/// handler (with every extractor after the throttle: path, query, body) never runs: a
/// throttled request with an invalid JSON body gets 429, not 400 or 422.
///
/// # Keys
///
/// Values are checked when the handler compiles wherever they can be: the rate string
/// (with the runtime's own grammar), the uid, the header policy, the strategy name and
/// integer ranges. Expressions (`backend = ...`, `identifier = ...`) are evaluated
/// once, when the throttle is built on first use.
///
/// | key | value | builder equivalent |
/// |---|---|---|
/// | `uid` (required) | string literal: letters, digits, `_-.:/`; unique in the process | [`HttpThrottle::builder(uid)`] |
/// | `rate` (required unless `rate_fn`) | `"100/min"`, `"5 per 10s"`, `"1000/1h30m"`, `"unlimited"`, or an expression of type `Rate` | `.rate(..)` |
/// | `rate_fn` | path to a `fn(&Connection<'_>, &Context) -> impl Future<Output = Rate> + Send + use<>` (see [`ThrottleBuilder::rate_fn`]) | `.rate_fn(..)` |
/// | `headers` | `"always"`, `"throttled"`, or a path to a `Headers` value (e.g. `throttle::headers::IETF_HEADERS`) | `.headers(..)` |
/// | `strategy` | `"fixed_window"`, `"sliding_window_counter"`, `"sliding_window_log"`, `"token_bucket"`, `"token_bucket_debt"`, `"leaky_bucket"`, `"leaky_bucket_queue"`, `"gcra"`, with optional parameters (`"token_bucket(burst = 15)"`), or a strategy value | `.strategy_name(..)` / `.strategy(..)` |
/// | `cost` | integer literal (0 to 2^53 - 1), an integer constant, or a path to a `fn(&Connection<'_>, &Context) -> impl Future<Output = u64> + Send + use<>` | `.cost(..)` / `.cost_fn(..)` |
/// | `backend` | expression of a `Backend` type, e.g. `app_backend()` | `.backend(..)` |
/// | `identifier` | expression of type `Identifier`, e.g. `by_api_key()` | `.identifier(..)` |
/// | `rules` | expression of an iterable of `Rule` (apply-if / bypass-if), e.g. `[health_bypass()]` | `.rules(..)` |
/// | `scope` | string literal: a separate bucket for this handler | `.scope(..)` |
/// | `on_error` | `"allow"`, `"throttle"`, `"raise"`, or an `OnError` value | `.on_error(..)` |
/// | `shadow` | `true`, `false`, or a `bool` expression: decide and count, never reject (see [`shadow`]) | `.shadow(..)` |
/// | `count` | `"all"`, `"failures"`, `"successes"`, or a `CountWhen` value: which responses count | `.count_when(..)` |
/// | `name` | identifier of the generated static | |
/// | `crate` | `"path"` of the `throttle` crate, when it is renamed | |
///
/// [`HttpThrottle::builder(uid)`]: https://docs.rs/throttle/latest/throttle/struct.HttpThrottle.html#method.builder
///
/// # Counting by outcome
///
/// With `count = "failures"` (or `"successes"`, or a [`CountWhen`]), the hit is decided
/// before the handler runs, as always, and given back once the handler's response is
/// known if that response does not count. The declared return type `T` becomes
/// [`attribute::Response`] (the output is made into a response before the handler
/// returns). A request a later extractor rejects never reaches the handler, so its hit
/// stays counted; a [`ThrottleLayer`] with [`count_when`](ThrottleLayer::count_when)
/// sees those responses too.
///
/// ```
/// use axum::http::{HeaderMap, StatusCode};
/// use throttle::throttle;
///
/// // 5 failed logins per 15 minutes per client; successful logins are not counted.
/// #[throttle(uid = "docs:login", rate = "5/15min", count = "failures")]
/// async fn login(headers: HeaderMap) -> StatusCode {
///     match headers.get("authorization") {
///         Some(token) if token == "Bearer correct-horse" => StatusCode::NO_CONTENT,
///         _ => StatusCode::UNAUTHORIZED,
///     }
/// }
/// ```
///
/// # The generated static
///
/// Each annotated handler gets a [`StaticThrottle`](attribute::StaticThrottle) named
/// after it: `get_data` gets `GET_DATA_THROTTLE` (or the identifier given as
/// `name = ...`), with the handler's visibility. Call it directly to see and spend the same quota as the handler:
///
/// ```
/// use axum::extract::Request;
/// use throttle::throttle;
///
/// #[throttle(uid = "docs:report", rate = "10/min")]
/// async fn report() -> &'static str {
///     "done"
/// }
///
/// async fn status(request: Request) -> String {
///     match REPORT_THROTTLE.stat(&request).await {
///         Ok(Some(stat)) => format!("{} reports left", stat.hits_remaining),
///         Ok(None) => "exempted".to_string(),
///         Err(error) => format!("unavailable: {error}"),
///     }
/// }
/// ```
///
/// The throttle is built and registered on first use (`REPORT_THROTTLE.get()` builds
/// it early, e.g. at startup). Two handlers with the same uid cannot both be built: the
/// second one's requests get a 500 and the log names both handlers and their source
/// locations; `get()` returns that error.
///
/// # Response headers
///
/// With `headers = ...` the resolved headers are attached to the handler's responses,
/// admitted (whatever the handler returns) and throttled alike; the handler's own
/// headers win on a name conflict. The declared return type `T` becomes
/// [`WithHeaders<T>`](attribute::WithHeaders), which implements `IntoResponse`.
/// Without `headers`, the return type is unchanged and a 429 carries `Retry-After`
/// only.
///
/// # The function
///
/// The handler must be a free `async fn`. Its attributes, doc comments, visibility,
/// generics and where clause are kept, and its body runs unchanged (`return` and `?`
/// behave as written). One extractor parameter is added in front, so a throttled
/// handler takes at most 15 of its own (axum's limit is 16).
///
/// # Stacked attributes
///
/// Stacked `#[throttle]` attributes are one limit stack with one guard: the top one
/// takes in the ones below it, checks each, and hits their throttles together, top
/// first. The first refusal answers the request, and on one store it consumes nothing
/// in the others (see [`hit_all`]). Each attribute keeps its own static (give each a
/// `name`), uid and `headers`; a higher attribute's headers win on a name conflict.
///
/// ```
/// use throttle::throttle;
///
/// #[throttle(uid = "docs:burst", rate = "10/s", headers = "always")]
/// #[throttle(uid = "docs:daily", rate = "1000/day", name = DAILY_THROTTLE)]
/// async fn search() -> &'static str {
///     "results"
/// }
/// ```
///
/// A macro cannot resolve paths, so the attributes taken in are those spelled
/// `#[throttle(..)]`, `#[throttle::throttle(..)]` or `#[::throttle::throttle(..)]`
/// (`#[my_throttle::throttle(..)]` with `crate = "my_throttle"` on the top one). Any
/// other attribute, such as an unrelated `#[other::throttle]`, stays on the function
/// untouched; one of ours under another spelling is a compile error that says so.
///
/// # Equivalent code without the attribute
///
/// ```
/// use axum::extract::{Request, State};
/// use axum::{Json, Router, routing::get};
/// use throttle::{HttpThrottle, ThrottleError, headers::DEFAULT_HEADERS_ALWAYS};
///
/// async fn get_data(
///     State(data): State<HttpThrottle>,
///     request: Request,
/// ) -> Result<(throttle::Admitted, Json<Vec<u32>>), ThrottleError> {
///     let admitted = data.hit(&request).await?;
///     Ok((admitted, Json(vec![1, 2, 3])))
/// }
///
/// let data = HttpThrottle::builder("docs:equivalent").rate("100/min").headers(&DEFAULT_HEADERS_ALWAYS).build()?;
/// let app: Router = Router::new().route("/data", get(get_data)).with_state(data);
/// # Ok::<(), throttle::ConfigError>(())
/// ```
///
/// The attribute differs in three ways: the hit happens in an extractor placed before
/// all the others, a configuration error is a logged 500 instead of an error at startup, and the
/// handler's signature keeps its own extractors.
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use throttle_macros::throttle;

/// A [`Rate`] from a rate string, checked at compile time and usable in `const`s.
///
/// ```
/// use throttle::{Rate, rate};
///
/// const API: Rate = rate!("100/min");
/// assert_eq!(API, Rate::per_minute(100));
/// assert_eq!(rate!("100 per 1h30m").period_ms(), 5_400_000);
/// assert!(rate!("unlimited").is_unlimited());
/// ```
///
/// A string the grammar refuses does not compile, and the error says why
/// (``unknown time unit `mins`; expected one of ...``). With a renamed dependency,
/// write `rate!("100/min", crate = "my_throttle")`.
///
/// [`Rate`]: https://docs.rs/throttle/latest/throttle/struct.Rate.html
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use throttle_macros::rate;
