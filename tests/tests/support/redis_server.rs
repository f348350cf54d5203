//! Real `redis-server` processes on free loopback ports, started and stopped by tests.
//!
//! Without `redis-server` on PATH a test is skipped with a printed notice, unless
//! `THROTTLE_REQUIRE_REDIS=1`, where that is a failure.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One standalone (or cluster-enabled) server; stopped and cleaned up on drop.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    cluster: bool,
    /// More `redis-server` arguments (e.g. `--replicaof`).
    extra: Vec<String>,
}

/// Whether `redis-server` is installed; `false` (after a notice) when it is not and
/// not required.
pub fn available() -> bool {
    let found = Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("THROTTLE_REQUIRE_REDIS").as_deref() != Ok("1"),
            "THROTTLE_REQUIRE_REDIS=1 but `redis-server` is not on PATH"
        );
        eprintln!("notice: `redis-server` is not on PATH; skipping this Redis test");
    }
    found
}

/// A loopback port nothing listens on (at the time of asking).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

impl RedisServer {
    /// Starts a standalone server, or `None` when Redis is unavailable (see [`available`]).
    pub fn start() -> Option<Self> {
        available().then(|| Self::spawn(false))
    }

    fn spawn(cluster: bool) -> Self {
        Self::spawn_with(cluster, Vec::new())
    }

