//! [`WebSocketThrottle`]: throttling at the handshake and per message.
//!
//! - **At the handshake**, the upgrade request is an ordinary HTTP request:
//!   [`hit`](HttpThrottle::hit) on it before `WebSocketUpgrade::on_upgrade` rejects the
//!   handshake with a 429 and `Retry-After`, and the socket is never opened.
//! - **Per message**, [`WebSocketThrottle::hit_message`] never fails the handler: when
//!   the client is over the limit it sends the client a `rate_limit` text frame,
//!   records the result on the [`WsConnection`] (read it with [`is_throttled`]) and
//!   leaves the socket open. The handler decides what to do next: skip the message,
//!   or close the socket after repeated violations.
//!
//! A [`WsConnection`] is an owned snapshot of the upgrade request (peer address,
//! headers, URI, method, extensions), taken in the handler and moved into the socket
//! task. Per-message hits identify the client from it exactly as the handshake did, so
//! message buckets are per client (all of a client's sockets share one), unless the
//! throttle is made [`per_socket`](WebSocketThrottle::per_socket).

use super::builder::{BuildThrottle, Sealed, ThrottleBuilder};
use super::core::{Admitted, Core};
use crate::backend::BoxFuture;
use crate::{AsConnection, Connection, Context, Cost, HttpThrottle, InvalidCost, ThrottleError, Throttled};
use axum::extract::ws::Message;
use core::future::IntoFuture;
use futures_util::{Sink, SinkExt};
use http::{Extensions, HeaderMap, Method, Uri};
use serde_json::Value;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

/// Replaces the default `rate_limit` frame: returns the message to send to a client
/// that is over the limit, or `None` to send nothing.
pub type MessageHandler = Arc<dyn Fn(&Throttled) -> Option<Message> + Send + Sync>;

/// A rate limit for WebSocket connections and for the messages inside them. Cheap to
/// clone.
///
/// Built like [`HttpThrottle`](crate::HttpThrottle), with the same options
/// ([`WebSocketThrottle::builder`]). Two WebSocket-only options are set on the built
/// throttle: [`message_handler`](Self::message_handler) and
/// [`per_socket`](Self::per_socket).
///
/// Both levels in one handler: a hit on the upgrade request (a 429 before upgrading),
/// then a hit per message inside the socket.
///
/// ```
/// use axum::Router;
/// use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
/// use axum::response::Response;
/// use axum::routing::get;
/// use std::sync::LazyLock;
/// use throttle::{RequestInfo, ThrottleError, WebSocketThrottle, WsConnection, is_throttled};
///
/// static CONNECTS: LazyLock<WebSocketThrottle> =
///     LazyLock::new(|| WebSocketThrottle::builder("docs:ws:connect").rate("10/min").build().unwrap());
/// static MESSAGES: LazyLock<WebSocketThrottle> =
///     LazyLock::new(|| WebSocketThrottle::builder("docs:ws:messages").rate("60/min").build().unwrap());
///
/// async fn ws(info: RequestInfo, upgrade: WebSocketUpgrade) -> Result<Response, ThrottleError> {
///     CONNECTS.hit(&info).await?; // 429 + Retry-After: the handshake is refused
///     let conn = WsConnection::new(&info); // who the client is, for every message
///     Ok(upgrade.on_upgrade(move |socket| echo(socket, conn)))
/// }
///
/// async fn echo(mut socket: WebSocket, conn: WsConnection) {
///     while let Some(Ok(Message::Text(text))) = socket.recv().await {
///         MESSAGES.hit_message(&conn, &mut socket).await; // sends a `rate_limit` frame when over
///         if is_throttled(&conn) {
///             continue; // the socket stays open; skip this message
///         }
///         if socket.send(Message::text(format!("Echo: {text}"))).await.is_err() {
///             return;
///         }
///     }
/// }
///
/// let app: Router = Router::new().route("/ws", get(ws));
/// ```
#[derive(Clone)]
pub struct WebSocketThrottle {
    /// The throttle of the upgrade request; `Deref` exposes its whole API.
    http: HttpThrottle,
    handler: Option<MessageHandler>,
    per_socket: bool,
}

impl Sealed for WebSocketThrottle {
    fn from_core(core: Arc<Core>) -> Self {
        WebSocketThrottle { http: <HttpThrottle as Sealed>::from_core(core), handler: None, per_socket: false }
    }
}
impl BuildThrottle for WebSocketThrottle {}

