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
use std::fmt;

/// A pending [`hit`](WebSocketThrottle::hit): configure with [`cost`](Self::cost) and
/// [`context`](Self::context), then `.await` it.
#[must_use = "a throttle call does nothing until it is awaited"]
pub struct MessageHit<'a, S: ?Sized> {
    throttle: &'a WebSocketThrottle,
    conn: &'a WsConnection,
    socket: &'a mut S,
    cost: Option<Result<Cost, InvalidCost>>,
    context: Option<Context>,
}

impl<'a, S: ?Sized> MessageHit<'a, S> {
    pub(super) fn new(throttle: &'a WebSocketThrottle, conn: &'a WsConnection, socket: &'a mut S) -> Self {
        MessageHit { throttle, conn, socket, cost: None, context: None }
    }

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
        let MessageHit { throttle, conn, socket, cost, context } = self;
        Box::pin(async move {
            let context = message_context(throttle, conn, context);
            let result = throttle.http.core().hit(&conn.as_connection(), cost, context.as_ref()).await;
            // Recorded before the frame is sent: a handler cancelled mid-send still sees it.
            match result {
                Ok(admitted) => {
                    conn.record(throttle.uid(), LastHit::Admitted);
                    MessageVerdict::Admitted(admitted)
                }
                Err(ThrottleError::Throttled(throttled)) => {
                    conn.record(throttle.uid(), LastHit::Throttled(throttled.wait_ms));
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

/// The call's context, with the socket's scope when counting per socket.
fn message_context(throttle: &WebSocketThrottle, conn: &WsConnection, call: Option<Context>) -> Option<Context> {
    if !throttle.options.per_socket {
        return call;
    }
    let mut call = call.unwrap_or_default();
    let scope = format!("{}/{}", throttle.http.core().context.merged_with(&call).scope(), conn.socket_id());
    call.insert("scope", scope);
    Some(call)
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
