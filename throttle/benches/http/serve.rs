//! One server process: started pinned to the server core, probed, loaded, stopped.

use crate::load::{Load, Sample};
use crate::redis_server::RedisServer;
use crate::report::{Backend, Case};
use crate::servers::{self, CLIENT_HEADER, Identify, Path, Server, Setup};
use crate::{Settings, quiet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The child side: `serve <server> <path> <memory | redis-url>`. Prints `port N` once
/// listening, then serves until killed.
pub(crate) fn run(args: &[String]) {
    let [server, path, backend] = args else { panic!("usage: serve <server> <path> <memory | redis://..>") };
    let server = Server::parse(server).unwrap_or_else(|| panic!("unknown server {server}"));
    let path = Path::parse(path).unwrap_or_else(|| panic!("unknown path {path}"));
    // The server runs in a session of its own, where a Ctrl-C of the bench does not
    // reach it: it exits when the bench does, which closes its stdin.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    // Worker threads follow the CPU affinity: one under `taskset -c 0`.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(async {
        if backend == "memory" {
            throttle::backend::set_default_backend(throttle::backend::MemoryBackend::new())
                .expect("set before any throttle");
        } else {
            let redis = throttle::backend::RedisBackend::connect(backend).await.expect("redis answers");
            throttle::backend::set_default_backend(redis).expect("set before any throttle");
        }
        let app = servers::router(Setup { server, path, identify: Identify::Header });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let port = listener.local_addr().expect("bound").port();
        println!("port {port}");
        std::io::stdout().flush().expect("stdout");
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.expect("serves");
    });
}

/// The parent side: one measurement of `case` on a fresh server, once the machine is
/// quiet or the wait has run out (the sample records how busy it was).
pub(crate) fn measure(case: &Case, redis: Option<&RedisServer>, settings: &Settings, load: &Load) -> Sample {
    let busy = quiet::wait_for_quiet(Duration::from_secs(settings.quiet_wait_secs));
    let redis = redis.filter(|_| case.backend == Backend::Redis);
    let server = ServerProcess::start(case, redis.map(RedisServer::url).as_deref(), settings);
    let probe = probe(server.port);
    load.warm_up(case, server.port);
    let cpu = || quiet::cpu_seconds(server.child.id()) + redis.map_or(0.0, |r| quiet::cpu_seconds(r.pid()));
    let (cpu_before, started) = (cpu(), Instant::now());
    let mut sample = load.measure(case, server.port);
    sample.server_cpu = (cpu() - cpu_before) / started.elapsed().as_secs_f64();
    sample.check_probe(case, &probe);
    sample.others_before = busy;
    sample
}

/// A server child, killed on drop.
struct ServerProcess {
    child: Child,
    port: u16,
}

impl ServerProcess {
    fn start(case: &Case, redis_url: Option<&str>, settings: &Settings) -> ServerProcess {
        let backend = match case.backend {
            Backend::Memory => "memory",
            Backend::Redis => redis_url.expect("a redis url for a redis case"),
        };
        let exe = std::env::current_exe().expect("this binary");
        let mut child = settings
            .pinned(&settings.server_cpu)
            .arg(exe)
            .args(["serve", case.server.name(), case.path.name(), backend])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server starts");
        settings.raise(child.id());
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("the server's first line");
        let port = line.trim().strip_prefix("port ").and_then(|p| p.parse().ok());
        let port = port.unwrap_or_else(|| panic!("the server said {line:?} instead of its port"));
        ServerProcess { child, port }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request from a client no measured request uses: its status line and the names
/// of its rate-limit headers, to check that each server does what its row says.
pub(crate) struct Probe {
    pub(crate) status: u16,
    pub(crate) ratelimit_headers: Vec<String>,
}

fn probe(port: u16) -> Probe {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the server accepts");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("a timeout");
    let request = format!("GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n{CLIENT_HEADER}: probe\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("the request is sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a response");
    let mut lines = response.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let ratelimit_headers = lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':').map(|(name, _)| name.to_ascii_lowercase()))
        .filter(|name| name.contains("ratelimit") || name == "retry-after")
        .collect();
    Probe { status, ratelimit_headers }
}
