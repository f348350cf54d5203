//! The per-message hit ([`MessageHit`]) and its outcome ([`MessageVerdict`]).

use super::frame::default_frame;
use super::last_hit::LastHit;
use super::{WebSocketThrottle, WsConnection};
use crate::backend::BoxFuture;
use crate::throttles::core::Admitted;
use crate::{AsConnection, Context, Cost, InvalidCost, ThrottleError, Throttled};
use axum::extract::ws::Message;
use core::future::IntoFuture;
use futures_util::{Sink, SinkExt};
use std::borrow::Cow;
use std::fmt;

/// A pending [`hit`](WebSocketThrottle::hit): configure with [`cost`](Self::cost),
/// [`scope`](Self::scope), [`context`](Self::context) and
/// [`frame_extra`](Self::frame_extra), then `.await` it.
#[must_use = "a throttle call does nothing until it is awaited"]
pub struct MessageHit<'a, S: ?Sized> {
    throttle: &'a WebSocketThrottle,
    conn: &'a WsConnection,
    socket: &'a mut S,
    cost: Option<Result<Cost, InvalidCost>>,
    context: Option<Context>,
    scope: Option<Cow<'static, str>>,
    /// Fields for this hit's `rate_limit` frame, after the throttle's.
    #[cfg(feature = "json")]
    frame_extras: Vec<(String, serde_json::Value)>,
}

impl<'a, S: ?Sized> MessageHit<'a, S> {
    pub(super) fn new(throttle: &'a WebSocketThrottle, conn: &'a WsConnection, socket: &'a mut S) -> Self {
        MessageHit {
            throttle,
            conn,
            socket,
            cost: None,
            context: None,
            scope: None,
            #[cfg(feature = "json")]
            frame_extras: Vec::new(),
        }
    }

    /// The cost of this message instead of the throttle's default. 0 is a no-op (no
    /// backend I/O, admitted); a negative or too large cost makes the hit
    /// [`Failed`](MessageVerdict::Failed).
    pub fn cost<C: TryInto<Cost, Error = InvalidCost>>(mut self, cost: C) -> Self {
        self.cost = Some(cost.try_into());
        self
    }

    /// Your values for this hit, merged over the throttle's default context (see
    /// [`Call::context`](crate::Call::context)).
    pub fn context(mut self, context: Context) -> Self {
        self.context = Some(context);
        self
    }

