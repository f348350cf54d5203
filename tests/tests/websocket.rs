//! WebSocket throttling over real loopback sockets with a real client (tokio-tungstenite):
//! the handshake gate (429 before upgrading), the per-message `rate_limit` frame, the
//! socket staying open, `is_throttled`, identity carried over from the handshake,
//! floods, malformed frames and abrupt disconnects.
//!
//! Time comes from a `ManualClock` (windows end exactly when the test says); the only
//! waits are bounded timeouts on network I/O.

mod support;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{self, Poll};
use std::time::Duration;
use support::*;
use throttle::{
    ThrottleError, WebSocketThrottle,
    backend::{ManualClock, MemoryBackend},
    identity::{Identifier, Identity},
    throttle,
    websocket::{MessageVerdict, WsConnection},
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// Bound on every network wait: generous, and only ever reached when a test fails.
const IO: Duration = Duration::from_secs(10);

/// The frame a throttled message gets at `T0` with an "n/min" rate (the window ends in 45 s).
const FRAME_45: &str = r#"{"type":"rate_limit","error":"Too many messages","retry_after":45}"#;

// ---------------------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------------------

/// An echo server: an optional handshake throttle, a message throttle, and a channel on
/// which every socket task reports how it ended (a task that panicked reports nothing).
#[derive(Clone)]
struct Echo {
    connects: Option<WebSocketThrottle>,
    messages: WebSocketThrottle,
    /// Per-call `rate_limit` frame fields of every message hit.
    extras: Vec<(&'static str, serde_json::Value)>,
    /// Reply `"{is_throttled} {wait_ms}"` after every hit instead of echoing.
    report: bool,
    exits: mpsc::UnboundedSender<String>,
}

impl Echo {
    fn new(messages: WebSocketThrottle) -> (Self, mpsc::UnboundedReceiver<String>) {
        let (exits, ended) = mpsc::unbounded_channel();
        (Echo { connects: None, messages, extras: Vec::new(), report: false, exits }, ended)
    }

    async fn serve(self) -> SocketAddr {
        let app = Router::new().route("/ws", get(upgrade)).route("/ws-parts", get(upgrade_from_parts)).with_state(self);
        serve(app).await
    }

    /// The socket task: one hit per data message; throttled messages are skipped
    /// (the client got the `rate_limit` frame) and the socket stays open.
    async fn run(self, mut socket: WebSocket, conn: WsConnection) {
        let exit = loop {
            let reply = match socket.recv().await {
                None => break "closed".to_string(),
                Some(Err(error)) => break format!("error: {error}"),
                Some(Ok(Message::Text(text))) => Message::text(format!("echo:{text}")),
                Some(Ok(Message::Binary(bytes))) => Message::Binary(bytes),
                Some(Ok(Message::Close(_))) => break "close frame".to_string(),
                Some(Ok(_ping_or_pong)) => continue,
            };
            let mut hit = self.messages.hit(&conn, &mut socket);
            for (name, value) in &self.extras {
                hit = hit.frame_extra(*name, value.clone());
            }
            hit.await;
            let reply = if self.report {
                Message::text(format!("{} {}", conn.is_throttled(), conn.wait_ms()))
            } else if conn.is_throttled() {
                continue;
            } else {
                reply
            };
            if socket.send(reply).await.is_err() {
                break "send failed".to_string();
            }
        };
        let _ = self.exits.send(exit);
    }
}

/// The upgrade handler: the snapshot of the upgrade request (an extractor), the
/// handshake throttle on it (a 429 refuses the upgrade), then the message hits.
async fn upgrade(
    State(echo): State<Echo>,
    conn: WsConnection,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ThrottleError> {
    if let Some(connects) = &echo.connects {
        connects.hit_upgrade(&conn).await?;
    }
    let upgrade = upgrade.max_message_size(64 << 10).max_frame_size(64 << 10);
    Ok(upgrade.on_upgrade(move |socket| echo.run(socket, conn)))
}

/// The same gate with the whole `Request`: hit its parts, then keep them (no clone).
async fn upgrade_from_parts(
    State(echo): State<Echo>,
    upgrade: WebSocketUpgrade,
    request: Request,
) -> Result<Response, ThrottleError> {
    let (parts, _body) = request.into_parts();
    if let Some(connects) = &echo.connects {
        connects.hit_upgrade(&parts).await?;
    }
    let conn = WsConnection::from(parts);
    Ok(upgrade.on_upgrade(move |socket| echo.run(socket, conn)))
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.expect("server");
    });
    addr
}

/// A message throttle on its own manual-clock backend.
fn messages(uid: &str, rate: &str) -> (WebSocketThrottle, ManualClock, MemoryBackend) {
    let (backend, clock) = manual_backend();
    let throttle = WebSocketThrottle::builder(uid).rate(rate).backend(backend.clone()).build().expect("valid throttle");
    (throttle, clock, backend)
}

// ---------------------------------------------------------------------------------------
// The client side
// ---------------------------------------------------------------------------------------

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(addr: SocketAddr) -> Client {
    try_connect(addr, &[]).await.expect("handshake accepted")
}

async fn try_connect(addr: SocketAddr, headers: &[(&'static str, &str)]) -> Result<Client, tungstenite::Error> {
    try_connect_to(addr, "/ws", headers).await
}

async fn try_connect_to(
    addr: SocketAddr,
    path: &str,
    headers: &[(&'static str, &str)],
) -> Result<Client, tungstenite::Error> {
    let mut request = format!("ws://{addr}{path}").into_client_request().expect("valid url");
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().expect("valid header value"));
    }
    let (client, _response) = timeout(IO, connect_async(request)).await.expect("handshake in time")?;
    Ok(client)
}

async fn send(client: &mut Client, text: &str) {
    client.send(WsMessage::text(text)).await.expect("send");
}

/// The next data or close message from the server.
async fn next(client: &mut Client) -> WsMessage {
    loop {
        match timeout(IO, client.next()).await.expect("server answered in time") {
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
            Some(Ok(message)) => return message,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

async fn next_text(client: &mut Client) -> String {
    match next(client).await {
        WsMessage::Text(text) => text.as_str().to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Pings and waits for the pong: the server has handled everything sent before.
async fn round_trip(client: &mut Client) {
    client.send(WsMessage::Ping(b"sync".to_vec().into())).await.expect("ping");
    loop {
        match timeout(IO, client.next()).await.expect("pong in time") {
            Some(Ok(WsMessage::Pong(payload))) if payload.as_ref() == b"sync" => return,
            Some(Ok(WsMessage::Ping(_))) => continue,
            other => panic!("expected the pong, got {other:?}"),
        }
    }
}

/// Sends `text` and returns the reply.
async fn ask(client: &mut Client, text: &str) -> String {
    send(client, text).await;
    next_text(client).await
}

/// A sink that keeps what it is sent.
#[derive(Default)]
struct Frames(Vec<Message>);

impl futures_util::Sink<Message> for Frames {
    type Error = std::convert::Infallible;

    fn poll_ready(self: Pin<&mut Self>, _: &mut task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        self.get_mut().0.push(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

// ---------------------------------------------------------------------------------------
// Per-message throttling
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_throttled_message_gets_the_exact_frame_and_the_socket_stays_open() {
    let (messages, clock, _) = messages("ws:frame:exact", "2/min");
    let (echo, _) = Echo::new(messages);
    let mut client = connect(echo.serve().await).await;

    assert_eq!(ask(&mut client, "a").await, "echo:a");
    assert_eq!(ask(&mut client, "b").await, "echo:b");
    assert_eq!(ask(&mut client, "c").await, FRAME_45);
    // Still open: further messages get the frame again, not a close.
    assert_eq!(ask(&mut client, "d").await, FRAME_45);
    clock.advance(Duration::from_millis(44_001));
    let frame = ask(&mut client, "e").await;
    assert_eq!(frame, r#"{"type":"rate_limit","error":"Too many messages","retry_after":1}"#, "999 ms rounds up");
    // The wait was honest: when it is over, the same socket is admitted again.
    clock.advance(Duration::from_millis(999));
    assert_eq!(ask(&mut client, "f").await, "echo:f");
    assert_eq!(ask(&mut client, "g").await, "echo:g");
    client.close(None).await.expect("clean close");
}

#[tokio::test]
async fn frame_extras_of_the_throttle_and_the_hit_are_appended_in_order() {
    let (backend, _clock) = manual_backend();
    let messages = WebSocketThrottle::builder("ws:frame:extras")
        .rate("1/min")
        .backend(backend)
        .frame_extra("room", "lobby")
        .frame_extra("limit", 1)
        .build()
        .expect("valid throttle");
    let (mut echo, _) = Echo::new(messages);
    // The hit's fields follow the throttle's; a name already there is replaced in place.
    echo.extras = vec![("hint", json!("slow down")), ("room", json!("kitchen")), ("error", json!("hush \"now\""))];
    let mut client = connect(echo.serve().await).await;

    assert_eq!(ask(&mut client, "a").await, "echo:a");
    let frame = ask(&mut client, "b").await;
    assert_eq!(
        frame,
        r#"{"type":"rate_limit","error":"hush \"now\"","retry_after":45,"room":"kitchen","limit":1,"hint":"slow down"}"#
    );
    let parsed: serde_json::Value = serde_json::from_str(&frame).expect("valid JSON");
    assert_eq!(parsed["retry_after"], 45);
}

#[tokio::test]
async fn a_custom_handler_replaces_the_frame_or_sends_nothing() {
    let (backend, clock) = manual_backend();
    let messages = WebSocketThrottle::builder("ws:frame:custom")
        .rate("1/min")
        .backend(backend.clone())
        .message_handler(|throttled| Some(Message::text(format!("slow down for {}s", throttled.retry_after_secs()))))
        .build()
        .expect("valid throttle");
    let (echo, _) = Echo::new(messages);
    let mut client = connect(echo.serve().await).await;
    assert_eq!(ask(&mut client, "a").await, "echo:a");
    assert_eq!(ask(&mut client, "b").await, "slow down for 45s");

    let silent = WebSocketThrottle::builder("ws:frame:silent")
        .rate("1/min")
        .backend(backend)
        .message_handler(|_| None)
        .build()
        .expect("valid throttle");
    let (echo, _) = Echo::new(silent);
    let mut client = connect(echo.serve().await).await;
    assert_eq!(ask(&mut client, "a").await, "echo:a");
    send(&mut client, "dropped").await; // throttled: no frame, no echo
    round_trip(&mut client).await; // the server has handled "dropped"
    clock.advance(Duration::from_secs(60));
    // The next thing the client receives is the echo of the next message.
    assert_eq!(ask(&mut client, "c").await, "echo:c");
}

#[tokio::test]
async fn is_throttled_reports_the_last_hit() {
    let (messages, clock, _) = messages("ws:last-hit", "2/min");
    let (mut echo, _) = Echo::new(messages);
    echo.report = true;
    let mut client = connect(echo.serve().await).await;

    // Nothing is sent on admitted hits; the throttled one is preceded by its frame.
    assert_eq!(ask(&mut client, "1").await, "false 0");
    assert_eq!(ask(&mut client, "2").await, "false 0");
    assert_eq!(ask(&mut client, "3").await, FRAME_45);
    assert_eq!(next_text(&mut client).await, "true 45000");
    clock.advance(Duration::from_millis(15_000));
    assert_eq!(ask(&mut client, "4").await, FRAME_45.replace("45", "30"));
    assert_eq!(next_text(&mut client).await, "true 30000");
    // A new window: the last hit is admitted again, and the flag follows it.
    clock.advance(Duration::from_millis(30_000));
    assert_eq!(ask(&mut client, "5").await, "false 0");
    // Binary messages are hits too.
    client.send(WsMessage::binary(vec![1u8, 2, 3])).await.expect("send");
    assert_eq!(next_text(&mut client).await, "false 0");
    client.send(WsMessage::binary(vec![4u8])).await.expect("send");
    assert_eq!(next_text(&mut client).await, FRAME_45.replace("45", "60"));
    assert_eq!(next_text(&mut client).await, "true 60000");
}

#[tokio::test]
async fn verdicts_say_what_happened_and_failures_count_as_not_admitted() {
    // Driven without a network: any `Sink<Message>` receives the frame.
    let (messages, _clock, _) = messages("ws:verdicts", "2/min");
    let conn = WsConnection::new(&get_from("/ws", [10, 1, 1, 1]));
    let mut frames = Frames::default();

    let verdict = messages.hit(&conn, &mut frames).await;
    assert!(matches!(verdict, MessageVerdict::Admitted(_)) && verdict.is_admitted());
    assert_eq!(verdict.wait_ms(), 0);
    assert!(!conn.is_throttled());

    let verdict = messages.hit(&conn, &mut frames).cost(5).await;
    assert!(matches!(verdict, MessageVerdict::Failed(ThrottleError::CostExceedsCapacity { .. })));
    assert!(conn.is_throttled(), "a failed hit is not admitted");
    assert_eq!(conn.wait_ms(), 0);
    assert!(frames.0.is_empty(), "failures send nothing");

    let verdict = messages.hit(&conn, &mut frames).cost(-1).await;
    assert!(matches!(verdict, MessageVerdict::Failed(ThrottleError::InvalidCost(_))));

    let verdict = messages.hit(&conn, &mut frames).cost(0).await;
    assert!(verdict.is_admitted(), "cost 0 is a no-op");
    assert!(!conn.is_throttled());

    let verdict = messages.hit(&conn, &mut frames).cost(2).await;
    let MessageVerdict::Throttled(throttled) = verdict else { panic!("expected throttled") };
    assert_eq!(throttled.wait_ms(), 45_000);
    assert_eq!(frames.0, [Message::text(FRAME_45)]);
    assert!(conn.is_throttled());
    assert_eq!(conn.wait_ms(), 45_000);
}

// ---------------------------------------------------------------------------------------
// The seed's spelling, several throttles per message, a client that never reads
// ---------------------------------------------------------------------------------------

/// The seed's endpoint, line for line: a hit per received message, then `is_throttled`;
/// a throttled client is told why and the socket is closed with 1008.
async fn seed_endpoint(mut websocket: WebSocket, conn: WsConnection, ws_throttle: WebSocketThrottle) {
    while let Some(Ok(Message::Text(message))) = websocket.recv().await {
        ws_throttle.hit(&conn, &mut websocket).await;
        if conn.is_throttled() {
            let reason = "Rate limit exceeded".into();
            let _ = websocket.send(Message::Close(Some(CloseFrame { code: close_code::POLICY, reason }))).await;
            return;
        }
        if websocket.send(Message::text(format!("Echo: {message}"))).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn the_seeds_spelling_sends_the_frame_and_sets_the_flag() {
    let (ws_throttle, _clock, _) = messages("ws:seed", "2/min");
    let app = Router::new()
        .route(
            "/ws",
            get(|State(ws_throttle): State<WebSocketThrottle>, conn: WsConnection, upgrade: WebSocketUpgrade| async move {
                upgrade.on_upgrade(move |websocket| seed_endpoint(websocket, conn, ws_throttle))
            }),
        )
        .with_state(ws_throttle);
    let mut client = connect(serve(app).await).await;

    assert_eq!(ask(&mut client, "a").await, "Echo: a");
    assert_eq!(ask(&mut client, "b").await, "Echo: b");
    // Over the limit: the plain `hit` sent the frame, and set the flag the handler read.
    assert_eq!(ask(&mut client, "c").await, FRAME_45);
    match next(&mut client).await {
        WsMessage::Close(Some(close)) => {
            assert_eq!(u16::from(close.code), 1008);
            assert_eq!(close.reason.as_str(), "Rate limit exceeded");
        }
        other => panic!("expected the 1008 close, got {other:?}"),
    }
}

#[tokio::test]
async fn with_two_throttles_the_flag_is_the_last_hit_and_each_throttle_keeps_its_own() {
    let (backend, _clock) = manual_backend();
    let burst =
        WebSocketThrottle::builder("ws:two:burst").rate("1/min").backend(backend.clone()).build().expect("valid");
    let hourly = WebSocketThrottle::builder("ws:two:hourly").rate("100/h").backend(backend).build().expect("valid");
    let conn = WsConnection::new(&get_from("/ws", [10, 2, 2, 2]));
    let mut frames = Frames::default();

    burst.hit(&conn, &mut frames).await;
    hourly.hit(&conn, &mut frames).await;
    assert!(!conn.is_throttled_by(&burst) && !conn.is_throttled_by(&hourly) && !conn.is_throttled());

    // The second message: the burst limit refuses it, the hourly one admits it.
    let verdict = burst.hit(&conn, &mut frames).await;
    assert!(!verdict.is_admitted());
    hourly.hit(&conn, &mut frames).await;
    assert_eq!(frames.0, [Message::text(FRAME_45)], "the refusing throttle told the client");
    assert!(!conn.is_throttled(), "documented: the flag is the most recent hit, the admitting one");
    assert!(conn.is_throttled_by(&burst), "but the burst throttle's refusal is kept");
    assert!(!conn.is_throttled_by(&hourly));
    // A throttle that never hit this connection reports nothing.
    let unused = WebSocketThrottle::builder("ws:two:unused").rate("1/min").build().expect("valid");
    assert!(!conn.is_throttled_by(&unused));
}

/// A sink that never accepts anything: a peer whose buffers are full for good.
struct NeverReady;

impl futures_util::Sink<Message> for NeverReady {
    type Error = std::convert::Infallible;

    fn poll_ready(self: Pin<&mut Self>, _: &mut task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Pending
    }

    fn start_send(self: Pin<&mut Self>, _: Message) -> Result<(), Self::Error> {
        unreachable!("never ready")
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Pending
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Pending
    }
}

#[tokio::test(start_paused = true)]
async fn a_frame_that_cannot_be_sent_is_given_up_after_exactly_the_frame_timeout() {
    let (backend, _clock) = manual_backend();
    let messages = WebSocketThrottle::builder("ws:frame-timeout")
        .rate("1/min")
        .backend(backend)
        .frame_timeout(Duration::from_millis(250))
        .build()
        .expect("valid throttle");
    let conn = WsConnection::new(&get_from("/ws", [10, 3, 3, 3]));
    let mut stuck = NeverReady;

    let start = tokio::time::Instant::now();
    assert!(messages.hit(&conn, &mut stuck).await.is_admitted());
    assert_eq!(start.elapsed(), Duration::ZERO, "an admitted hit sends nothing");
    let verdict = messages.hit(&conn, &mut stuck).await;
    // Paused time: the wait is exactly the bound, however long the sink would block.
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    assert!(matches!(verdict, MessageVerdict::Throttled(_)));
    assert!(conn.is_throttled() && conn.is_throttled_by(&messages), "the flag is set though no frame went out");
}

/// Frames of 8 MiB: a few fill the kernel's buffers on both ends of a loopback socket.
const BIG_FRAME: usize = 8 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_stall_the_handler_past_the_frame_timeout() {
    const MESSAGES: usize = 12;
    let (backend, _clock) = manual_backend();
    let messages = WebSocketThrottle::builder("ws:never-reads")
        .rate("1/min")
        .backend(backend)
        .message_handler(|_| Some(Message::text("x".repeat(BIG_FRAME))))
        .frame_timeout(Duration::from_millis(100))
        .build()
        .expect("valid throttle");
    // The socket task reports every hit: (admitted, flag).
    let (hits, mut seen) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/ws",
        get(move |conn: WsConnection, upgrade: WebSocketUpgrade| async move {
            upgrade.on_upgrade(move |mut socket| async move {
                while let Some(Ok(Message::Text(_))) = socket.recv().await {
                    let verdict = messages.hit(&conn, &mut socket).await;
                    let _ = hits.send((verdict.is_admitted(), conn.is_throttled()));
                }
            })
        }),
    );
    let addr = serve(app).await;

    // A client that completes the handshake, floods, and never reads a byte.
    let stream = raw_socket(addr).await;
    let mut flood = Vec::new();
    for i in 0..MESSAGES {
        flood.extend(frame(FIN_TEXT, format!("m{i}").as_bytes(), true));
    }
    write_raw(&stream, &flood).await.expect("write the flood");

    // Every message is decided: the sends that could not complete gave up after 100 ms
    // each (without the bound, the handler would wait for this client forever).
    for i in 0..MESSAGES {
        let (admitted, throttled) =
            timeout(IO, seen.recv()).await.unwrap_or_else(|_| panic!("hit {i} stalled")).expect("task alive");
        assert_eq!((admitted, throttled), (i == 0, i != 0), "hit {i}");
    }
    drop(stream);
}

// ---------------------------------------------------------------------------------------
// Connection-level throttling
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_concurrent_handshakes_at_three_per_window_admit_exactly_three() {
    let (backend, clock) = manual_backend();
    let connects =
        WebSocketThrottle::builder("ws:connects:five").rate("3/min").backend(backend.clone()).build().expect("valid");
    let messages =
        WebSocketThrottle::builder("ws:connects:messages").rate("100/min").backend(backend).build().expect("valid");
    let (mut echo, _) = Echo::new(messages);
    echo.connects = Some(connects);
    let addr = echo.serve().await;

    let attempts: Vec<_> = (0..5).map(|_| tokio::spawn(try_connect(addr, &[]))).collect();
    let mut admitted = Vec::new();
    let mut refused = 0;
    for attempt in attempts {
        match attempt.await.expect("task") {
            Ok(client) => admitted.push(client),
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 429, "refused before upgrading");
                assert_eq!(response.headers()["retry-after"], "45");
                let body = String::from_utf8(response.body().clone().unwrap_or_default()).expect("utf-8");
                assert_eq!(body, "Too many requests. Retry in 45 seconds.");
                refused += 1;
            }
            Err(other) => panic!("unexpected handshake error: {other}"),
        }
    }
    assert_eq!((admitted.len(), refused), (3, 2));
    // The admitted sockets are fully working.
    for (i, client) in admitted.iter_mut().enumerate() {
        assert_eq!(ask(client, &i.to_string()).await, format!("echo:{i}"));
    }
    // Honest wait: after 45 s the handshake is admitted again.
    clock.advance(Duration::from_millis(44_999));
    assert!(matches!(try_connect(addr, &[]).await, Err(tungstenite::Error::Http(r)) if r.status() == 429));
    clock.advance(Duration::from_millis(1));
    let mut late = connect(addr).await;
    assert_eq!(ask(&mut late, "late").await, "echo:late");
}

static MACRO_BACKEND: LazyLock<(MemoryBackend, ManualClock)> = LazyLock::new(manual_backend);

/// The attribute on a `WebSocketUpgrade` handler: the throttle runs before the
/// extractors, on the upgrade request, so a 429 refuses the handshake.
#[throttle(uid = "ws:macro:connects", rate = "2/min", backend = MACRO_BACKEND.0.clone())]
async fn annotated_upgrade(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|mut socket| async move {
        while let Some(Ok(Message::Text(text))) = socket.recv().await {
            if socket.send(Message::text(format!("echo:{text}"))).await.is_err() {
                return;
            }
        }
    })
}

#[tokio::test]
async fn the_attribute_throttles_the_handshake_of_a_websocket_upgrade_handler() {
    let addr = serve(Router::new().route("/ws", get(annotated_upgrade))).await;
    let mut first = connect(addr).await;
    let mut second = connect(addr).await;
    match try_connect(addr, &[]).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert_eq!(response.headers()["retry-after"], "45");
        }
        other => panic!("expected a 429, got {:?}", other.map(|_| "an upgrade")),
    }
    assert_eq!(ask(&mut first, "a").await, "echo:a");
    assert_eq!(ask(&mut second, "b").await, "echo:b");
    MACRO_BACKEND.1.advance(Duration::from_secs(45));
    let mut third = connect(addr).await;
    assert_eq!(ask(&mut third, "c").await, "echo:c");
}

/// The router layer on a WebSocket route: a `WebSocketThrottle` converts into the
/// layer's throttle, and a rejected upgrade never reaches the handler.
#[tokio::test]
async fn the_router_layer_throttles_the_handshake() {
    let (connects, clock, _backend) = messages("ws:layer:connects", "1/min");
    let plain = Router::new().route(
        "/ws",
        get(|upgrade: WebSocketUpgrade| async move {
            upgrade.on_upgrade(|mut socket| async move {
                while let Some(Ok(Message::Text(text))) = socket.recv().await {
                    if socket.send(Message::text(format!("echo:{text}"))).await.is_err() {
                        return;
                    }
                }
            })
        }),
    );
    let addr = serve(plain.layer(throttle::ThrottleLayer::new(connects.into()))).await;
    let mut first = connect(addr).await;
    match try_connect(addr, &[]).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert_eq!(response.headers()["retry-after"], "45");
        }
        other => panic!("expected a 429, got {:?}", other.map(|_| "an upgrade")),
    }
    assert_eq!(ask(&mut first, "still open").await, "echo:still open");
    clock.advance(Duration::from_secs(45));
    let mut second = connect(addr).await;
    assert_eq!(ask(&mut second, "b").await, "echo:b");
}

// ---------------------------------------------------------------------------------------
// Identity carries over from the handshake
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn message_buckets_are_per_client_across_sockets() {
    let (messages, _clock, _) = messages("ws:identity:per-client", "3/min");
    let (echo, _) = Echo::new(messages.clone());
    let addr = echo.serve().await;
    let mut first = connect(addr).await;
    // Snapshotted from the request's `Parts` rather than by the extractor: the same client.
    let mut second = try_connect_to(addr, "/ws-parts", &[]).await.expect("handshake");

    assert_eq!(ask(&mut first, "a").await, "echo:a");
    assert_eq!(ask(&mut second, "b").await, "echo:b");
    assert_eq!(ask(&mut first, "c").await, "echo:c");
    // Both sockets come from 127.0.0.1: one bucket, now empty.
    assert_eq!(ask(&mut second, "d").await, FRAME_45);
    assert_eq!(ask(&mut first, "e").await, FRAME_45);
    // The bucket is the peer IP's, as an HTTP request from that IP sees it.
    let stat = messages.stat(&get_from("/anything", [127, 0, 0, 1])).await.expect("stat").expect("not exempted");
    assert_eq!(stat.hits_remaining, 0);
    assert!(stat.key.ends_with(":ip=127.0.0.1:default"), "key {}", stat.key);
    let other = messages.stat(&get_from("/anything", [10, 9, 9, 9])).await.expect("stat").expect("not exempted");
    assert_eq!(other.hits_remaining, 3);
}

#[tokio::test]
async fn per_socket_throttles_give_each_socket_its_own_bucket() {
    let (backend, _clock) = manual_backend();
    let messages = WebSocketThrottle::builder("ws:identity:per-socket")
        .rate("2/min")
        .backend(backend.clone())
        .per_socket()
        .build()
        .expect("valid throttle");
    assert!(messages.is_per_socket());
    let (echo, _) = Echo::new(messages);
    let addr = echo.serve().await;
    let mut first = connect(addr).await;
    let mut second = connect(addr).await;

    assert_eq!(ask(&mut first, "a").await, "echo:a");
    assert_eq!(ask(&mut first, "b").await, "echo:b");
    assert_eq!(ask(&mut first, "c").await, FRAME_45);
    assert_eq!(ask(&mut second, "d").await, "echo:d");
    assert_eq!(ask(&mut second, "e").await, "echo:e");
    assert_eq!(ask(&mut second, "f").await, FRAME_45);
    assert_eq!(backend.len(), 2, "one key per socket");
}

#[tokio::test]
async fn custom_identifiers_read_the_upgrade_request_for_every_message() {
    let (backend, _clock) = manual_backend();
    let by_user = Identifier::from_fn(|conn| match conn.headers().get("x-user") {
        Some(user) => Identity::client(String::from_utf8_lossy(user.as_bytes()).into_owned()),
        None => Identity::client("anonymous"),
    });
    let messages = WebSocketThrottle::builder("ws:identity:header")
        .rate("1/min")
        .backend(backend.clone())
        .identifier(by_user)
        .build()
        .expect("valid throttle");
    let (echo, _) = Echo::new(messages);
    let addr = echo.serve().await;
    let mut alice = try_connect(addr, &[("x-user", "alice")]).await.expect("handshake");
    let mut bob = try_connect(addr, &[("x-user", "bob")]).await.expect("handshake");
    let mut alice_again = try_connect(addr, &[("x-user", "alice")]).await.expect("handshake");

    assert_eq!(ask(&mut alice, "a").await, "echo:a");
    assert_eq!(ask(&mut bob, "b").await, "echo:b", "same IP, different user");
    assert_eq!(ask(&mut alice_again, "c").await, FRAME_45, "alice's second socket shares her bucket");
    assert_eq!(backend.len(), 2);
}

// ---------------------------------------------------------------------------------------
// Floods, malformed frames, abrupt disconnects
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_is_throttled_in_one_key_and_the_server_keeps_answering() {
    const SOCKETS: usize = 8;
    const PER_SOCKET: usize = 500;
    let (messages, clock, backend) = messages("ws:flood", "10/min");
    let (echo, _) = Echo::new(messages);
    let addr = echo.serve().await;

    // Each socket writes its whole flood without waiting, while a reader counts replies.
    let floods: Vec<_> = (0..SOCKETS)
        .map(|_| {
            tokio::spawn(async move {
                let (mut writer, mut reader) = connect(addr).await.split();
                let write = tokio::spawn(async move {
                    for i in 0..PER_SOCKET {
                        writer.feed(WsMessage::text(format!("m{i}"))).await.expect("send");
                    }
                    writer.flush().await.expect("flush");
                    writer
                });
                let (mut echoes, mut frames) = (0, 0);
                while echoes + frames < PER_SOCKET {
                    match timeout(IO, reader.next()).await.expect("replies keep coming") {
                        Some(Ok(WsMessage::Text(text))) if text.as_str() == FRAME_45 => frames += 1,
                        Some(Ok(WsMessage::Text(text))) if text.as_str().starts_with("echo:m") => echoes += 1,
                        other => panic!("unexpected reply {other:?}"),
                    }
                }
                let _writer = write.await.expect("writer");
                (echoes, frames)
            })
        })
        .collect();
    let mut echoes = 0;
    for flood in floods {
        let (e, f) = flood.await.expect("flood task");
        assert_eq!(e + f, PER_SOCKET);
        echoes += e;
    }
    assert_eq!(echoes, 10, "exactly the limit is admitted across all sockets");
    assert_eq!(backend.len(), 1, "one client, one key, however many frames");

    // The server still answers: a new socket is told to wait, then admitted.
    let mut client = connect(addr).await;
    assert_eq!(ask(&mut client, "more").await, FRAME_45);
    clock.advance(Duration::from_secs(45));
    assert_eq!(ask(&mut client, "later").await, "echo:later");
    assert_eq!(backend.len(), 1);
}

/// Writes all of `bytes` to a raw stream (errors ignored: the server may already have
/// hung up, which is the point of some cases).
async fn write_raw(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        timeout(IO, stream.writable()).await.map_err(|_| io::ErrorKind::TimedOut)??;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A raw TCP connection that has completed the WebSocket handshake by hand.
async fn raw_socket(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let request = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    write_raw(&stream, request.as_bytes()).await.expect("write handshake");
    let mut response = Vec::new();
    let mut buf = [0u8; 1];
    while !response.ends_with(b"\r\n\r\n") {
        timeout(IO, stream.readable()).await.expect("handshake answered in time").expect("readable");
        match stream.try_read(&mut buf) {
            Ok(0) => panic!("closed during handshake: {}", String::from_utf8_lossy(&response)),
            Ok(_) => response.push(buf[0]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => panic!("handshake read: {e}"),
        }
    }
    assert!(response.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&response));
    stream
}

/// A client frame: `first` is FIN/RSV/opcode, the payload is masked when `masked`.
fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

const FIN_TEXT: u8 = 0x81;
const FIN_BINARY: u8 = 0x82;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_and_abrupt_disconnects_never_panic_the_server() {
    let (messages, _clock, _) = messages("ws:malformed", "1000/min");
    let (echo, mut ended) = Echo::new(messages);
    let addr = echo.serve().await;

    let mut oversized_length = vec![FIN_BINARY, 0x80 | 127];
    oversized_length.extend_from_slice(&(1u64 << 62).to_be_bytes());
    oversized_length.extend_from_slice(&[1, 2, 3, 4]);
    let mut truncated = frame(FIN_TEXT, &[b'x'; 100], true);
    truncated.truncate(20);
    let mut split_utf8 = frame(0x01, &[0xe2, 0x82], true); // a text fragment ending mid-character
    split_utf8.extend(frame(0x80, b"(", true)); // the final continuation: invalid UTF-8

    // (name, bytes, then drop the connection without reading)
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("binary garbage", b"\x00\xff\xde\xad\xbe\xef\x13\x37\x42\x42\x42\x42\x42\x42\x99\x99\x99".to_vec()),
        ("reserved opcode", frame(0x83, b"hi", true)),
        ("reserved bits", frame(0xc1, b"hi", true)),
        ("unmasked client frame", frame(FIN_TEXT, b"hi", false)),
        ("invalid utf-8 text", frame(FIN_TEXT, &[0xc3, 0x28, 0xff], true)),
        ("invalid utf-8 across fragments", split_utf8),
        ("continuation without a start", frame(0x80, b"tail", true)),
        ("control frame too long", frame(0x89, &[0u8; 200], true)),
        ("fragmented control frame", frame(0x09, b"ping", true)),
        ("declared length 2^62", oversized_length),
        ("message above max_message_size", frame(FIN_BINARY, &vec![7u8; 100 << 10], true)),
        ("disconnect mid-frame", truncated),
        ("disconnect mid-header", vec![FIN_TEXT]),
        ("disconnect right after the handshake", Vec::new()),
    ];
    for (name, bytes) in cases {
        let stream = raw_socket(addr).await;
        let _ = write_raw(&stream, &bytes).await;
        drop(stream); // abrupt: no close frame
        // The socket task ended on its own, without panicking (it reports how it ended).
        let exit = timeout(IO, ended.recv()).await.unwrap_or_else(|_| panic!("{name}: handler never ended"));
        let exit = exit.expect("exit channel open");
        assert!(exit.starts_with("error") || exit == "closed", "{name}: ended with {exit:?}");

        // The server keeps serving other clients.
        let mut client = connect(addr).await;
        assert_eq!(ask(&mut client, name).await, format!("echo:{name}"), "after {name}");
        client.close(None).await.expect("clean close");
        assert_eq!(timeout(IO, ended.recv()).await.expect("closed in time").as_deref(), Some("close frame"));
    }

    // A valid frame then garbage on one socket; a well-behaved socket alongside it is unaffected.
    let mut neighbour = connect(addr).await;
    let stream = raw_socket(addr).await;
    let mut bytes = frame(FIN_TEXT, b"fine", true);
    bytes.extend(frame(0x83, b"bad", true));
    write_raw(&stream, &bytes).await.expect("write");
    let exit = timeout(IO, ended.recv()).await.expect("ended in time").expect("exit");
    assert!(exit.starts_with("error"), "{exit}");
    assert_eq!(ask(&mut neighbour, "still here").await, "echo:still here");

    // A partial HTTP request, then gone: no socket task ever starts, the server carries on.
    let half = TcpStream::connect(addr).await.expect("connect");
    write_raw(&half, b"GET /ws HTTP/1.1\r\nUpgrade: webso").await.expect("write");
    drop(half);
    assert_eq!(ask(&mut neighbour, "again").await, "echo:again");
}

#[tokio::test]
async fn a_client_that_vanishes_before_its_rate_limit_frame_does_not_break_the_handler() {
    let (messages, _clock, _) = messages("ws:vanish", "1/min");
    let (echo, mut ended) = Echo::new(messages);
    let addr = echo.serve().await;
    for round in 0..3 {
        let stream = raw_socket(addr).await;
        let mut bytes = frame(FIN_TEXT, b"one", true);
        bytes.extend(frame(FIN_TEXT, b"two", true)); // throttled: the server answers with a frame
        bytes.extend(frame(FIN_TEXT, b"three", true));
        write_raw(&stream, &bytes).await.expect("write");
        drop(stream);
        let exit = timeout(IO, ended.recv()).await.expect("handler ended in time").expect("exit");
        assert!(
            ["closed", "send failed"].contains(&exit.as_str()) || exit.starts_with("error"),
            "round {round}: {exit}"
        );
    }
    let mut client = connect(addr).await;
    assert_eq!(ask(&mut client, "hello").await, FRAME_45, "the server still answers");
}
