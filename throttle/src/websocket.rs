//! WebSocket throttling: the [`WebSocketThrottle`](crate::WebSocketThrottle) hits one
//! message at a time; this module holds what its calls take and return.

pub use crate::throttles::websocket::{MessageHit, MessageVerdict, WsConnection, default_frame};