    /// The bucket for this hit (see [`Call::scope`](crate::Call::scope)); a
    /// [`per_socket`](crate::ThrottleBuilder::per_socket) throttle counts in
    /// `"{scope}/{socket id}"`.
    pub fn scope(mut self, scope: impl Into<Cow<'static, str>>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// A field of this hit's `rate_limit` frame, after the throttle's own
    /// [`frame_extra`](crate::ThrottleBuilder::frame_extra) fields (one named like a
    /// fixed field replaces its value in place).
    ///
    /// ```
    /// # async fn demo(mut socket: axum::extract::ws::WebSocket, conn: throttle::websocket::WsConnection, messages: throttle::WebSocketThrottle) {
    /// let verdict = messages.hit(&conn, &mut socket).frame_extra("room", "lobby").await;
    /// // over the limit, the client got {"type":"rate_limit",...,"retry_after":N,"room":"lobby"}
    /// # let _ = verdict; }
    /// ```
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn frame_extra(mut self, name: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.frame_extras.push((name.into(), value.into()));
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
        #[cfg(feature = "json")]
        let MessageHit { throttle, conn, socket, cost, context, scope, frame_extras } = self;
        #[cfg(not(feature = "json"))]
        let MessageHit { throttle, conn, socket, cost, context, scope } = self;
        let context = message_context(throttle, conn, context, scope);
        Box::pin(async move {
            let result = throttle.http.core().hit(&conn.as_connection(), cost, context.as_ref(), false).await;
            // Recorded before the frame is sent: a handler cancelled mid-send still sees it.
            match result {
                Ok(admitted) => {
                    conn.record(throttle.uid(), LastHit::Admitted);
                    MessageVerdict::Admitted(admitted)
                }
                Err(ThrottleError::Throttled(throttled)) => {
                    conn.record(throttle.uid(), LastHit::Throttled(throttled.wait_ms));
                    #[cfg(feature = "json")]
                    let throttled = with_frame_extras(throttled, frame_extras);
                    let frame = match &throttle.options.handler {
                        Some(handler) => handler(&throttled),
                        None => Some(default_frame(&throttled)),
                    };
                    if let Some(frame) = frame {
                        send_frame(throttle, socket, frame).await;
                    }
                    MessageVerdict::Throttled(throttled)
                }
                Err(error) => {
                    conn.record(throttle.uid(), LastHit::Failed);
                    crate::log::event!(
                        warn,
                        "throttle {:?}: message hit failed, message not admitted: {error}",
                        throttle.uid()
                    );
                    MessageVerdict::Failed(error)
                }
            }
        })
    }
}

/// The rejection with the hit's own frame fields after the throttle's.
#[cfg(feature = "json")]
fn with_frame_extras(mut throttled: Box<Throttled>, extras: Vec<(String, serde_json::Value)>) -> Box<Throttled> {
    if !extras.is_empty() {
        std::sync::Arc::make_mut(&mut throttled.rejection).frame_extras.extend(extras);
    }
    throttled
}

/// The call's context with its scope; the socket's own scope when counting per socket.
fn message_context(
    throttle: &WebSocketThrottle,
    conn: &WsConnection,
    context: Option<Context>,
    scope: Option<Cow<'static, str>>,
) -> Option<Context> {
    if scope.is_none() && !throttle.options.per_socket {
        return context;
    }
    let mut context = context.unwrap_or_default();
    if let Some(scope) = scope {
        context.set_scope(scope);
    }
    if throttle.options.per_socket {
        let scope = format!("{}/{}", throttle.http.core().context.merged_with(&context).scope(), conn.socket_id());
        context.set_scope(scope.into());
    }
    Some(context)
}

/// Sends the frame, waiting at most the frame timeout: a client that never reads must
/// not hold the handler (its socket's buffers are full, so a send would wait for it).
async fn send_frame<S>(throttle: &WebSocketThrottle, socket: &mut S, frame: Message)
where
    S: Sink<Message> + Unpin + Send + ?Sized,
    S::Error: fmt::Display,
{
    let limit = throttle.options.frame_timeout;
    match tokio::time::timeout(limit, socket.send(frame)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            crate::log::event!(
                debug,
                "throttle {:?}: could not send the rate-limit frame (client gone?): {error}",
                throttle.uid()
            );
        }
        Err(_elapsed) => {
            crate::log::event!(
                debug,
                "throttle {:?}: rate-limit frame not sent within {limit:?} (client not reading?)",
                throttle.uid()
            );
        }
    }
}

impl<S: ?Sized> fmt::Debug for MessageHit<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageHit")
            .field("uid", &self.throttle.uid())
            .field("socket", &self.conn.socket_id())
            .field("cost", &self.cost)
            .field("scope", &self.scope)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// The outcome of a [`hit`](WebSocketThrottle::hit). The same result is recorded on
/// the [`WsConnection`], so handlers can ignore this value and ask
/// [`WsConnection::is_throttled`].
#[derive(Debug)]
#[non_exhaustive]
pub enum MessageVerdict {
    /// The message is admitted (or was not counted: disabled throttle, cost 0,
    /// unlimited rate, exempted client, or a backend failure let through by the error
    /// policy).
    Admitted(Admitted),
    /// The client is over the limit and was told so (the `rate_limit` frame, or what
    /// the message handler returned, unless the send failed or timed out).
    Throttled(Box<Throttled>),
    /// The hit could not be decided: an invalid cost, a cost above what the strategy
    /// can ever admit, or a backend error under
    /// [`OnError::Raise`](crate::OnError::Raise). Nothing was sent; the message counts
    /// as not admitted, so [`WsConnection::is_throttled`] reports `true`.
    Failed(ThrottleError),
}

impl MessageVerdict {
    /// Whether the message may be processed.
    ///
    /// ```
    /// # async fn demo(mut socket: axum::extract::ws::WebSocket, conn: throttle::websocket::WsConnection) {
    /// # let messages = throttle::WebSocketThrottle::builder("docs:ws:verdict").rate("60/min").build().unwrap();
    /// if messages.hit(&conn, &mut socket).await.is_admitted() {
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