impl WebSocketThrottle {
    /// Starts a throttle with this uid: unique in the process; letters, digits and
    /// `_-.:/`. It is the first part of every key the throttle stores. The options are
    /// those of [`HttpThrottle::builder`](crate::HttpThrottle::builder); the throttled
    /// handler given to the builder shapes the handshake's 429.
    ///
    /// ```
    /// use throttle::WebSocketThrottle;
    /// let messages = WebSocketThrottle::builder("docs:ws:builder").rate("60/min").build().unwrap();
    /// assert_eq!(messages.uid(), "docs:ws:builder");
    /// ```
    #[track_caller]
    pub fn builder(uid: impl Into<String>) -> ThrottleBuilder<WebSocketThrottle> {
        ThrottleBuilder::new(uid.into(), std::panic::Location::caller().to_string())
    }

    /// Replaces the default `rate_limit` frame sent by
    /// [`hit_message`](Self::hit_message): `f` returns the message to send to a
    /// throttled client, or `None` to send nothing. [`default_frame`] builds the
    /// default one, so a handler can start from it.
    ///
    /// Applies to this value and the clones made from it afterwards.
    ///
    /// ```
    /// use axum::extract::ws::Message;
    /// use throttle::WebSocketThrottle;
    ///
    /// let chat = WebSocketThrottle::builder("docs:ws:handler")
    ///     .rate("5/s")
    ///     .build()
    ///     .unwrap()
    ///     .message_handler(|throttled| {
    ///         Some(Message::text(format!("slow down: {} s", throttled.retry_after_secs())))
    ///     });
    /// # let _ = chat;
    /// ```
    #[must_use]
    pub fn message_handler(mut self, f: impl Fn(&Throttled) -> Option<Message> + Send + Sync + 'static) -> Self {
        self.handler = Some(Arc::new(f));
        self
    }

    /// Counts messages per socket instead of per client: each [`WsConnection`] gets
    /// its own bucket, so a client with two sockets has twice the budget. (The
    /// default: all sockets of one client share a bucket.)
    ///
    /// The socket's bucket is the scope `"{scope}/{socket id}"`, where `scope` is the
    /// call's (or the default context's) `scope`, `"default"` without one. It applies
    /// to [`hit_message`](Self::hit_message); to read such a bucket with
    /// [`stat`](HttpThrottle::stat), pass that scope in the context:
    ///
    /// ```
    /// # async fn demo(request: axum::extract::Request) -> Result<(), throttle::ThrottleError> {
    /// use throttle::{Context, WebSocketThrottle, WsConnection};
    ///
    /// let typing = WebSocketThrottle::builder("docs:ws:per-socket").rate("10/s").build().unwrap().per_socket();
    /// let conn = WsConnection::new(&request);
    /// let scope = Context::new().with("scope", format!("default/{}", conn.socket_id()));
    /// let stat = typing.stat(&conn).context(scope).await?;
    /// # let _ = stat; Ok(()) }
    /// ```
    #[must_use]
    pub fn per_socket(mut self) -> Self {
        self.per_socket = true;
        self
    }

