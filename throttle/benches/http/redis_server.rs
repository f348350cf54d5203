//! A `redis-server` of the bench's own on a free loopback port, pinned to the server
//! core (at the servers' priority), killed on drop.

use crate::Settings;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct RedisServer {
    /// `sh` running redis-server until its stdin closes: the bench's end, Ctrl-C
    /// included (the session of its own keeps the signal from reaching it).
    child: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    pub(crate) fn start(settings: &Settings) -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let dir = std::env::temp_dir().join(format!("throttle-http-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let mut child = settings
            .pinned(&settings.server_cpu)
            .args(["sh", "-c", r#"redis-server "$@" & server=$!; read -r _; kill $server"#, "sh"])
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        settings.raise(child.id());
        let stdin = child.stdin.take();
        let mut server = RedisServer { child, stdin, pid: 0, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.cli(&["PING"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let info = server.cli(&["INFO", "server"]);
        let pid = info.lines().find_map(|l| l.strip_prefix("process_id:")).and_then(|p| p.trim().parse().ok());
        server.pid = pid.expect("redis-server reports its process id");
        server
    }

    /// redis-server's own process id (its CPU time counts with the server's).
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Empties the database, so every measurement starts from no keys.
    pub(crate) fn flush(&self) {
        assert_eq!(self.cli(&["FLUSHALL"]).trim(), "OK", "FLUSHALL failed");
    }

    pub(crate) fn version(&self) -> String {
        let info = self.cli(&["INFO", "server"]);
        info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("?").trim().to_string()
    }

    fn cli(&self, args: &[&str]) -> String {
        let output =
            Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Closing stdin makes the shell stop redis-server and exit.
        drop(self.stdin.take());
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
