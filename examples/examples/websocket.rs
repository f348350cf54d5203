//! A WebSocket echo server throttled at both levels: the handshake (10 connections per
//! minute per client, refused with a 429 before upgrading) and every message (5 per
//! 10 seconds per client, across all of its sockets). A throttled message gets a
//! `rate_limit` frame and the socket stays open; after 3 throttled messages in a row the
//! server closes the socket with code 1008 (policy violation).
//!
//! ```text
//! cargo run --example websocket           # serves on 127.0.0.1:3002 (PORT=... to change)
//! websocat ws://127.0.0.1:3002/ws         # type lines: "Echo: ..." then
//!                                         # {"type":"rate_limit","error":"Too many messages","retry_after":N}
//! ```
//!
//! The reference's seed, translated: a hit per received message, then `is_throttled`
//! (`ws_throttle.hit(&conn, &mut websocket)`, `conn.is_throttled()`).

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use throttle::backend::Backend;
use throttle::{ConfigError, ThrottleError, WebSocketThrottle, websocket::WsConnection};

/// Throttled messages in a row before the server closes the socket.
const STRIKES: u32 = 3;

/// The two limits of the echo route.
#[derive(Clone)]
struct Limits {
    /// Handshakes per client.
    connects: WebSocketThrottle,
    /// Messages per client, whichever socket they arrive on.
    messages: WebSocketThrottle,
}

impl Limits {
    fn new(backend: Arc<dyn Backend>) -> Result<Self, ConfigError> {
        Ok(Limits {
            connects: WebSocketThrottle::builder("websocket:connects")
                .rate("10/min")
                .shared_backend(backend.clone())
                .build()?,
            messages: WebSocketThrottle::builder("websocket:messages").rate("5/10s").shared_backend(backend).build()?,
        })
    }
}

fn app(limits: Limits) -> Router {
    Router::new().route("/ws", get(upgrade)).with_state(limits)
}

/// Connection level: the upgrade request is an ordinary HTTP request, so a hit on it
/// refuses the handshake with 429 + `Retry-After` before anything is upgraded. `conn`
/// (who the client is: peer address, headers) is kept for every message hit.
async fn upgrade(
    State(limits): State<Limits>,
    conn: WsConnection,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ThrottleError> {
    limits.connects.hit_upgrade(&conn).await?;
    Ok(upgrade.max_message_size(64 << 10).on_upgrade(move |socket| echo(socket, conn, limits.messages)))
}

/// Message level: one hit per message. Over the limit, the client has been sent the
/// `rate_limit` frame and the socket is still open; the handler decides what next.
async fn echo(mut socket: WebSocket, conn: WsConnection, messages: WebSocketThrottle) {
    let mut strikes = 0;
    // Malformed frames and dropped connections end the loop with an error: nothing to do.
    while let Some(Ok(message)) = socket.recv().await {
        let reply = match message {
            Message::Text(text) => Message::text(format!("Echo: {text}")),
            Message::Binary(bytes) => Message::Binary(bytes),
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        messages.hit(&conn, &mut socket).await;
        if conn.is_throttled() {
            strikes += 1;
            if strikes >= STRIKES {
                let reason = "Rate limit exceeded".into();
                let _ = socket.send(Message::Close(Some(CloseFrame { code: close_code::POLICY, reason }))).await;
                return;
            }
            continue;
        }
        strikes = 0;
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let limits = Limits::new(throttle::backend::default_backend())?;
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3002);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("throttle websocket echo on ws://{addr}/ws (in-memory backend)");
    println!("  GET /ws  handshake: 10 per minute per client (429 + Retry-After before upgrading)");
    println!("           messages:  5 per 10 s per client; a throttled one gets a rate_limit frame;");
    println!("           {STRIKES} throttled in a row close the socket with 1008 (policy violation)");
    axum::serve(listener, app(limits).into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use std::time::Duration;
    use throttle::backend::{ManualClock, MemoryBackend};
    use tokio_tungstenite::tungstenite::{self, Message as WsMessage};

    /// 5 s before a 10 s window ends (and 45 s before a minute ends).
    const T0: u64 = 60_000 * 29_000_000 + 15_000;
    const IO: Duration = Duration::from_secs(10);

    type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

    async fn next(client: &mut Client) -> WsMessage {
        match tokio::time::timeout(IO, client.next()).await.expect("answer in time") {
            Some(Ok(message)) => message,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    async fn ask(client: &mut Client, text: &str) -> WsMessage {
        client.send(WsMessage::text(text)).await.expect("send");
        next(client).await
    }

    #[tokio::test]
    async fn the_echo_server_throttles_handshakes_and_messages_and_closes_with_1008() {
        let clock = ManualClock::new(T0);
        let backend = MemoryBackend::builder().clock(clock.clone()).build().expect("valid backend");
        let app = app(Limits::new(Arc::new(backend)).expect("valid limits"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.expect("serve")
        });
        let url = format!("ws://{addr}/ws");

        let (mut client, _) = tokio_tungstenite::connect_async(&url).await.expect("handshake");
        for i in 0..5 {
            assert_eq!(ask(&mut client, &format!("{i}")).await, WsMessage::text(format!("Echo: {i}")));
        }
        let frame = WsMessage::text(r#"{"type":"rate_limit","error":"Too many messages","retry_after":5}"#);
        assert_eq!(ask(&mut client, "6").await, frame);
        assert_eq!(ask(&mut client, "7").await, frame, "the socket stays open");
        // The window ends: an admitted message resets the strikes.
        clock.advance(Duration::from_secs(5));
        assert_eq!(ask(&mut client, "8").await, WsMessage::text("Echo: 8"));
        for _ in 0..4 {
            assert_eq!(ask(&mut client, "more").await, WsMessage::text("Echo: more"));
        }
        let frame = WsMessage::text(r#"{"type":"rate_limit","error":"Too many messages","retry_after":10}"#);
        assert_eq!(ask(&mut client, "9").await, frame);
        assert_eq!(ask(&mut client, "10").await, frame);
        assert_eq!(ask(&mut client, "11").await, frame, "third strike: the frame, then the close");
        match next(&mut client).await {
            WsMessage::Close(Some(close)) => {
                assert_eq!(u16::from(close.code), 1008);
                assert_eq!(close.reason.as_str(), "Rate limit exceeded");
            }
            other => panic!("expected a 1008 close, got {other:?}"),
        }

        // Handshakes: 10 per minute (one used above), then 429 + Retry-After.
        for _ in 0..9 {
            tokio_tungstenite::connect_async(&url).await.expect("handshake");
        }
        match tokio_tungstenite::connect_async(&url).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 429);
                assert_eq!(response.headers()["retry-after"], "40");
            }
            other => panic!("expected a 429, got {:?}", other.map(|_| "an upgrade")),
        }
    }
}