    /// Records a hit for one **message** inside an accepted socket. It never fails the
    /// handler:
    ///
    /// - admitted: nothing is sent;
    /// - over the limit: the text frame
    ///   `{"type":"rate_limit","error":"Too many messages","retry_after":N}` is sent
    ///   through `sink` (N = the wait in whole seconds, rounded up; the entries of the
    ///   context's `extras` object are merged after, replacing same-named fields), or
    ///   what the [`message_handler`](Self::message_handler) returns. A failed send
    ///   (the client has gone) is logged and ignored. The socket stays open;
    /// - the result is recorded on `conn`: [`is_throttled`] reports this hit until the
    ///   next one.
    ///
    /// `sink` is anything that sends axum [`Message`]s: the `WebSocket` itself, the
    /// sending half of `socket.split()`, or a channel sender feeding a writer task.
    /// Configure with `.cost(n)` and `.context(ctx)`; the call resolves to a
    /// [`MessageVerdict`], which most handlers ignore in favour of [`is_throttled`].
    ///
    /// ```
    /// use axum::extract::ws::{Message, WebSocket};
    /// use futures_util::StreamExt;
    /// use throttle::{Context, WebSocketThrottle, WsConnection};
    ///
    /// async fn chat(socket: WebSocket, conn: WsConnection, messages: WebSocketThrottle) {
    ///     let (mut sender, mut receiver) = socket.split();
    ///     while let Some(Ok(message)) = receiver.next().await {
    ///         let cost = if matches!(message, Message::Binary(_)) { 5 } else { 1 };
    ///         let extras = Context::new().with("extras", serde_json::json!({ "room": "lobby" }));
    ///         let verdict = messages.hit_message(&conn, &mut sender).cost(cost).context(extras).await;
    ///         if !verdict.is_admitted() {
    ///             continue;
    ///         }
    ///         // handle the message
    ///     }
    /// }
    /// ```
    pub fn hit_message<'a, S>(&'a self, conn: &'a WsConnection, sink: &'a mut S) -> MessageHit<'a, S>
    where
        S: Sink<Message> + Unpin + Send + ?Sized,
        S::Error: fmt::Display,
    {
        MessageHit { throttle: self, conn, sink, cost: None, context: None }
    }

    /// Whether the throttle counts messages per socket (see [`per_socket`](Self::per_socket)).
    pub fn is_per_socket(&self) -> bool {
        self.per_socket
    }

    /// The call's context, with the socket's scope when counting per socket.
    fn message_context(&self, conn: &WsConnection, call: Option<Context>) -> Option<Context> {
        if !self.per_socket {
            return call;
        }
        let mut call = call.unwrap_or_default();
        let scope = format!("{}/{}", self.http.core().context.merged_with(&call).scope(), conn.socket_id);
        call.insert("scope", scope);
        Some(call)
    }
}

/// The same throttle (same uid, options and buckets) as an [`HttpThrottle`], for APIs
/// that take one, such as a router layer on the upgrade route: the upgrade request is
/// an ordinary HTTP request. The WebSocket-only options do not carry over.
///
/// ```
/// use throttle::{HttpThrottle, WebSocketThrottle};
///
/// let connects = WebSocketThrottle::builder("docs:ws:as-http").rate("10/min").build().unwrap();
/// let http: HttpThrottle = connects.clone().into();
/// assert_eq!(http.uid(), connects.uid());
/// ```
impl From<WebSocketThrottle> for HttpThrottle {
    fn from(throttle: WebSocketThrottle) -> Self {
        throttle.http
    }
}

/// A `WebSocketThrottle` is the [`HttpThrottle`] of the upgrade request plus the
/// per-message API: `hit` (on the handshake), `check`, `stat`, `get_headers`, `uid`,
/// `rate`, `set_rate`, `is_enabled` and `set_enabled` are the `HttpThrottle`'s.
impl Deref for WebSocketThrottle {
    type Target = HttpThrottle;

    fn deref(&self) -> &HttpThrottle {
        &self.http
    }
}

impl fmt::Debug for WebSocketThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketThrottle")
            .field("throttle", &self.http)
            .field("message_handler", &self.handler.as_ref().map(|_| ".."))
            .field("per_socket", &self.per_socket)
            .finish()
    }
}

/// A pending [`hit_message`](WebSocketThrottle::hit_message): configure with
/// [`cost`](Self::cost) and [`context`](Self::context), then `.await` it.
#[must_use = "a throttle call does nothing until it is awaited"]
pub struct MessageHit<'a, S: ?Sized> {
    throttle: &'a WebSocketThrottle,
    conn: &'a WsConnection,
    sink: &'a mut S,
    cost: Option<Result<Cost, InvalidCost>>,
    context: Option<Context>,
}

impl<S: ?Sized> MessageHit<'_, S> {
    /// The cost of this message instead of the throttle's default. 0 is a no-op (no
    /// backend I/O, admitted); a negative or too large cost makes the hit
    /// [`Failed`](MessageVerdict::Failed).
    pub fn cost<C: TryInto<Cost, Error = InvalidCost>>(mut self, cost: C) -> Self {
        self.cost = Some(cost.try_into());
        self
    }

    /// Context for this hit, merged over the throttle's default context (the call
    /// wins per key). `scope` selects a separate bucket; `extras` (an object) is
    /// merged into the `rate_limit` frame.
    pub fn context(mut self, context: Context) -> Self {
        self.context = Some(context);
        self
    }
}

