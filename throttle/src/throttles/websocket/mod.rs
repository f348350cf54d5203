//! [`WebSocketThrottle`]: throttling at the handshake and per message.
//!
//! - **Per message**, [`hit`](WebSocketThrottle::hit) never fails the handler: when the
//!   client is over the limit it sends the client a `rate_limit` text frame (waiting at
//!   most the [`frame_timeout`](ThrottleBuilder::frame_timeout)), records the result on
//!   the [`WsConnection`] (read it with [`WsConnection::is_throttled`]) and leaves the
//!   socket open. The handler decides what to do next: skip the message, or close the
//!   socket after repeated violations.
//! - **At the handshake**, the upgrade request is an ordinary HTTP request:
//!   [`hit_upgrade`](WebSocketThrottle::hit_upgrade) before `WebSocketUpgrade::on_upgrade`
//!   rejects the handshake with a 429 and `Retry-After`, and the socket is never opened.
//!
//! A [`WsConnection`] is an owned snapshot of the upgrade request (peer address,
//! headers, URI, method, extensions), taken by the handler as an extractor and moved
//! into the socket task. Per-message hits identify the client from it exactly as the
//! handshake did, so message buckets are per client (all of a client's sockets share
//! one), unless the throttle is built [`per_socket`](ThrottleBuilder::per_socket).
//!
//! Files: `connection.rs` (the snapshot and its extractor), `last_hit.rs` (what the
//! last hits on a connection were), `message.rs` (the per-message hit and its
//! verdict), `frame.rs` (the default `rate_limit` frame).

mod connection;
mod frame;
mod last_hit;
mod message;

pub use connection::WsConnection;
pub use frame::default_frame;
pub use message::{MessageHit, MessageVerdict};

use super::builder::{BuildThrottle, Sealed, ThrottleBuilder};
use super::call::{Call, CheckOp, HeadersOp, HitOp, StatOp};
use super::core::Core;
use crate::{AsConnection, HttpThrottle, Rate, Throttled};
use axum::extract::ws::Message;
use futures_util::Sink;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How long [`WebSocketThrottle::hit`] waits to hand the `rate_limit` frame to a
/// client by default.
const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(1);

/// Replaces the default frame; `None` from it sends nothing.
type MessageHandler = Arc<dyn Fn(&Throttled) -> Option<Message> + Send + Sync>;

/// The WebSocket-only options, set on the [`ThrottleBuilder`]. (`pub` because the
/// sealed builder trait names it; this module is private, so nobody else can.)
#[derive(Clone)]
pub struct MessageOptions {
    handler: Option<MessageHandler>,
    per_socket: bool,
    frame_timeout: Duration,
}

impl fmt::Debug for MessageOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageOptions")
            .field("message_handler", &self.handler.as_ref().map(|_| ".."))
            .field("per_socket", &self.per_socket)
            .field("frame_timeout", &self.frame_timeout)
            .finish()
    }
}

impl Default for MessageOptions {
    fn default() -> Self {
        MessageOptions { handler: None, per_socket: false, frame_timeout: DEFAULT_FRAME_TIMEOUT }
    }
}

/// A rate limit for the messages inside WebSocket connections, and for their
/// handshakes. Cheap to clone.
///
/// Built like [`HttpThrottle`] ([`WebSocketThrottle::builder`]), with three more
/// options on the builder: [`message_handler`](ThrottleBuilder::message_handler),
/// [`per_socket`](ThrottleBuilder::per_socket) and
/// [`frame_timeout`](ThrottleBuilder::frame_timeout).
///
/// The seed's pattern: a hit per received message, then
/// [`is_throttled`](WsConnection::is_throttled). The [`WsConnection`] extractor says who
/// the client is; the handshake can be throttled too, with
/// [`hit_upgrade`](Self::hit_upgrade):
///
/// ```
/// use axum::Router;
/// use axum::extract::State;
/// use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
/// use axum::response::Response;
/// use axum::routing::get;
/// use throttle::{ThrottleError, WebSocketThrottle, websocket::WsConnection};
///
/// #[derive(Clone)]
/// struct Throttles {
///     connects: WebSocketThrottle,
///     messages: WebSocketThrottle,
/// }
///
/// async fn ws(
///     State(throttles): State<Throttles>,
///     conn: WsConnection,
///     upgrade: WebSocketUpgrade,
/// ) -> Result<Response, ThrottleError> {
///     throttles.connects.hit_upgrade(&conn).await?; // 429 + Retry-After: the handshake is refused
///     Ok(upgrade.on_upgrade(move |socket| echo(socket, conn, throttles.messages)))
/// }
///
/// async fn echo(mut websocket: WebSocket, conn: WsConnection, messages: WebSocketThrottle) {
///     while let Some(Ok(Message::Text(message))) = websocket.recv().await {
///         messages.hit(&conn, &mut websocket).await; // over the limit: a `rate_limit` frame
///         if conn.is_throttled() {
///             let reason = "Rate limit exceeded".into();
///             let _ = websocket.send(Message::Close(Some(CloseFrame { code: close_code::POLICY, reason }))).await;
///             return;
///         }
///         if websocket.send(Message::text(format!("Echo: {message}"))).await.is_err() {
///             return;
///         }
///     }
/// }
///
/// let throttles = Throttles {
///     connects: WebSocketThrottle::builder("docs:ws:connect").rate("10/min").build()?,
///     messages: WebSocketThrottle::builder("docs:ws:messages").rate("60/min").build()?,
/// };
/// let app: Router = Router::new().route("/ws", get(ws)).with_state(throttles);
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct WebSocketThrottle {
    /// The same throttle seen as an HTTP one: the handshake, `check`, `stat`, headers.
    http: HttpThrottle,
    options: MessageOptions,
}

