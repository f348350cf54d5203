#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod backend;
mod clock;
mod connection;
mod context;
mod error;
mod extract;
pub mod headers;
mod identity;
mod key;
pub mod rate;
pub mod registry;
mod rejection;
pub mod strategy;
pub mod throttles;

pub use backend::{MemoryBackend, default_backend, set_default_backend};
pub use clock::{Clock, ManualClock};
pub use connection::{AsConnection, Connection};
pub use context::Context;
pub use error::{ConfigError, Cost, InvalidCost, ThrottleError};
pub use extract::RequestInfo;
pub use headers::{DEFAULT_HEADERS_ALWAYS, DEFAULT_HEADERS_THROTTLED, Header, Headers, IETF_HEADERS, When};
pub use identity::{ANONYMOUS, EXEMPTED, Identifier, Identity};
pub use rate::{ParseRateError, Rate};
pub use rejection::{Throttled, ThrottledHandler};
pub use strategy::StrategyStat;
pub use throttles::{Admitted, Call, ErrorAction, Hit, HttpThrottle, OnError, ThrottleBuilder};