    fn spawn_with(cluster: bool, extra: Vec<String>) -> Self {
        // A free port can be taken by another process between the check and the bind
        // (tests run in parallel): a server that exits at once is tried on a new port.
        for _ in 0..4 {
            let port = free_port();
            let dir = std::env::temp_dir().join(format!("throttle-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let mut server = RedisServer { child: None, port, dir, cluster, extra: extra.clone() };
            if server.try_launch() {
                return server;
            }
        }
        panic!("redis-server did not start on four free ports in a row");
    }

    /// Launches on `self.port`; `false` when the server exited without listening.
    fn try_launch(&mut self) -> bool {
        self.spawn_child();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self.child.as_mut().is_some_and(|child| child.try_wait().is_ok_and(|status| status.is_some()));
            if exited {
                self.child = None;
                return false;
            }
            assert!(Instant::now() < deadline, "redis-server did not listen on port {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    fn launch(&mut self) {
        assert!(self.try_launch(), "redis-server exited instead of listening on port {}", self.port);
    }

    fn spawn_child(&mut self) {
        let port = self.port.to_string();
        let socket = self.dir.join("redis.sock").to_string_lossy().into_owned();
        let mut args = vec!["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
        args.extend(["--unixsocket", &socket, "--unixsocketperm", "700"]);
        if self.cluster {
            args.extend(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]);
        }
        args.extend(self.extra.iter().map(String::as_str));
        let child = Command::new("redis-server")
            .args(&args)
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The same server through its Unix socket.
    pub fn unix_url(&self) -> String {
        format!("redis+unix://{}", self.dir.join("redis.sock").display())
    }

    /// Kills the server (connections drop at once).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty: nothing was saved).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Freezes the process (SIGSTOP): connections stay open but nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().expect("kill runs");
        assert!(status.success());
    }

    /// Runs `redis-cli` against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let port = self.port.to_string();
        let output = Command::new("redis-cli").args(["-p", &port]).args(args).output().expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `calls` of a command in `INFO commandstats` (e.g. "evalsha").
    pub fn command_calls(&self, command: &str) -> u64 {
        let stats = self.cli(&["INFO", "commandstats"]);
        let prefix = format!("cmdstat_{command}:calls=");
        stats
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A paused server would not die on SIGKILL until continued on some kernels.
        if let Some(child) = &self.child {
            let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
        }
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three cluster-enabled masters joined with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Option<Self> {
        if !available() {
            return None;
        }
        let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::spawn(true)).collect();
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create runs");
        assert!(output.status.success(), "cluster create failed: {}", String::from_utf8_lossy(&output.stdout));
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            while !node.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "cluster did not become ready");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(RedisCluster { nodes })
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

/// Whether `redis-sentinel` is installed (and `redis-server`); `false` (after a notice)
/// when not and not required.
pub fn sentinel_available() -> bool {
    if !available() {
        return false;
    }
    let found =
        Command::new("redis-sentinel").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("THROTTLE_REQUIRE_REDIS").as_deref() != Ok("1"),
            "THROTTLE_REQUIRE_REDIS=1 but `redis-sentinel` is not on PATH"
        );
        eprintln!("notice: `redis-sentinel` is not on PATH; skipping this Sentinel test");
    }
    found
}

/// One `redis-sentinel` process; stopped and cleaned up on drop.
pub struct SentinelProcess {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl SentinelProcess {
    fn start(master_name: &str, master_port: u16) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("throttle-sentinel-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // Quick to notice a dead master and to finish a failover, so tests stay short.
        let config = format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\nlogfile \"\"\ndir {dir}\n\
             sentinel monitor {master_name} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {master_name} 500\n\
             sentinel failover-timeout {master_name} 3000\n\
             sentinel parallel-syncs {master_name} 1\n",
            dir = dir.display()
        );
        let config_path = dir.join("sentinel.conf");
        std::fs::write(&config_path, config).expect("sentinel.conf");
        let child = Command::new("redis-sentinel")
            .arg(&config_path)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-sentinel starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-sentinel did not listen on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        SentinelProcess { child, port, dir }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs `redis-cli` against this sentinel and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let port = self.port.to_string();
        let output = Command::new("redis-cli").args(["-p", &port]).args(args).output().expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A master, one replica, and three sentinels watching them (quorum 2), each on a free
/// loopback port; ready once the sentinels know the replica and one another.
pub struct RedisSentinelSetup {
    pub master_name: String,
    pub master: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<SentinelProcess>,
}

impl RedisSentinelSetup {
    /// Starts it all, or `None` when Redis or Sentinel is unavailable (see
    /// [`sentinel_available`]).
    pub fn start() -> Option<Self> {
        Self::start_with_master_args(&[])
    }

    /// [`start`](Self::start), with more `redis-server` arguments for the master.
    pub fn start_with_master_args(args: &[&str]) -> Option<Self> {
        if !sentinel_available() {
            return None;
        }
        let master_name = "throttle-master".to_string();
        let master = RedisServer::spawn_with(false, args.iter().map(|arg| arg.to_string()).collect());
        let replica =
            RedisServer::spawn_with(false, vec!["--replicaof".into(), "127.0.0.1".into(), master.port.to_string()]);
        // Linked before the sentinels start: they find replicas in the master's INFO,
        // which they read at once and then only every 10 s.
        wait_until("the replica is linked", || replica.cli(&["INFO", "replication"]).contains("master_link_status:up"));
        let sentinels: Vec<SentinelProcess> =
            (0..3).map(|_| SentinelProcess::start(&master_name, master.port)).collect();
        let replica_port = format!("{}", replica.port);
        for sentinel in &sentinels {
            wait_until("the sentinels know the replica and one another", || {
                sentinel.cli(&["SENTINEL", "CKQUORUM", &master_name]).starts_with("OK 3 usable")
                    && sentinel.cli(&["SENTINEL", "REPLICAS", &master_name]).lines().any(|line| line == replica_port)
            });
        }
        Some(RedisSentinelSetup { master_name, master, replica, sentinels })
    }

    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(SentinelProcess::url).collect()
    }

    /// The master's port according to the first sentinel that answers.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|sentinel| {
            let reply = sentinel.cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &self.master_name]);
            reply.lines().nth(1).and_then(|port| port.trim().parse().ok())
        })
    }

    /// Asks a sentinel to fail over now, the master still running (it is demoted).
    pub fn failover(&self) {
        let reply = self.sentinels[0].cli(&["SENTINEL", "FAILOVER", &self.master_name]);
        assert_eq!(reply.trim(), "OK", "SENTINEL FAILOVER");
    }
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A user strategy: a built-in behind a type of its own, so the Redis backend has no
/// script for it and runs it through compare-and-set, with the built-in's codec.
#[derive(Debug)]
pub struct UserStrategy(pub std::sync::Arc<dyn throttle::strategy::DynStrategy>);