impl<'a, S> IntoFuture for MessageHit<'a, S>
where
    S: Sink<Message> + Unpin + Send + ?Sized,
    S::Error: fmt::Display,
{
    type Output = MessageVerdict;
    type IntoFuture = BoxFuture<'a, MessageVerdict>;

    fn into_future(self) -> Self::IntoFuture {
        let MessageHit { throttle, conn, sink, cost, context } = self;
        Box::pin(async move {
            let context = throttle.message_context(conn, context);
            let result = throttle.http.core().hit(&conn.as_connection(), cost, context.as_ref()).await;
            match result {
                Ok(admitted) => {
                    conn.record(LastHit::Admitted);
                    MessageVerdict::Admitted(admitted)
                }
                Err(ThrottleError::Throttled(throttled)) => {
                    conn.record(LastHit::Throttled(throttled.wait_ms));
                    let frame = match &throttle.handler {
                        Some(handler) => handler(&throttled),
                        None => Some(default_frame(&throttled)),
                    };
                    if let Some(frame) = frame {
                        if let Err(error) = sink.send(frame).await {
                            tracing::debug!(
                                "throttle {:?}: could not send the rate-limit frame (client gone?): {error}",
                                throttle.uid()
                            );
                        }
                    }
                    MessageVerdict::Throttled(throttled)
                }
                Err(error) => {
                    conn.record(LastHit::Failed);
                    tracing::warn!("throttle {:?}: message hit failed, message not admitted: {error}", throttle.uid());
                    MessageVerdict::Failed(error)
                }
            }
        })
    }
}

impl<S: ?Sized> fmt::Debug for MessageHit<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageHit")
            .field("uid", &self.throttle.uid())
            .field("socket", &self.conn.socket_id)
            .field("cost", &self.cost)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// The outcome of a [`hit_message`](WebSocketThrottle::hit_message). The same result
/// is recorded on the [`WsConnection`], so handlers can ignore this value and call
/// [`is_throttled`].
#[derive(Debug)]
#[non_exhaustive]
pub enum MessageVerdict {
    /// The message is admitted (or was not counted: disabled throttle, cost 0,
    /// unlimited rate, exempted client, or a backend failure let through by the error
    /// policy).
    Admitted(Admitted),
    /// The client is over the limit and was told so (the `rate_limit` frame, or what
    /// the message handler returned).
    Throttled(Box<Throttled>),
    /// The hit could not be decided: an invalid cost, a cost above what the strategy
    /// can ever admit, or a backend error under
    /// [`OnError::Raise`](crate::OnError::Raise). Nothing was sent; the message counts
    /// as not admitted, so [`is_throttled`] reports `true`.
    Failed(ThrottleError),
}

impl MessageVerdict {
    /// Whether the message may be processed.
    ///
    /// ```
    /// # async fn demo(mut socket: axum::extract::ws::WebSocket, conn: throttle::WsConnection) {
    /// # let messages = throttle::WebSocketThrottle::builder("docs:ws:verdict").rate("60/min").build().unwrap();
    /// if messages.hit_message(&conn, &mut socket).await.is_admitted() {
    ///     // process it
    /// }
    /// # }
    /// ```
    pub fn is_admitted(&self) -> bool {
        matches!(self, MessageVerdict::Admitted(_))
    }

    /// Milliseconds until the same hit would be admitted; 0 unless throttled.
    pub fn wait_ms(&self) -> u64 {
        match self {
            MessageVerdict::Throttled(throttled) => throttled.wait_ms,
            _ => 0,
        }
    }
}

/// The default `rate_limit` frame for a rejected message hit:
/// `{"type":"rate_limit","error":"Too many messages","retry_after":N}`, where N is
/// the wait in whole seconds rounded up, with the entries of the context's `extras`
/// object appended in the object's key order (an entry named like a fixed field
/// replaces its value in place). An `extras` that is not an object is ignored.
///
/// A [`message_handler`](WebSocketThrottle::message_handler) can start from it.
///
/// ```
/// use axum::extract::ws::Message;
/// use throttle::{Throttled, default_frame};
///
/// fn frame_with_hint(throttled: &Throttled) -> Option<Message> {
///     let Message::Text(json) = default_frame(throttled) else { return None };
///     Some(Message::text(json.as_str().replace("Too many messages", "Too many messages, slow down")))
/// }
/// # let _ = frame_with_hint;
/// ```
pub fn default_frame(throttled: &Throttled) -> Message {
    let seconds = throttled.retry_after_secs();
    let mut fields: Vec<(String, Value)> = vec![
        ("type".into(), Value::from("rate_limit")),
        ("error".into(), Value::from("Too many messages")),
        ("retry_after".into(), Value::from(seconds)),
    ];
    if let Some(Value::Object(extras)) = throttled.context.get("extras") {
        for (name, value) in extras {
            match fields.iter_mut().find(|(field, _)| field == name) {
                Some(field) => field.1 = value.clone(),
                None => fields.push((name.clone(), value.clone())),
            }
        }
    }
    let mut json = String::from("{");
    for (i, (name, value)) in fields.into_iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&Value::String(name).to_string());
        json.push(':');
        json.push_str(&value.to_string());
    }
    json.push('}');
    Message::text(json)
}

