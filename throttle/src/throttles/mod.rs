//! The pieces around [`HttpThrottle`](crate::HttpThrottle) and its builder: the
//! per-call builders ([`Call`]), the error policy's action, the tower service of
//! [`ThrottleLayer`](crate::ThrottleLayer), and the types their signatures name.

pub(crate) mod builder;
mod call;
pub(crate) mod core;
pub(crate) mod http;
pub(crate) mod instruments;
pub(crate) mod limit;
mod operating;
pub(crate) mod options;
mod split;
mod top_denied;
mod wait;
#[cfg(feature = "ws")]
pub(crate) mod websocket;

pub use crate::error::InvalidCost;
pub use crate::layer::ThrottleService;
pub use crate::rejection::ThrottledHandler;
pub use builder::{BuildThrottle, IntoRate};
pub use call::{Call, CheckOp, CostedOp, HeadersOp, Hit, HitOp, StatOp};
pub use options::ErrorAction;
pub use top_denied::{DeniedClient, MAX_TOP_DENIED};

pub(crate) use builder::ThrottleBuilder;
pub(crate) use options::OnError;
