//! [`WsConnection`]: an owned snapshot of a WebSocket's upgrade request, taken by the
//! handler as an extractor, plus the results of the message hits on it.

use super::WebSocketThrottle;
use super::last_hit::{HitLog, LastHit};
use crate::{AsConnection, Connection, RequestInfo};
use axum::extract::FromRequestParts;
use http::request::Parts;
use std::convert::Infallible;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// An owned snapshot of a WebSocket's upgrade request, plus the results of the message
/// hits on it.
///
/// Take it as an argument of the upgrade handler (it is an extractor, like
/// [`RequestInfo`]) and move it into the socket task. Message hits identify the client
/// from it as the handshake did: the peer address (axum's `ConnectInfo`), the headers,
/// URI, method and extensions of the upgrade request. Custom
/// [`Identifier`](crate::identity::Identifier)s see the same request.
///
/// ```
/// use axum::extract::ws::{WebSocket, WebSocketUpgrade};
/// use axum::response::Response;
/// use throttle::websocket::WsConnection;
///
/// async fn ws(conn: WsConnection, upgrade: WebSocketUpgrade) -> Response {
///     upgrade.on_upgrade(move |socket| chat(socket, conn))
/// }
///
/// async fn chat(socket: WebSocket, conn: WsConnection) {
///     // `messages.hit(&conn, &mut socket)` for each message, then `conn.is_throttled()`
///     # let _ = (socket, conn);
/// }
///
/// let app: axum::Router = axum::Router::new().route("/ws", axum::routing::get(ws));
/// ```
///
/// It implements [`AsConnection`], so any throttle (HTTP or WebSocket) can `stat` or
/// `check` it. It is `Send + Sync`; wrap it in an `Arc` to share it between a reader
/// and a writer task. Each one has a process-unique [`socket_id`](Self::socket_id).
pub struct WsConnection {
    request: RequestInfo,
    socket_id: String,
    hits: HitLog,
}

impl WsConnection {
    /// Snapshots an upgrade request held some other way (a `Request`, its `Parts`, a
    /// [`RequestInfo`]); the extractor does this for you.
    ///
    /// ```
    /// use axum::extract::{ConnectInfo, Request};
    /// use std::net::SocketAddr;
    /// use throttle::{AsConnection, websocket::WsConnection};
    ///
    /// let mut request = Request::new(axum::body::Body::empty());
    /// request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 5000))));
    /// let conn = WsConnection::new(&request);
    /// assert_eq!(conn.as_connection().peer_addr(), Some(SocketAddr::from(([10, 0, 0, 1], 5000))));
    /// assert!(!conn.is_throttled()); // no hit yet
    /// ```
    pub fn new(request: &(impl AsConnection + ?Sized)) -> Self {
        WsConnection::from(RequestInfo::snapshot(request.as_connection()))
    }

    /// Whether the **most recent** message hit on this connection, by any throttle, was
    /// not admitted (throttled, or failed); `false` before the first hit. Each hit
    /// overwrites it, as in the seed: after `a.hit(..)` rejects and `b.hit(..)` admits
    /// the same message, it reports `false`. With several throttles per message, ask
    /// each one ([`is_throttled_by`](Self::is_throttled_by)) or use the verdicts the
    /// hits return.
    ///
    /// ```
    /// # async fn demo(mut socket: axum::extract::ws::WebSocket, conn: throttle::websocket::WsConnection) {
    /// # let messages = throttle::WebSocketThrottle::builder("docs:ws:flag").rate("60/min").build().unwrap();
    /// messages.hit(&conn, &mut socket).await;
    /// if conn.is_throttled() {
    ///     println!("client must wait {} ms", conn.wait_ms());
    /// }
    /// # }
    /// ```
    pub fn is_throttled(&self) -> bool {
        !self.hits.last().is_admitted()
    }