/// The last message hit on a [`WsConnection`], packed in one `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LastHit {
    Admitted,
    Throttled(u64),
    Failed,
}

const ADMITTED: u64 = 0;
const FAILED: u64 = u64::MAX;

/// An owned snapshot of a WebSocket's upgrade request, plus the result of the last
/// message hit on it.
///
/// Take it in the upgrade handler (from the `Request`, its `Parts`, or a
/// [`RequestInfo`](crate::RequestInfo)) and move it into the socket task. Message hits
/// identify the client from it as the handshake did: the peer address (axum's
/// `ConnectInfo`), the headers, URI, method and extensions of the upgrade request.
/// Custom [`Identifier`](crate::Identifier)s see the same request.
///
/// It implements [`AsConnection`], so any throttle (HTTP or WebSocket) can `stat` or
/// `check` it. It is `Send + Sync`; wrap it in an `Arc` to share it between a
/// reader and a writer task. Each one has a process-unique [`socket_id`](Self::socket_id).
///
/// ```
/// use axum::extract::ConnectInfo;
/// use axum::extract::Request;
/// use std::net::SocketAddr;
/// use throttle::{AsConnection, WsConnection};
///
/// let mut request = Request::new(axum::body::Body::empty());
/// request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 5000))));
/// let conn = WsConnection::new(&request);
/// assert_eq!(conn.as_connection().peer_addr(), Some(SocketAddr::from(([10, 0, 0, 1], 5000))));
/// assert!(!conn.is_throttled()); // no hit yet
/// ```
pub struct WsConnection {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
    socket_id: String,
    /// [`ADMITTED`], [`FAILED`], or the wait of a throttled hit.
    last: AtomicU64,
}

impl WsConnection {
    /// Snapshots the upgrade request.
    pub fn new(request: &(impl AsConnection + ?Sized)) -> Self {
        let conn = request.as_connection();
        WsConnection {
            method: conn.method().clone(),
            uri: conn.uri().clone(),
            headers: conn.headers().clone(),
            extensions: conn.extensions().clone(),
            socket_id: next_socket_id(),
            last: AtomicU64::new(ADMITTED),
        }
    }

    /// Whether the last message hit on this connection, by any throttle, was not
    /// admitted (throttled, or failed). `false` before the first hit. Same as
    /// [`is_throttled`].
    pub fn is_throttled(&self) -> bool {
        self.last.load(Ordering::Acquire) != ADMITTED
    }

    /// The wait (ms) reported by the last message hit: 0 when it was admitted or
    /// failed.
    ///
    /// ```
    /// # async fn demo(mut socket: axum::extract::ws::WebSocket, conn: throttle::WsConnection) {
    /// # let messages = throttle::WebSocketThrottle::builder("docs:ws:wait").rate("60/min").build().unwrap();
    /// messages.hit_message(&conn, &mut socket).await;
    /// if conn.is_throttled() {
    ///     println!("client must wait {} ms", conn.wait_ms());
    /// }
    /// # }
    /// ```
    pub fn wait_ms(&self) -> u64 {
        match self.last.load(Ordering::Acquire) {
            FAILED => 0,
            wait => wait,
        }
    }

    /// This socket's id, unique among the sockets of the process (and, with a random
    /// per-process prefix, across processes): the suffix of
    /// [`per_socket`](WebSocketThrottle::per_socket) scopes.
    pub fn socket_id(&self) -> &str {
        &self.socket_id
    }

    fn record(&self, hit: LastHit) {
        let packed = match hit {
            LastHit::Admitted => ADMITTED,
            // A throttled hit always reads as throttled, whatever its wait.
            LastHit::Throttled(wait) => wait.clamp(1, FAILED - 1),
            LastHit::Failed => FAILED,
        };
        self.last.store(packed, Ordering::Release);
    }
}

