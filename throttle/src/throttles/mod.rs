//! Throttles: [`HttpThrottle`], its builder, and the per-call builders ([`Call`]).

mod builder;
mod call;
pub(crate) mod core;
mod http;
pub(crate) mod instruments;
pub(crate) mod limit;
mod operating;
pub(crate) mod options;
mod split;
mod top_denied;
#[cfg(feature = "ws")]
mod websocket;

pub use self::core::Admitted;
pub use builder::{BuildThrottle, IntoRate, ThrottleBuilder};
pub use call::{Call, CheckOp, CostedOp, HeadersOp, Hit, HitOp, StatOp};
pub use http::HttpThrottle;
pub use options::{ErrorAction, OnError};
pub use top_denied::{DeniedClient, MAX_TOP_DENIED};
#[cfg(feature = "ws")]
#[cfg_attr(docsrs, doc(cfg(feature = "ws")))]
pub use websocket::{MessageHit, MessageVerdict, WebSocketThrottle, WsConnection, default_frame};