    /// Whether the most recent message hit of `throttle` on this connection was not
    /// admitted; `false` before its first hit. Another throttle's hits do not change it.
    ///
    /// ```
    /// use axum::extract::ws::WebSocket;
    /// use throttle::{WebSocketThrottle, websocket::WsConnection};
    ///
    /// async fn handle(mut socket: WebSocket, conn: WsConnection, burst: WebSocketThrottle, hourly: WebSocketThrottle) {
    ///     while let Some(Ok(_message)) = socket.recv().await {
    ///         burst.hit(&conn, &mut socket).await;
    ///         hourly.hit(&conn, &mut socket).await;
    ///         if conn.is_throttled_by(&burst) || conn.is_throttled_by(&hourly) {
    ///             continue; // either limit refused this message
    ///         }
    ///         // process it
    ///     }
    /// }
    /// ```
    pub fn is_throttled_by(&self, throttle: &WebSocketThrottle) -> bool {
        self.hits.last_by(throttle.uid()).is_some_and(|hit| !hit.is_admitted())
    }

    /// The wait (ms) reported by the most recent message hit: 0 when it was admitted
    /// or failed.
    pub fn wait_ms(&self) -> u64 {
        self.hits.last().wait_ms()
    }

    /// This socket's id, unique among the sockets of the process (and, with a random
    /// per-process prefix, across processes): the suffix of
    /// [`per_socket`](crate::ThrottleBuilder::per_socket) scopes.
    pub fn socket_id(&self) -> &str {
        &self.socket_id
    }

    pub(crate) fn record(&self, uid: &str, hit: LastHit) {
        self.hits.record(uid, hit);
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WsConnection {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let request = RequestInfo::from_request_parts(parts, state).await?;
        Ok(WsConnection::from(request))
    }
}

impl From<RequestInfo> for WsConnection {
    fn from(request: RequestInfo) -> Self {
        WsConnection { request, socket_id: next_socket_id(), hits: HitLog::default() }
    }
}

/// Takes the parts without cloning them.
impl From<Parts> for WsConnection {
    fn from(parts: Parts) -> Self {
        WsConnection::from(RequestInfo::from(parts))
    }
}

impl AsConnection for WsConnection {
    fn as_connection(&self) -> Connection<'_> {
        self.request.as_connection()
    }
}

impl fmt::Debug for WsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsConnection")
            .field("socket_id", &self.socket_id)
            .field("peer_addr", &self.as_connection().peer_addr())
            .field("uri", self.as_connection().uri())
            .field("is_throttled", &self.is_throttled())
            .field("wait_ms", &self.wait_ms())
            .finish_non_exhaustive()
    }
}

fn next_socket_id() -> String {
    static PROCESS: LazyLock<u32> = LazyLock::new(|| RandomState::new().hash_one(std::process::id()) as u32);
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("ws-{:08x}-{}", *PROCESS, NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_ids_are_unique() {
        let a = WsConnection::new(&http::Request::new(()));
        let b = WsConnection::from(http::Request::new(()).into_parts().0);
        assert_ne!(a.socket_id(), b.socket_id());
        assert!(a.socket_id().starts_with("ws-"));
    }

    #[tokio::test]
    async fn the_extractor_snapshots_the_upgrade_request() {
        let request = http::Request::builder()
            .method("GET")
            .uri("/ws?room=1")
            .header("x-user", "alice")
            .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from(([10, 0, 0, 7], 4000))))
            .body(())
            .expect("valid request");
        let (mut parts, ()) = request.into_parts();
        let conn = WsConnection::from_request_parts(&mut parts, &()).await.expect("infallible");
        let seen = conn.as_connection();
        assert_eq!(seen.uri(), "/ws?room=1");
        assert_eq!(seen.headers()["x-user"], "alice");
        assert_eq!(seen.peer_addr(), Some(std::net::SocketAddr::from(([10, 0, 0, 7], 4000))));
        assert!(!conn.is_throttled());
        // The parts are left for the extractors after it (`WebSocketUpgrade`).
        assert_eq!(parts.headers["x-user"], "alice");
    }
}