impl AsConnection for WsConnection {
    fn as_connection(&self) -> Connection<'_> {
        Connection::new(&self.method, &self.uri, &self.headers, &self.extensions)
    }
}

impl From<http::request::Parts> for WsConnection {
    /// Takes the parts without cloning them.
    fn from(parts: http::request::Parts) -> Self {
        WsConnection {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            extensions: parts.extensions,
            socket_id: next_socket_id(),
            last: AtomicU64::new(ADMITTED),
        }
    }
}

impl fmt::Debug for WsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsConnection")
            .field("socket_id", &self.socket_id)
            .field("peer_addr", &self.as_connection().peer_addr())
            .field("uri", &self.uri)
            .field("is_throttled", &self.is_throttled())
            .field("wait_ms", &self.wait_ms())
            .finish_non_exhaustive()
    }
}

/// Whether the last message hit on `conn` (by any throttle) was not admitted: the
/// client was throttled (and told so), or the hit failed. It reflects only the most
/// recent [`hit_message`](WebSocketThrottle::hit_message) on that connection.
///
/// ```
/// use axum::extract::ws::{Message, WebSocket};
/// use throttle::{WebSocketThrottle, WsConnection, is_throttled};
///
/// async fn handle(mut socket: WebSocket, conn: WsConnection, messages: WebSocketThrottle) {
///     let mut strikes = 0;
///     while let Some(Ok(_message)) = socket.recv().await {
///         messages.hit_message(&conn, &mut socket).await;
///         if is_throttled(&conn) {
///             strikes += 1;
///             if strikes >= 3 {
///                 let _ = socket.send(Message::Close(None)).await;
///                 return;
///             }
///             continue;
///         }
///         strikes = 0;
///     }
/// }
/// ```
pub fn is_throttled(conn: &WsConnection) -> bool {
    conn.is_throttled()
}

fn next_socket_id() -> String {
    static PROCESS: LazyLock<u32> = LazyLock::new(|| RandomState::new().hash_one(std::process::id()) as u32);
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("ws-{:08x}-{}", *PROCESS, NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttled(wait_ms: u64, context: Context) -> Throttled {
        Throttled {
            uid: "t".into(),
            wait_ms,
            rate: crate::Rate::per_second(1),
            headers: HeaderMap::new(),
            context,
            handler: None,
        }
    }

    fn text(message: Message) -> String {
        match message {
            Message::Text(text) => text.as_str().to_string(),
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn the_default_frame_is_exact() {
        let frame = text(default_frame(&throttled(49_001, Context::new())));
        assert_eq!(frame, r#"{"type":"rate_limit","error":"Too many messages","retry_after":50}"#);
        let frame = text(default_frame(&throttled(1, Context::new())));
        assert_eq!(frame, r#"{"type":"rate_limit","error":"Too many messages","retry_after":1}"#);
    }

    #[test]
    fn extras_merge_after_and_replace_in_place() {
        let extras = serde_json::json!({ "foo": "bar", "error": "slow \"down\"", "n": [1, 2] });
        let frame = text(default_frame(&throttled(2_000, Context::new().with("extras", extras))));
        assert_eq!(frame, r#"{"type":"rate_limit","error":"slow \"down\"","retry_after":2,"foo":"bar","n":[1,2]}"#);
        let ignored = text(default_frame(&throttled(2_000, Context::new().with("extras", "not an object"))));
        assert_eq!(ignored, r#"{"type":"rate_limit","error":"Too many messages","retry_after":2}"#);
    }

    #[test]
    fn the_last_hit_is_packed_faithfully() {
        let conn = WsConnection::new(&http::Request::new(()));
        assert!(!conn.is_throttled());
        conn.record(LastHit::Throttled(0));
        assert!(conn.is_throttled());
        assert_eq!(conn.wait_ms(), 1);
        conn.record(LastHit::Throttled(u64::MAX));
        assert!(conn.is_throttled());
        conn.record(LastHit::Failed);
        assert!(conn.is_throttled());
        assert_eq!(conn.wait_ms(), 0);
        conn.record(LastHit::Admitted);
        assert!(!is_throttled(&conn));
    }

    #[test]
    fn socket_ids_are_unique() {
        let a = WsConnection::new(&http::Request::new(()));
        let b = WsConnection::from(http::Request::new(()).into_parts().0);
        assert_ne!(a.socket_id(), b.socket_id());
        assert!(a.socket_id().starts_with("ws-"));
    }
}