impl Sealed for WebSocketThrottle {
    type Options = MessageOptions;

    fn from_core(core: Arc<Core>, options: MessageOptions) -> Self {
        WebSocketThrottle { http: <HttpThrottle as Sealed>::from_core(core, ()), options }
    }
}
impl BuildThrottle for WebSocketThrottle {}

/// The WebSocket-only options.
impl ThrottleBuilder<WebSocketThrottle> {
    /// Replaces the default `rate_limit` frame sent by [`WebSocketThrottle::hit`]: `f`
    /// returns the message to send to a throttled client, or `None` to send nothing.
    /// [`default_frame`] builds the default one, so a handler can start from it.
    ///
    /// ```
    /// use axum::extract::ws::Message;
    /// use throttle::WebSocketThrottle;
    ///
    /// let chat = WebSocketThrottle::builder("docs:ws:handler")
    ///     .rate("5/s")
    ///     .message_handler(|throttled| Some(Message::text(format!("slow down: {} s", throttled.retry_after_secs()))))
    ///     .build()?;
    /// # let _ = chat;
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn message_handler(self, f: impl Fn(&Throttled) -> Option<Message> + Send + Sync + 'static) -> Self {
        self.kind_options(|options| options.handler = Some(Arc::new(f)))
    }

    /// Counts messages per socket instead of per client: each [`WsConnection`] gets
    /// its own bucket, so a client with two sockets has twice the budget. (The
    /// default: all sockets of one client share a bucket.)
    ///
    /// The socket's bucket is the scope `"{scope}/{socket id}"`, where `scope` is the
    /// hit's (or the throttle's) [`scope`](Self::scope), `"default"` without one. It
    /// applies to [`hit`](WebSocketThrottle::hit); to read such a bucket with
    /// [`stat`](WebSocketThrottle::stat), give the stat that scope:
    ///
    /// ```
    /// use throttle::{ThrottleError, WebSocketThrottle, websocket::WsConnection};
    ///
    /// async fn left_on_this_socket(typing: &WebSocketThrottle, conn: &WsConnection) -> Result<Option<u64>, ThrottleError> {
    ///     let stat = typing.stat(conn).scope(format!("default/{}", conn.socket_id())).await?;
    ///     Ok(stat.map(|stat| stat.hits_remaining))
    /// }
    ///
    /// let typing = WebSocketThrottle::builder("docs:ws:per-socket").rate("10/s").per_socket().build()?;
    /// # let _ = (typing, left_on_this_socket);
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn per_socket(self) -> Self {
        self.kind_options(|options| options.per_socket = true)
    }

    /// How long [`hit`](WebSocketThrottle::hit) waits to hand the `rate_limit` frame to
    /// the socket (default 1 s). A client that never reads fills its socket's buffers,
    /// and a send then waits until it reads; past this bound the frame is given up
    /// (and logged at debug level), the hit still counts as throttled, and the handler
    /// carries on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use throttle::WebSocketThrottle;
    ///
    /// let chat = WebSocketThrottle::builder("docs:ws:frame-timeout")
    ///     .rate("5/s")
    ///     .frame_timeout(Duration::from_millis(200))
    ///     .build()?;
    /// # let _ = chat;
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn frame_timeout(self, timeout: Duration) -> Self {
        self.kind_options(|options| options.frame_timeout = timeout)
    }

