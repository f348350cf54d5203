//! Decisions per second through the Redis backend at 1 and 64 concurrent tasks, beside
//! `redis-benchmark` running the same script (EVALSHA of the same SHA, loaded first)
//! with the same arguments and key space, on the same server, in the same run.
//!
//! `cargo bench -p throttle --features redis --bench redis`
//!
//! The bench starts its own `redis-server` on a free loopback port (and stops it);
//! without `redis-server` and `redis-benchmark` on PATH it prints a notice and exits.
//! `THROTTLE_BENCH_SECS` (default 1) sets the length of each measurement and
//! `THROTTLE_BENCH_ROUNDS` (default 7) how many interleaved rounds are run; medians
//! are reported. Short, many, interleaved rounds keep a shared machine's load spikes
//! from landing on one side only.
//!
//! Both sides decide with Redis server time on random keys out of 100 000, with a
//! quota too large to run out (the write path). Our side is one multiplexed
//! connection on a current-thread tokio runtime (`concurrency` tasks, each awaiting
//! one `Backend::hit` at a time); `redis-benchmark` is one thread with `-c`
//! connections, one request in flight on each. Both keep `concurrency` requests in
//! flight. Since our connection carries all of them on one socket (pipelined), the
//! last column adds `redis-benchmark -c 1 -P 64` (one connection, 64 pipelined) as a
//! reference for that transport.

#[path = "support/redis_server.rs"]
mod redis_server;

use redis_server::{Server, tools_found};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use throttle::Rate;
use throttle::backend::{Backend, RedisBackend};
use throttle::strategy::{DynStrategy, FixedWindow, Gcra};

const KEYS: u64 = 100_000;

/// The script sources exactly as the backend concatenates them (the bench checks that
/// the backend runs the very SHA it loaded).
const PRELUDE: &str = include_str!("../src/backend/redis/lua/prelude.lua");
const MAIN: &str = include_str!("../src/backend/redis/lua/main.lua");
const FIXED_WINDOW: &str = include_str!("../src/backend/redis/lua/fixed_window.lua");
const BUCKET: &str = include_str!("../src/backend/redis/lua/bucket.lua");
const GCRA: &str = include_str!("../src/backend/redis/lua/gcra.lua");

struct Case {
    name: &'static str,
    strategy: Arc<dyn DynStrategy>,
    source: String,
    rate: Rate,
    /// `ARGV[6]`, if the script takes a parameter.
    param: Option<u64>,
}

fn main() {
    if !tools_found(&["redis-server", "redis-cli", "redis-benchmark"]) {
        return;
    }
    let secs: f64 = env_or("THROTTLE_BENCH_SECS", 1.0);
    let rounds: usize = env_or("THROTTLE_BENCH_ROUNDS", 7);
    let measure = Duration::from_secs_f64(secs);

    let server = Server::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let backend = runtime.block_on(RedisBackend::connect(&server.url())).expect("connects");
    let bare = runtime
        .block_on(redis::aio::ConnectionManager::new(redis::Client::open(server.url()).expect("url")))
        .expect("connects");
    let version = server.version();

    let cases = [
        Case {
            name: "fixed_window",
            strategy: Arc::new(FixedWindow),
            source: format!("{PRELUDE}{FIXED_WINDOW}{MAIN}"),
            rate: Rate::per_minute(1_000_000_000),
            param: None,
        },
        Case {
            name: "gcra",
            strategy: Arc::new(Gcra::new()),
            source: format!("{PRELUDE}{BUCKET}{GCRA}{MAIN}"),
            rate: Rate::per_second(1_000_000),
            param: Some(1_000_000),
        },
    ];

    println!("redis-server {version} on 127.0.0.1:{}, {secs} s per measurement, median of {rounds}", server.port);
    println!();
    println!(
        "| strategy | concurrency | throttle (decisions/s) | redis-benchmark EVALSHA (req/s) | ratio \
         | p50 throttle / redis-benchmark (ms) | redis-rs alone (req/s) | redis-benchmark -c 1 -P 64 (req/s) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for case in &cases {
        let sha = server.cli(&["SCRIPT", "LOAD", &case.source]).trim().to_string();
        assert_eq!(sha.len(), 40, "SCRIPT LOAD answered {sha:?}");
        // The backend must run the SHA just loaded: no SCRIPT LOAD of its own.
        let loads = command_calls(&server, "script|load");
        runtime.block_on(async {
            let decision = backend.hit("throttle:bench:warm:default", &*case.strategy, case.rate, 1).await;
            assert!(decision.expect("redis answers").allowed);
        });
        assert_eq!(command_calls(&server, "script|load"), loads, "the backend runs a different script than {sha}");

        for concurrency in [1usize, 64] {
            let mut ours = Vec::new();
            let mut theirs = Vec::new();
            let mut pipelined = Vec::new();
            let mut alone = Vec::new();
            for _ in 0..rounds {
                let (rps, p50) = runtime.block_on(run_ours(&backend, case, concurrency, measure));
                ours.push((rps, p50));
                alone.push((runtime.block_on(run_bare(&bare, &sha, case, concurrency, measure)), 0.0));
                let requests = ((rps * secs) as u64).max(2_000);
                theirs.push(benchmark(&server, &sha, case, concurrency, 1, requests));
                if concurrency > 1 {
                    pipelined.push(benchmark(&server, &sha, case, 1, concurrency, requests));
                }
            }
            let (ours_rps, ours_p50) = median(&mut ours);
            let (theirs_rps, theirs_p50) = median(&mut theirs);
            let alone = median(&mut alone).0;
            let pipelined =
                if pipelined.is_empty() { "-".to_string() } else { format!("{:.0}", median(&mut pipelined).0) };
            println!(
                "| {} | {concurrency} | {ours_rps:.0} | {theirs_rps:.0} | {:.0}% | {ours_p50:.3} / {theirs_p50:.3} \
                 | {alone:.0} | {pipelined} |",
                case.name,
                100.0 * ours_rps / theirs_rps
            );
        }
    }
    println!();
    println!("rounds (decisions/s, ours then redis-benchmark) are interleaved so both see the same machine load");
}

