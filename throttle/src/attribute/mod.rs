//! The items `#[throttle]` puts into your code.
//!
//! An annotated handler gets a static of type [`StaticThrottle`] (`GET_DATA_THROTTLE`
//! for `get_data`, or the `name = ...` given), which hands out [`StaticCall`]s; a
//! handler with `headers = ...` returns [`WithHeaders`] around its declared type.
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

mod static_call;
mod static_throttle;
pub(crate) mod with_headers;

pub use static_call::StaticCall;
pub use static_throttle::StaticThrottle;
pub use with_headers::WithHeaders;