    /// A field appended to every `rate_limit` frame this throttle sends (in the order
    /// given; one named like a fixed field replaces its value in place). A hit adds
    /// its own with [`MessageHit::frame_extra`]. [`default_frame`] includes them, so a
    /// [`message_handler`](Self::message_handler) starting from it does too.
    ///
    /// ```
    /// use throttle::WebSocketThrottle;
    ///
    /// let chat = WebSocketThrottle::builder("docs:ws:extras")
    ///     .rate("5/s")
    ///     .frame_extra("docs", "https://example.com/limits")
    ///     .frame_extra("limit", 5)
    ///     .build()?;
    /// // {"type":"rate_limit","error":"Too many messages","retry_after":1,"docs":"https://example.com/limits","limit":5}
    /// # let _ = chat;
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn frame_extra(mut self, name: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.rejection.frame_extras.push((name.into(), value.into()));
        self
    }
}

impl WebSocketThrottle {
    /// Starts a throttle with this uid: unique in the process; letters, digits and
    /// `_-.:/`. It is the first part of every key the throttle stores. The options are
    /// those of [`HttpThrottle::builder`] plus the WebSocket ones; the throttled
    /// handler given to the builder shapes the handshake's 429.
    ///
    /// ```
    /// use throttle::WebSocketThrottle;
    /// let messages = WebSocketThrottle::builder("docs:ws:builder").rate("60/min").per_socket().build()?;
    /// assert_eq!(messages.uid(), "docs:ws:builder");
    /// assert!(messages.is_per_socket());
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    #[track_caller]
    pub fn builder(uid: impl Into<String>) -> ThrottleBuilder<WebSocketThrottle> {
        ThrottleBuilder::new(uid.into(), std::panic::Location::caller().to_string())
    }