/// The same EVALSHA through a bare redis-rs connection manager, with no throttle code:
/// what the client stack (redis-rs on tokio) costs by itself. Requests per second.
async fn run_bare(
    manager: &redis::aio::ConnectionManager,
    sha: &str,
    case: &Case,
    concurrency: usize,
    measure: Duration,
) -> f64 {
    let started = Instant::now();
    let deadline = started + measure;
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let (mut manager, sha, rate, param) = (manager.clone(), sha.to_string(), case.rate, case.param);
            tokio::spawn(async move {
                let mut rng = 0x2545_f491_4f6c_dd1d_u64 ^ (i as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                let mut calls = 0u64;
                loop {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let mut cmd = redis::cmd("EVALSHA");
                    cmd.arg(&sha).arg(1).arg(format!("throttle:bench:{{{:012}}}:default", rng % KEYS));
                    cmd.arg("").arg(rate.limit()).arg(rate.period_ms()).arg(1).arg(0);
                    if let Some(param) = param {
                        cmd.arg(param);
                    }
                    let reply: Vec<i64> = cmd.query_async(&mut manager).await.expect("redis answers");
                    assert_eq!(reply[0], 1);
                    calls += 1;
                    if Instant::now() >= deadline {
                        return calls;
                    }
                }
            })
        })
        .collect();
    let mut calls = 0;
    for task in tasks {
        calls += task.await.expect("task");
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

/// `concurrency` tasks hitting random keys until `measure` has passed: decisions per
/// second and the median latency in ms.
async fn run_ours(backend: &RedisBackend, case: &Case, concurrency: usize, measure: Duration) -> (f64, f64) {
    let started = Instant::now();
    let deadline = started + measure;
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let (backend, strategy, rate) = (backend.clone(), case.strategy.clone(), case.rate);
            tokio::spawn(async move {
                let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ (i as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                let mut latencies = Vec::with_capacity(1 << 16);
                loop {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let key = format!("throttle:bench:{:012}:default", rng % KEYS);
                    let call = Instant::now();
                    let decision = backend.hit(&key, &*strategy, rate, 1).await.expect("redis answers");
                    latencies.push(call.elapsed());
                    assert!(decision.allowed);
                    if Instant::now() >= deadline {
                        return latencies;
                    }
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let p50 = latencies[latencies.len() / 2].as_secs_f64() * 1_000.0;
    (latencies.len() as f64 / elapsed, p50)
}

fn median(samples: &mut [(f64, f64)]) -> (f64, f64) {
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    samples[samples.len() / 2]
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn command_calls(server: &Server, command: &str) -> u64 {
    server.command_stat(command, "calls") as u64
}

/// `redis-benchmark` running `EVALSHA sha 1 key "" limit period 1 0 [param]` on
/// random keys over `connections` connections with `pipeline` requests in flight on
/// each: requests per second and the median latency in ms.
fn benchmark(
    server: &Server,
    sha: &str,
    case: &Case,
    connections: usize,
    pipeline: usize,
    requests: u64,
) -> (f64, f64) {
    let mut args = vec![
        "-h".to_string(),
        "127.0.0.1".to_string(),
        "-p".to_string(),
        server.port.to_string(),
        "-c".to_string(),
        connections.to_string(),
        "-P".to_string(),
        pipeline.to_string(),
        "-n".to_string(),
        requests.to_string(),
        "-r".to_string(),
        KEYS.to_string(),
        "--csv".to_string(),
        "EVALSHA".to_string(),
        sha.to_string(),
        "1".to_string(),
        "throttle:bench:{__rand_int__}:default".to_string(),
        String::new(),
        case.rate.limit().to_string(),
        case.rate.period_ms().to_string(),
        "1".to_string(),
        "0".to_string(),
    ];
    args.extend(case.param.map(|p| p.to_string()));
    let output = Command::new("redis-benchmark").args(&args).output().expect("redis-benchmark runs");
    let csv = String::from_utf8_lossy(&output.stdout);
    let row = csv.lines().last().unwrap_or_default();
    let fields: Vec<&str> = row.split("\",\"").map(|f| f.trim_matches('"')).collect();
    let parse = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (parse(1), parse(4)) {
        (Some(rps), Some(p50)) => (rps, p50),
        _ => panic!("cannot read redis-benchmark's output: {csv}"),
    }
}
