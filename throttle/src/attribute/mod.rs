//! The items `#[throttle]` puts into your code.
//!
//! An annotated handler gets a static of type [`StaticThrottle`] (`GET_DATA_THROTTLE`
//! for `get_data`, or the `name = ...` given), which hands out [`StaticCall`]s; a
//! handler with `headers = ...` returns [`WithHeaders`] around its declared type, and
//! one with `count = ...` returns a [`Response`].
//!
//! ```
//! use axum::{Router, routing::get};
//! use throttle::attribute::StaticThrottle;
//! use throttle::throttle;
//!
//! #[throttle(uid = "docs:attribute", rate = "10/min", headers = "always")]
//! async fn hello() -> &'static str {
//!     "hello"
//! }
//!
//! let app: Router = Router::new().route("/", get(hello));
//! let generated: &StaticThrottle = &HELLO_THROTTLE;
//! assert_eq!((generated.name(), generated.handler()), ("HELLO_THROTTLE", "hello"));
//! ```

pub(crate) mod guard_headers;
mod static_call;
mod static_throttle;
pub(crate) mod with_headers;

pub use static_call::StaticCall;
pub use static_throttle::StaticThrottle;
pub use with_headers::WithHeaders;

/// What a handler with `#[throttle(count = ...)]` returns: its output made into a
/// response, so the outcome is known (and hits that do not count are given back)
/// before the handler returns. The throttles' headers are added as with
/// [`WithHeaders`].
///
/// ```
/// use axum::http::StatusCode;
/// use throttle::throttle;
///
/// #[throttle(uid = "docs:attribute-count", rate = "5/15min", count = "failures")]
/// async fn login() -> StatusCode {
///     StatusCode::UNAUTHORIZED
/// }
///
/// let _: fn() -> _ = || login; // `login` now returns a `throttle::attribute::Response`
/// ```
pub type Response = axum::response::Response;