    /// Records a hit for one **message** of the socket `conn` describes. It never fails
    /// the handler:
    ///
    /// - admitted: nothing is sent;
    /// - over the limit: the text frame
    ///   `{"type":"rate_limit","error":"Too many messages","retry_after":N}` is sent
    ///   through `socket` (N = the wait in whole seconds, rounded up; the throttle's and
    ///   the hit's [`frame_extra`](MessageHit::frame_extra) fields follow), or
    ///   what the [`message_handler`](ThrottleBuilder::message_handler) returns. The
    ///   send waits at most the [`frame_timeout`](ThrottleBuilder::frame_timeout); a
    ///   failed or late send (the client has gone, or does not read) is logged at debug
    ///   level and ignored. The socket stays open;
    /// - the result is recorded on `conn` before anything is sent:
    ///   [`is_throttled`](WsConnection::is_throttled) reports it until the next hit,
    ///   [`is_throttled_by`](WsConnection::is_throttled_by) until this throttle's next.
    ///
    /// `socket` is anything that sends axum [`Message`]s: the `WebSocket` itself, the
    /// sending half of `socket.split()`, or a channel sender feeding a writer task.
    /// Configure with `.cost(n)`, `.scope(..)`, `.context(ctx)` and
    /// `.frame_extra(name, value)`; the call resolves to a [`MessageVerdict`], which
    /// handlers may use instead of the flag.
    ///
    /// ```
    /// use axum::extract::ws::{Message, WebSocket};
    /// use futures_util::StreamExt;
    /// use throttle::{WebSocketThrottle, websocket::WsConnection};
    ///
    /// async fn chat(socket: WebSocket, conn: WsConnection, messages: WebSocketThrottle) {
    ///     let (mut sender, mut receiver) = socket.split();
    ///     while let Some(Ok(message)) = receiver.next().await {
    ///         let cost = if matches!(message, Message::Binary(_)) { 5 } else { 1 };
    ///         let verdict = messages.hit(&conn, &mut sender).cost(cost).frame_extra("room", "lobby").await;
    ///         if !verdict.is_admitted() {
    ///             continue;
    ///         }
    ///         // handle the message
    ///     }
    /// }
    /// ```
    pub fn hit<'a, S>(&'a self, conn: &'a WsConnection, socket: &'a mut S) -> MessageHit<'a, S>
    where
        S: Sink<Message> + Unpin + Send + ?Sized,
        S::Error: fmt::Display,
    {
        MessageHit::new(self, conn, socket)
    }

    /// Records a hit for the **handshake**: the upgrade request (a [`WsConnection`],
    /// `RequestInfo`, `Request` or `Parts`) is an ordinary HTTP request, so this is
    /// [`HttpThrottle::hit`]: it resolves to `Err(ThrottleError::Throttled)` over the
    /// limit, a 429 with `Retry-After` when returned from the handler, before
    /// anything is upgraded. Configure with `.cost(n)`, `.scope(..)` and `.context(ctx)`. It always
    /// counts in the client's bucket, also for a [`per_socket`](ThrottleBuilder::per_socket)
    /// throttle.
    ///
    /// ```
    /// use axum::extract::State;
    /// use axum::extract::ws::{WebSocket, WebSocketUpgrade};
    /// use axum::response::Response;
    /// use axum::{Router, routing::get};
    /// use throttle::{ThrottleError, WebSocketThrottle, websocket::WsConnection};
    ///
    /// async fn ws(
    ///     State(connects): State<WebSocketThrottle>,
    ///     conn: WsConnection,
    ///     upgrade: WebSocketUpgrade,
    /// ) -> Result<Response, ThrottleError> {
    ///     connects.hit_upgrade(&conn).await?; // over the limit: 429, never upgraded
    ///     Ok(upgrade.on_upgrade(move |socket| chat(socket, conn)))
    /// }
    /// # async fn chat(_: WebSocket, _: WsConnection) {}
    ///
    /// let connects = WebSocketThrottle::builder("docs:ws:upgrade").rate("10/min").build()?;
    /// let app: Router = Router::new().route("/ws", get(ws)).with_state(connects);
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn hit_upgrade<'a>(&'a self, request: &'a (impl AsConnection + ?Sized)) -> Call<'a, HitOp> {
        self.http.hit(request)
    }

    /// Whether a hit of the given cost (default: the throttle's) would be admitted
    /// now, in the client's bucket; consumes nothing (see [`HttpThrottle::check`]).
    pub fn check<'a>(&'a self, conn: &'a (impl AsConnection + ?Sized)) -> Call<'a, CheckOp> {
        self.http.check(conn)
    }

    /// The client's current standing, consuming nothing; `None` for an exempted
    /// client (see [`HttpThrottle::stat`]).
    ///
    /// ```
    /// # async fn demo(conn: throttle::websocket::WsConnection, messages: throttle::WebSocketThrottle) -> Result<(), throttle::ThrottleError> {
    /// if let Some(stat) = messages.stat(&conn).await? {
    ///     println!("{} messages left", stat.hits_remaining);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn stat<'a>(&'a self, conn: &'a (impl AsConnection + ?Sized)) -> Call<'a, StatOp> {
        self.http.stat(conn)
    }

    /// The throttle's headers resolved for this client now (see
    /// [`HttpThrottle::get_headers`]).
    pub fn get_headers<'a>(&'a self, conn: &'a (impl AsConnection + ?Sized)) -> Call<'a, HeadersOp> {
        self.http.get_headers(conn)
    }

    /// The uid.
    pub fn uid(&self) -> &str {
        self.http.uid()
    }

    /// The static rate, or `None` when the rate is a function.
    pub fn rate(&self) -> Option<Rate> {
        self.http.rate()
    }

    /// Replaces the rate from now on.
    pub fn set_rate(&self, rate: Rate) {
        self.http.set_rate(rate);
    }

    /// Whether hits are counted.
    pub fn is_enabled(&self) -> bool {
        self.http.is_enabled()
    }

    /// Turns counting on or off; a disabled throttle admits everything with no backend I/O.
    pub fn set_enabled(&self, enabled: bool) {
        self.http.set_enabled(enabled);
    }

    /// Whether the throttle counts messages per socket (see
    /// [`per_socket`](ThrottleBuilder::per_socket)).
    pub fn is_per_socket(&self) -> bool {
        self.options.per_socket
    }
}

/// The same throttle (same uid, options and buckets) as an [`HttpThrottle`], for APIs
/// that take one, such as a router layer on the upgrade route: the upgrade request is
/// an ordinary HTTP request. The WebSocket-only options do not carry over.
///
/// ```
/// use throttle::{HttpThrottle, WebSocketThrottle};
///
/// let connects = WebSocketThrottle::builder("docs:ws:as-http").rate("10/min").build()?;
/// let http: HttpThrottle = connects.clone().into();
/// assert_eq!(http.uid(), connects.uid());
/// # Ok::<(), throttle::ConfigError>(())
/// ```
impl From<WebSocketThrottle> for HttpThrottle {
    fn from(throttle: WebSocketThrottle) -> Self {
        throttle.http
    }
}

impl fmt::Debug for WebSocketThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketThrottle").field("throttle", &self.http).field("options", &self.options).finish()
    }
}
