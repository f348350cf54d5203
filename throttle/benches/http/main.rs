//! Requests per second over real sockets: bare axum, throttle's four ways in
//! (`#[throttle]` with and without headers, `ThrottleLayer`, the direct API) and
//! tower_governor and axum-governor, on the allow and deny paths, for one hot client and
//! for 10,000 clients, in memory and on Redis.
//!
//! `cargo bench -p throttle --features redis --bench http` (or `throttle/benches/http.sh`,
//! which installs `wrk` and `redis-server` first when they are missing).
//!
//! Each server is this binary re-run as `serve <server> <path> <backend>`, in its own
//! process pinned to one core (`taskset -c 0`); `wrk -t1 -c32` runs pinned to the other
//! (`taskset -c 1`), and the Redis server, when used, shares the server's core, so one
//! core does all the serving and wrk's core stays the load generator's. Every
//! measurement starts a fresh server (and an empty Redis), warms it up with the same
//! load (which also spends every deny-path client's one request), then measures. Rounds
//! are interleaved (round 1: every case, round 2: every case, ...) and the table gives
//! medians and the ratio to bare axum under the same client load.
//!
//! Clients are told apart by the `x-client` header in every limiter (wrk connects from
//! one address): one value for the hot client, 10,000 rotating values (a Lua script)
//! for many clients.
//!
//! Environment:
//! - `THROTTLE_HTTP_QUICK=1`: a smoke test (1 round, 1 s runs), the chart
//!   written to the temp dir instead of `benchmarks/http.svg`.
//! - `THROTTLE_HTTP_ROUNDS` (3), `THROTTLE_HTTP_SECS` (4), `THROTTLE_HTTP_WARMUP_SECS` (1),
//!   `THROTTLE_HTTP_CONNECTIONS` (32), `THROTTLE_HTTP_CLIENTS` (10000).
//! - `THROTTLE_HTTP_BACKENDS` (`memory,redis`), `THROTTLE_HTTP_SERVER_CPU` (0),
//!   `THROTTLE_HTTP_CLIENT_CPU` (1), `THROTTLE_HTTP_CHART` (where the SVG goes).
//! - `THROTTLE_HTTP_NICE` (-20): the niceness of servers, redis-server and wrk, each in
//!   a session (and scheduler autogroup) of its own. On a shared machine other work
//!   then gets a few percent of the two pinned cores while a case runs, instead of
//!   most of them; it needs root or CAP_SYS_NICE, and without them the bench says so
//!   and runs at the default priority. `0` leaves priorities alone.
//! - `THROTTLE_HTTP_QUIET_WAIT_SECS` (0): before each case, wait up to this long for
//!   other work on the machine to stop (fewer than half a core's worth of runnable
//!   threads over a second). Each case records how busy the machine was.

mod chart;
mod load;
mod quiet;
mod redis_server;
mod report;
mod serve;
mod servers;

use load::{Clients, Load};
use redis_server::RedisServer;
use report::{Backend, Case, Results};
use servers::{Path, Server};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        serve::run(&args[1..]);
        return;
    }
    let mut settings = Settings::from_env();
    for tool in ["wrk", "taskset", "setsid", "nice"]
        .into_iter()
        .chain(settings.redis.then_some("redis-server"))
        .chain(settings.redis.then_some("redis-cli"))
    {
        if !on_path(tool) {
            eprintln!("notice: `{tool}` is not on PATH; run throttle/benches/http.sh, which installs it");
            return;
        }
    }
    settings.check_nice();
    let started = Instant::now();
    let redis = settings.redis.then(|| RedisServer::start(&settings));
    let mut machine = report::Machine::probe(redis.as_ref().map(RedisServer::version));
    let load = Load::new(&settings);
    let cases = cases(&settings);
    eprintln!(
        "{} cases × {} rounds, {} s each after {} s of warm-up: about {:.0} min",
        cases.len(),
        settings.rounds,
        settings.measure_secs,
        settings.warmup_secs,
        (cases.len() * settings.rounds) as f64 * (settings.measure_secs + settings.warmup_secs) as f64 * 1.05 / 60.0
    );

    let mut results = Results::default();
    for round in 1..=settings.rounds {
        for case in &cases {
            if case.backend == Backend::Redis {
                redis.as_ref().expect("redis runs when a case needs it").flush();
            }
            let sample = serve::measure(case, redis.as_ref(), &settings, &load);
            eprintln!(
                "round {round}: {} {:.0} req/s, server CPU {:.0} %",
                case.describe(),
                sample.requests_per_second,
                100.0 * sample.server_cpu
            );
            results.record(*case, sample);
        }
    }

    machine.finish();
    println!("{}", results.markdown(&settings, &machine));
    let chart = chart::svg(&results, &settings, &machine);
    let written = settings.chart.parent().map_or(Ok(()), std::fs::create_dir_all);
    match written.and_then(|()| std::fs::write(&settings.chart, chart)) {
        Ok(()) => eprintln!("chart written to {}", settings.chart.display()),
        Err(error) => eprintln!("cannot write the chart to {}: {error}", settings.chart.display()),
    }
    eprintln!("the run took {:.1} min", started.elapsed().as_secs_f64() / 60.0);
}

