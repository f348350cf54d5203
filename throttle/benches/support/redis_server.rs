//! A `redis-server` on a free loopback port for the Redis benchmarks, killed on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether every tool is on PATH; prints a notice naming the first one missing.
pub(crate) fn tools_found(tools: &[&str]) -> bool {
    for tool in tools {
        let found = Command::new(tool).arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
        if !found {
            eprintln!("notice: `{tool}` is not on PATH; skipping this Redis benchmark");
            return false;
        }
    }
    true
}

pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
    dir: PathBuf,
}

impl Server {
    pub(crate) fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let dir = std::env::temp_dir().join(format!("throttle-bench-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let server = Server { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.cli(&["PING"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let output =
            Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `redis_version` from `INFO server`.
    pub(crate) fn version(&self) -> String {
        let info = self.cli(&["INFO", "server"]);
        info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("?").trim().to_string()
    }

    /// One field (`calls`, `usec`, `usec_per_call`) of `command`'s line in
    /// `INFO commandstats` (`cmdstat_evalsha:calls=3,usec=40,usec_per_call=13.33,...`).
    pub(crate) fn command_stat(&self, command: &str, field: &str) -> f64 {
        let prefix = format!("cmdstat_{command}:");
        self.cli(&["INFO", "commandstats"])
            .lines()
            .find_map(|line| line.trim().strip_prefix(&prefix).map(str::to_string))
            .and_then(|rest| rest.split(',').find_map(|pair| pair.strip_prefix(&format!("{field}="))?.parse().ok()))
            .unwrap_or(0.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
