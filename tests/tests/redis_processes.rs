//! Exactness across real OS processes: four processes of `throttled_server` (an axum
//! server throttled through `RedisBackend`, src/bin/throttled_server.rs) on one Redis,
//! or on one Cluster, each on its own port. Concurrent requests for one client,
//! spread over the four, are admitted exactly `min(N, L)` times, for every built-in
//! strategy.

mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::redis_server::{RedisCluster, RedisServer, free_port};
use throttle::strategy::StrategyKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PROCESSES: usize = 4;
/// Per hour: no window rolls over, no bucket leaks a whole hit, during the test.
const LIMIT: usize = 40;
/// More requests than the limit from one client, fewer from another.
const OVER: usize = 100;
const UNDER: usize = 25;

/// One server process; killed on drop.
struct ServerProcess {
    child: Child,
    port: u16,
}

impl ServerProcess {
    fn start(redis: &[String], cluster: bool, namespace: &str) -> Self {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_throttled_server"));
        command.args(["--port", &port.to_string(), "--rate", &format!("{LIMIT}/h"), "--namespace", namespace]);
        for url in redis {
            command.args(["--redis", url]);
        }
        if cluster {
            command.arg("--cluster");
        }
        let child = command.stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().expect("throttled_server starts");
        let mut server = ServerProcess { child, port };
        server.wait_until_ready();
        server
    }

    /// The port opens once Redis is connected.
    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.try_wait().expect("child status") {
                panic!("throttled_server on port {} exited: {status}", self.port);
            }
            assert!(Instant::now() < deadline, "throttled_server did not listen on port {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A namespace no other run shares.
fn unique_namespace() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos();
    format!("procs-{}-{nanos}", std::process::id())
}

/// `GET path` from the loopback address `client` (the servers key clients by peer
/// IP) over a connection of its own; the response's status code.
async fn get(port: u16, path: &str, client: Ipv4Addr) -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::from((client, 0))).expect("bind the client address");
    let mut stream = socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("receive");
    let status_line = String::from_utf8_lossy(&response).lines().next().unwrap_or_default().to_string();
    status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status: {status_line:?}"))
}

/// `n` concurrent requests from `client`, request `i` to server `i % 4`; how many
/// were admitted. Anything but 200 or 429 fails the test.
async fn admitted(servers: &[ServerProcess], strategy: &str, client: Ipv4Addr, n: usize) -> usize {
    let path = format!("/{strategy}");
    let requests: Vec<_> = (0..n)
        .map(|i| {
            let (port, path) = (servers[i % servers.len()].port, path.clone());
            tokio::spawn(async move { get(port, &path, client).await })
        })
        .collect();
    let mut admitted = 0;
    for request in requests {
        match request.await.expect("request task") {
            200 => admitted += 1,
            429 => {}
            other => panic!("{strategy}: unexpected status {other}"),
        }
    }
    admitted
}

async fn every_strategy_is_exact(redis: Vec<String>, cluster: bool) {
    let namespace = unique_namespace();
    let servers: Vec<ServerProcess> =
        (0..PROCESSES).map(|_| ServerProcess::start(&redis, cluster, &namespace)).collect();
    for kind in StrategyKind::ALL {
        let name = kind.name();
        let over = admitted(&servers, name, Ipv4Addr::new(127, 0, 0, 1), OVER).await;
        assert_eq!(over, OVER.min(LIMIT), "{name}: {OVER} requests over {PROCESSES} processes");
        let under = admitted(&servers, name, Ipv4Addr::new(127, 0, 0, 2), UNDER).await;
        assert_eq!(under, UNDER.min(LIMIT), "{name}: {UNDER} requests over {PROCESSES} processes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_processes_admit_exactly_the_limit_on_one_redis() {
    let Some(server) = RedisServer::start() else { return };
    every_strategy_is_exact(vec![server.url()], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_processes_admit_exactly_the_limit_on_a_cluster() {
    let Some(cluster) = RedisCluster::start() else { return };
    every_strategy_is_exact(cluster.urls(), true).await;
}