/// Every case of one round, in the order they run.
fn cases(settings: &Settings) -> Vec<Case> {
    let mut cases = Vec::new();
    for clients in [Clients::Hot, Clients::Many] {
        for server in Server::ALL {
            let backends: &[Backend] = match (server.is_throttle(), settings.redis) {
                (true, true) => &[Backend::Memory, Backend::Redis],
                _ => &[Backend::Memory],
            };
            let paths: &[Path] = if server.limits() { &[Path::Allow, Path::Deny] } else { &[Path::Allow] };
            for &backend in backends {
                for &path in paths {
                    cases.push(Case { server, path, clients, backend });
                }
            }
        }
    }
    cases
}

/// The run's parameters, from the environment.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) quick: bool,
    pub(crate) rounds: usize,
    /// wrk takes whole seconds.
    pub(crate) measure_secs: u64,
    pub(crate) warmup_secs: u64,
    pub(crate) connections: usize,
    pub(crate) clients: usize,
    pub(crate) redis: bool,
    pub(crate) server_cpu: String,
    pub(crate) client_cpu: String,
    pub(crate) chart: PathBuf,
    /// How long each case may wait for the machine to be quiet.
    pub(crate) quiet_wait_secs: u64,
    /// The niceness of servers, redis-server and wrk (0: no change).
    pub(crate) nice: i32,
}

impl Settings {
    fn from_env() -> Settings {
        let quick = std::env::var("THROTTLE_HTTP_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let chart = match std::env::var_os("THROTTLE_HTTP_CHART") {
            Some(path) => PathBuf::from(path),
            None if quick => std::env::temp_dir().join("throttle-http-quick.svg"),
            None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../benchmarks/http.svg"),
        };
        let backends = std::env::var("THROTTLE_HTTP_BACKENDS").unwrap_or_else(|_| "memory,redis".into());
        Settings {
            quick,
            rounds: env_or("THROTTLE_HTTP_ROUNDS", if quick { 1 } else { 3 }),
            measure_secs: env_or("THROTTLE_HTTP_SECS", if quick { 1 } else { 4 }),
            warmup_secs: env_or("THROTTLE_HTTP_WARMUP_SECS", 1),
            connections: env_or("THROTTLE_HTTP_CONNECTIONS", 32),
            clients: env_or("THROTTLE_HTTP_CLIENTS", 10_000),
            redis: backends.split(',').any(|b| b.trim() == "redis"),
            server_cpu: env_or("THROTTLE_HTTP_SERVER_CPU", "0".to_string()),
            client_cpu: env_or("THROTTLE_HTTP_CLIENT_CPU", "1".to_string()),
            chart,
            quiet_wait_secs: env_or("THROTTLE_HTTP_QUIET_WAIT_SECS", 0),
            nice: env_or("THROTTLE_HTTP_NICE", -20),
        }
    }

    /// A command that runs its arguments pinned to `cpu` at the bench's priority:
    /// `setsid nice -n N taskset -c CPU ...`, all of which exec, so the child's id is
    /// the program's. Its own session puts it in its own scheduler autogroup, whose
    /// niceness [`Settings::raise`] then sets: with autogroups on, a process's niceness
    /// only weighs against its own session, and other sessions share the core equally.
    pub(crate) fn pinned(&self, cpu: &str) -> Command {
        let mut command = Command::new("setsid");
        command.args(["nice", "-n", &self.nice.to_string(), "taskset", "-c", cpu]);
        command
    }

    /// Gives a child made by [`Settings::pinned`] the bench's niceness for its whole
    /// autogroup (where the kernel has autogroups; elsewhere `nice` did it).
    pub(crate) fn raise(&self, pid: u32) {
        if self.nice == 0 {
            return;
        }
        // Until `setsid` has run, the child is still in this process's autogroup.
        let deadline = Instant::now() + Duration::from_secs(2);
        while quiet::session_of(pid) != Some(pid) {
            if Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = std::fs::write(format!("/proc/{pid}/autogroup"), self.nice.to_string());
    }

    /// Drops the priority change when this user may not make it (not root, no
    /// CAP_SYS_NICE), rather than have `nice` warn on every process.
    fn check_nice(&mut self) {
        let probe = Command::new("nice").args(["-n", &self.nice.to_string(), "true"]).output();
        if !probe.is_ok_and(|o| o.status.success() && o.stderr.is_empty()) {
            eprintln!("notice: cannot run at niceness {}; measuring at the default priority", self.nice);
            self.nice = 0;
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn on_path(tool: &str) -> bool {
    let probe = Command::new("sh").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status();
    probe.is_ok_and(|status| status.success())
}