/// [`UserStrategy`]'s state: the built-in's, encoded (so it clones), and its expiry as
/// of the last decision.
#[derive(Default, Clone)]
pub struct UserState {
    inner: Option<Vec<i64>>,
    expires_at: u64,
}

impl throttle::strategy::Strategy for UserStrategy {
    type State = UserState;

    fn name(&self) -> &'static str {
        "user"
    }

    fn decide(
        &self,
        state: &mut UserState,
        now_ms: u64,
        rate: throttle::Rate,
        cost: u64,
    ) -> throttle::strategy::Decision {
        let outcome = self.0.decide_encoded(state.inner.as_deref(), now_ms, rate, cost).expect("a built-in's codec");
        if outcome.decision.allowed {
            *state = UserState { inner: Some(outcome.state), expires_at: outcome.expires_at };
        }
        outcome.decision
    }

    fn stat(&self, state: &UserState, now_ms: u64, rate: throttle::Rate) -> throttle::strategy::Snapshot {
        self.0.stat_encoded(state.inner.as_deref(), now_ms, rate)
    }

    fn expires_at(&self, state: &UserState, _rate: throttle::Rate) -> u64 {
        state.expires_at
    }

    fn capacity(&self, rate: throttle::Rate) -> u64 {
        self.0.capacity(rate)
    }

    fn refund(&self, state: &mut UserState, now_ms: u64, rate: throttle::Rate, cost: u64, since_ms: u64) -> bool {
        match self.0.refund_encoded(state.inner.as_deref(), now_ms, rate, cost, since_ms) {
            Some((inner, expires_at)) => {
                *state = UserState { inner: Some(inner), expires_at };
                true
            }
            None => false,
        }
    }

    fn encode(&self, state: &UserState) -> Option<Vec<i64>> {
        match &state.inner {
            Some(inner) => Some(inner.clone()),
            None => self.0.encode_any(&self.0.new_state()),
        }
    }

    fn decode(&self, fields: &[i64]) -> Option<UserState> {
        self.0.decode_any(fields)?;
        Some(UserState { inner: Some(fields.to_vec()), expires_at: 0 })
    }
}

/// `instances` app instances (one connection each) with `tasks` tasks apiece, every
/// task hitting `key` with cost 1 `hits` times; returns how many hits were admitted.
pub async fn hammer<B: throttle::backend::Backend + Clone>(
    instances: &[B],
    key: &str,
    strategy: std::sync::Arc<dyn throttle::strategy::DynStrategy>,
    rate: throttle::Rate,
    tasks: usize,
    hits: usize,
) -> u64 {
    let mut handles = Vec::new();
    for instance in instances {
        for _ in 0..tasks {
            let (instance, strategy, key) = (instance.clone(), strategy.clone(), key.to_string());
            handles.push(tokio::spawn(async move {
                let mut admitted = 0;
                for _ in 0..hits {
                    let decision = instance
                        .hit(throttle::backend::Hit::new(&key, &*strategy, rate, 1))
                        .await
                        .expect("redis answers");
                    admitted += u64::from(decision.allowed);
                }
                admitted
            }));
        }
    }
    let mut admitted = 0;
    for handle in handles {
        admitted += handle.await.expect("task");
    }
    admitted
}

/// Every built-in strategy with default parameters, and a user strategy (through
/// compare-and-set), with a label.
pub fn every_strategy() -> Vec<(String, std::sync::Arc<dyn throttle::strategy::DynStrategy>)> {
    let mut all: Vec<(String, std::sync::Arc<dyn throttle::strategy::DynStrategy>)> =
        throttle::strategy::StrategyKind::ALL.iter().map(|kind| (kind.name().to_string(), kind.build())).collect();
    let user = UserStrategy(throttle::strategy::StrategyKind::Gcra.build());
    all.push(("user_cas".to_string(), std::sync::Arc::new(user)));
    all
}
