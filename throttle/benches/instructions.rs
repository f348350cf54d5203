//! Instructions per request through `Router::oneshot`, counted by valgrind's callgrind:
//! a regression figure for the hot path that does not depend on the machine's load.
//!
//! `cargo bench -p throttle --bench instructions`
//!
//! For each server (bare axum, `#[throttle]` with and without headers, `ThrottleLayer`,
//! the direct API, tower_governor, axum-governor) and path (allow: a quota that never runs out; deny:
//! 1 per hour, spent by a first request), this binary re-runs itself under
//! `valgrind --tool=callgrind` twice, sending `N` and then `2N` requests after the same
//! set-up, and prints `(instructions(2N) − instructions(N)) ÷ N`. Only the function
//! sending the measured requests is counted (`--toggle-collect`), so the set-up (the
//! runtime, the clock's calibration, which varies from run to run, and a first request
//! that builds the throttle) is left out, and the rest of that call cancels in the
//! difference. Each request is built with the
//! peer address in `ConnectInfo`, as `axum::serve` with connect info inserts it, and
//! every limiter keys on it (throttle's default identifier). Building the request and
//! dropping the response are in every row; the bare axum row is that floor.
//!
//! `THROTTLE_INSTRUCTIONS_N` (default 2000) sets `N`.
//! `THROTTLE_INSTRUCTIONS_IDENTIFY=header` keys every limiter on the `x-client` header
//! instead, as the HTTP bench does (each request then carries `x-client: 10.0.39.15`).
//! Without valgrind on PATH the bench prints a notice and exits.

#[allow(dead_code, reason = "shared with the HTTP bench, which uses more of it")]
#[path = "http/servers.rs"]
mod servers;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{Request, StatusCode};
use servers::{Identify, Path, Server, Setup};
use std::net::SocketAddr;
use std::process::Command;
use tokio::runtime::Runtime;
use tower::ServiceExt;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, server, path, requests] = args.as_slice()
        && mode == "count"
    {
        let server = Server::parse(server).expect("a server name");
        let path = Path::parse(path).expect("a path name");
        send(server, path, requests.parse().expect("a number of requests"));
        return;
    }
    let found = Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("notice: `valgrind` is not on PATH; skipping the instruction count");
        return;
    }
    let n: u64 = std::env::var("THROTTLE_INSTRUCTIONS_N").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);

    println!("Instructions per request through `Router::oneshot` (callgrind, (I(2N) − I(N)) ÷ N, N = {n})");
    println!();
    println!("| server | allow | deny | allow − bare | deny − bare |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let mut bare = 0.0;
    for server in Server::ALL {
        let allow = per_request(server, Path::Allow, n);
        let deny = if server.limits() { per_request(server, Path::Deny, n) } else { allow };
        if server == Server::Bare {
            bare = allow;
        }
        println!("| {} | {allow:.0} | {deny:.0} | {:+.0} | {:+.0} |", server.label(), allow - bare, deny - bare);
    }
}

/// Instructions per request: the difference between runs of `2n` and `n` requests.
fn per_request(server: Server, path: Path, n: u64) -> f64 {
    let once = instructions(server, path, n);
    let twice = instructions(server, path, 2 * n);
    (twice as f64 - once as f64) / n as f64
}

/// The instructions callgrind counts for one run of `count` mode.
fn instructions(server: Server, path: Path, requests: u64) -> u64 {
    let out = std::env::temp_dir().join(format!(
        "throttle-callgrind-{}-{}-{}-{requests}.out",
        std::process::id(),
        server.name(),
        path.name()
    ));
    let exe = std::env::current_exe().expect("this binary");
    let status = Command::new("valgrind")
        .args(["--tool=callgrind", "--quiet", "--toggle-collect=*measured_requests*"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .args(["count", server.name(), path.name(), &requests.to_string()])
        .status()
        .expect("valgrind runs");
    assert!(status.success(), "valgrind failed for {} {}", server.name(), path.name());
    let profile = std::fs::read_to_string(&out).expect("callgrind's output");
    let _ = std::fs::remove_file(&out);
    let total = profile.lines().find_map(|line| line.strip_prefix("summary:").or_else(|| line.strip_prefix("totals:")));
    total.and_then(|t| t.split_whitespace().next()).and_then(|n| n.parse().ok()).expect("callgrind's total")
}

/// `count` mode: one request to set up (it builds the throttle and spends the deny
/// quota), then `requests` measured ones in [`measured_requests`], each checked.
fn send(server: Server, path: Path, requests: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let router = servers::router(Setup { server, path, identify: identify() });
    let first = runtime.block_on(router.clone().oneshot(request())).expect("infallible");
    assert!(first.status().is_success(), "the first request is admitted");
    let expected = match (server.limits(), path) {
        (true, Path::Deny) => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::OK,
    };
    measured_requests(&runtime, &router, requests, expected);
}

/// The only function callgrind counts (`--toggle-collect`): the set-up before it
/// (runtime, router, the clock's calibration, the first request) varies from run to
/// run and is left out; what is left of the call itself cancels in the difference.
#[inline(never)]
fn measured_requests(runtime: &Runtime, router: &Router, requests: u64, expected: StatusCode) {
    runtime.block_on(async {
        for _ in 0..requests {
            let response = router.clone().oneshot(request()).await.expect("infallible");
            assert_eq!(response.status(), expected);
        }
    });
}

/// `GET /` from 203.0.113.7, with the peer address where `axum::serve` puts it (and the
/// `x-client` header when limiters key on it).
fn request() -> Request<Body> {
    let mut request = Request::get("/").body(Body::empty()).expect("a request");
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([203, 0, 113, 7], 40_000))));
    if let Identify::Header = identify() {
        request.headers_mut().insert(servers::CLIENT_HEADER, http::HeaderValue::from_static("10.0.39.15"));
    }
    request
}

/// What the limiters key on: `THROTTLE_INSTRUCTIONS_IDENTIFY=header`, or the peer address
/// (read once: a request costs the same either way).
fn identify() -> Identify {
    static IDENTIFY: std::sync::LazyLock<bool> =
        std::sync::LazyLock::new(|| std::env::var("THROTTLE_INSTRUCTIONS_IDENTIFY").as_deref() == Ok("header"));
    if *IDENTIFY { Identify::Header } else { Identify::PeerIp }
}
