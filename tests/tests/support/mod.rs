//! Shared helpers: requests from a given client, a manual-clock backend, body reading.

#![allow(dead_code, unreachable_pub)]

pub mod redis_server;
pub mod test_redis;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use throttle::backend::{ManualClock, MemoryBackend};
use tower::ServiceExt;

/// A minute boundary far from zero, plus 15 s: "n/min" windows end 45 s later.
pub const T0: u64 = 60_000 * 29_000_000 + 15_000;

/// A backend on a manual clock reading `T0`.
pub fn manual_backend() -> (MemoryBackend, ManualClock) {
    let clock = ManualClock::new(T0);
    let backend = MemoryBackend::builder().clock(clock.clone()).build().expect("valid backend");
    (backend, clock)
}

/// A GET from `ip`, with axum's `ConnectInfo` set as a real server would.
pub fn get_from(uri: &str, ip: [u8; 4]) -> Request<Body> {
    request_from("GET", uri, ip, Body::empty())
}

pub fn request_from(method: &str, uri: &str, ip: [u8; 4], body: Body) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(uri).body(body).expect("valid request");
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
    request
}

pub async fn send(app: &Router, request: Request<Body>) -> Response<Body> {
    app.clone().oneshot(request).await.expect("router is infallible")
}

pub async fn body_text(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8 body")
}

pub fn header<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().expect("ascii header"))
}

/// Sends `n` requests concurrently from one client on the multi-thread runtime and
/// returns how many got each status.
pub async fn burst(app: &Router, uri: &str, n: usize) -> (usize, usize) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let app = app.clone();
            let uri = uri.to_string();
            tokio::spawn(async move { send(&app, get_from(&uri, [10, 0, 0, 1])).await.status() })
        })
        .collect();
    let mut ok = 0;
    let mut throttled = 0;
    for task in tasks {
        match task.await.expect("task") {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    (ok, throttled)
}
