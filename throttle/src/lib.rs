//! Rate limiting for axum.
//!
//! Build an [`HttpThrottle`] once, keyed by a unique uid, and call it from handlers:
//!
//! ```
//! use axum::{Json, extract::Request};
//! use std::sync::LazyLock;
//! use throttle::{DEFAULT_HEADERS_ALWAYS, HttpThrottle, ThrottleError};
//!
//! static API: LazyLock<HttpThrottle> = LazyLock::new(|| {
//!     HttpThrottle::builder("api:items")
//!         .rate("100/min")
//!         .headers(&*DEFAULT_HEADERS_ALWAYS)
//!         .build()
//!         .expect("valid throttle")
//! });
//!
//! async fn list_items(request: Request) -> Result<impl axum::response::IntoResponse, ThrottleError> {
//!     let admitted = API.hit(&request).await?; // 429 + Retry-After when over the limit
//!     Ok((admitted, Json(["widget", "gizmo"]))) // X-RateLimit-Limit / -Remaining
//! }
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
//! - [`HttpThrottle`]: `hit`, `check`, `stat`, `get_headers`, with `.cost(n)` and
//!   `.context(ctx)`; [`WebSocketThrottle`] for handshakes and messages.
//! - [`ThrottleLayer`]: throttles for a whole router; [`hit_all`] for stacked limits.
//! - [`Identifier`], [`ClientIp`] and [`Rule`]: who is limited, and where.
//! - [`headers`]: header values, conditions, collections and presets.
//! - [`strategy`]: the eight algorithms; [`backend`]: where state lives
//!   ([`MemoryBackend`] by default, `RedisBackend` with the `redis` feature).
//! - [`registry`]: every live throttle by uid, with runtime switches.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod backend;
mod client_ip;
mod clock;
mod connection;
mod context;
mod error;
mod extract;
pub mod headers;
mod identity;
pub mod key;
mod layer;
pub mod rate;
pub mod registry;
mod rejection;
mod rules;
mod stack;
pub mod strategy;
pub mod throttles;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use backend::{MemoryBackend, default_backend, set_default_backend};
pub use client_ip::{ClientIp, IpRange};
pub use clock::{Clock, ManualClock};
pub use connection::{AsConnection, Connection};
pub use context::Context;
pub use error::{ConfigError, Cost, InvalidCost, ThrottleError};
pub use extract::RequestInfo;
pub use headers::{DEFAULT_HEADERS_ALWAYS, DEFAULT_HEADERS_THROTTLED, Header, Headers, IETF_HEADERS, When};
pub use identity::{ANONYMOUS, EXEMPTED, Identifier, Identity};
pub use layer::{ThrottleLayer, ThrottleService};
pub use rate::{ParseRateError, Rate};
pub use rejection::{Throttled, ThrottledHandler};
pub use rules::Rule;
pub use stack::hit_all;
pub use strategy::StrategyStat;
pub use throttles::{Admitted, Call, ErrorAction, Hit, HttpThrottle, OnError, ThrottleBuilder};
pub use throttles::{MessageVerdict, WebSocketThrottle, WsConnection, default_frame, is_throttled};

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use throttle_macros::{rate, throttle};
