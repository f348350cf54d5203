//! Decisions per second through the Redis backend, each beside `redis-benchmark`
//! running the same single-decision script (EVALSHA of the same SHA, loaded first)
//! with the same arguments and key space, at the same concurrency, on the same
//! server, in the same run. One command prints the whole table of BENCHMARKS.md:
//!
//! `cargo bench -p throttle --features redis --bench redis`
//!
//! - **write path**: random keys out of 100 000 with a quota too large to run out, at
//!   1 and 64 tasks, with batching off (`Batching::OFF`: one script call per decision)
//!   and on (`Batching::default()`).
//! - **deny-heavy attack**: 95 % of hits from 1 000 clients already over their limit
//!   (fixed window, 20 a day), 5 % from clients out of a million, under their limit;
//!   without and with a `DenyCache` (both batched; the cache has met each attacker
//!   once before, as during an attack that goes on). redis-benchmark runs the same
//!   script on the over-limit clients (every call a rejection).
//!
//! The bench starts its own `redis-server` on a free loopback port (and stops it);
//! without `redis-server` and `redis-benchmark` on PATH it prints a notice and exits.
//! `THROTTLE_BENCH_SECS` (default 1) sets the length of each measurement and
//! `THROTTLE_BENCH_ROUNDS` (default 7) how many interleaved rounds are run; medians
//! are reported. Short, many, interleaved rounds keep a shared machine's load spikes
//! from landing on one side only. `THROTTLE_BENCH_BATCHING=64,4` batches with
//! `Batching::new(64, 4)` instead of `Batching::default()`.
//!
//! Our side is one multiplexed connection on a current-thread tokio runtime
//! (`concurrency` tasks, each awaiting one `Backend::hit` at a time);
//! `redis-benchmark` is one thread with `-c concurrency` connections, one request in
//! flight on each. Both keep `concurrency` requests in flight. The last column adds
//! `redis-benchmark -c 1 -P 64` (one connection, 64 pipelined) as a reference for the
//! transport our connection uses.

#[path = "support/redis_server.rs"]
mod redis_server;

use redis_server::{Server, tools_found};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use throttle::Rate;
use throttle::backend::{Backend, Batching, DenyCache, RedisBackend};
use throttle::strategy::{DynStrategy, FixedWindow, Gcra};

/// Keys of the write path, and of the clients under their limit in the attack.
const KEYS: u64 = 100_000;
const LEGIT_KEYS: u64 = 1_000_000;
/// Clients over their limit in the attack.
const ATTACKERS: u64 = 1_000;
/// Hits out of 100 sent by attackers.
const ATTACK_PERCENT: u64 = 95;
const ATTACK_LIMIT: u64 = 20;

/// The script sources exactly as the backend concatenates them (the bench checks that
/// the backend runs the very SHA it loaded).
const PRELUDE: &str = include_str!("../src/backend/redis/lua/prelude.lua");
const MAIN: &str = include_str!("../src/backend/redis/lua/main.lua");
const FIXED_WINDOW: &str = include_str!("../src/backend/redis/lua/fixed_window.lua");
const BUCKET: &str = include_str!("../src/backend/redis/lua/bucket.lua");
const GCRA: &str = include_str!("../src/backend/redis/lua/gcra.lua");

/// A strategy, its single-decision script and the arguments both sides send.
struct Case {
    name: &'static str,
    strategy: Arc<dyn DynStrategy>,
    source: String,
    rate: Rate,
    /// `ARGV[6]`, if the script takes a parameter.
    param: Option<u64>,
}

/// Which keys a task hits.
#[derive(Clone, Copy)]
enum Workload {
    /// Random keys out of [`KEYS`], all admitted.
    Write,
    /// [`ATTACK_PERCENT`] % on the [`ATTACKERS`] over-limit keys, the rest on fresh ones.
    Attack,
}

impl Workload {
    /// The key of the next hit, and whether it must be admitted.
    fn next(self, rng: &mut u64) -> (String, bool) {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        match self {
            Workload::Write => (format!("throttle:bench:{:012}:default", *rng % KEYS), true),
            Workload::Attack if (*rng >> 32) % 100 < ATTACK_PERCENT => (attacker(*rng % ATTACKERS), false),
            Workload::Attack => (format!("throttle:legit:{:012}:default", *rng % LEGIT_KEYS), true),
        }
    }
}

/// The `n`th over-limit client's key, as redis-benchmark's `{__rand_int__}` names it
/// once stored (the backend makes the client segment the hash tag).
fn attacker(n: u64) -> String {
    format!("throttle:attack:{n:012}:default")
}

/// One row: a measurement of ours for each column, and redis-benchmark's.
#[derive(Default)]
struct Row {
    ours: Vec<Vec<(f64, f64)>>,
    theirs: Vec<(f64, f64)>,
    pipelined: Vec<(f64, f64)>,
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
    let connect = |batching: Batching| {
        let redis = runtime.block_on(RedisBackend::connect(&server.url())).expect("connects");
        redis.with_batching(batching)
    };
    let unbatched = connect(Batching::OFF);
    let batching = match env_or("THROTTLE_BENCH_BATCHING", String::new()).split_once(',') {
        Some((decisions, in_flight)) => Batching::new(
            decisions.parse().expect("THROTTLE_BENCH_BATCHING: decisions,calls"),
            in_flight.parse().expect("THROTTLE_BENCH_BATCHING: decisions,calls"),
        )
        .expect("valid batching"),
        None => Batching::default(),
    };
    let batched = connect(batching);
    let plain: Arc<dyn Backend> = Arc::new(unbatched.clone());
    let batched_dyn: Arc<dyn Backend> = Arc::new(batched.clone());

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
    let attack = Case {
        name: "fixed_window",
        strategy: Arc::new(FixedWindow),
        source: format!("{PRELUDE}{FIXED_WINDOW}{MAIN}"),
        rate: Rate::per_day(ATTACK_LIMIT),
        param: None,
    };
    let mut shas = Vec::new();
    for case in cases.iter().chain([&attack]) {
        let sha = server.cli(&["SCRIPT", "LOAD", &case.source]).trim().to_string();
        assert_eq!(sha.len(), 40, "SCRIPT LOAD answered {sha:?}");
        // The backend must run the SHA just loaded: no SCRIPT LOAD of its own.
        let loads = command_calls(&server, "script|load");
        runtime.block_on(async {
            let decision = unbatched.hit("throttle:bench:warm:default", &*case.strategy, case.rate, 1).await;
            assert!(decision.expect("redis answers").allowed);
        });
        assert_eq!(command_calls(&server, "script|load"), loads, "the backend runs a different script than {sha}");
        shas.push(sha);
    }
    // The attackers spend their quota (the batch script loads here too).
    runtime.block_on(async {
        let tasks: Vec<_> = (0..ATTACKERS)
            .map(|n| {
                let (batched, strategy, rate) = (batched.clone(), attack.strategy.clone(), attack.rate);
                tokio::spawn(async move {
                    for _ in 0..ATTACK_LIMIT {
                        assert!(batched.hit(&attacker(n), &*strategy, rate, 1).await.expect("redis answers").allowed);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    });

    // The cache has met every attacker once: the steady state of an attack that goes on
    // (their rejections last until the end of the day).
    let cached: Arc<dyn Backend> = Arc::new(DenyCache::new(batched.clone()));
    runtime.block_on(async {
        for n in 0..ATTACKERS {
            assert!(!cached.hit(&attacker(n), &*attack.strategy, attack.rate, 1).await.expect("redis answers").allowed);
        }
    });

    // Write rows: (case, concurrency) x [unbatched, batched]; attack rows: concurrency
    // x [no cache, deny cache].
    let concurrencies = [1usize, 64];
    let mut write_rows: Vec<Row> = (0..cases.len() * concurrencies.len()).map(|_| Row::default()).collect();
    let mut attack_rows: Vec<Row> = concurrencies.iter().map(|_| Row::default()).collect();
    let started = load_average();
    for _ in 0..rounds {
        for (c, case) in cases.iter().enumerate() {
            for (k, &concurrency) in concurrencies.iter().enumerate() {
                let row = &mut write_rows[c * concurrencies.len() + k];
                let mut round = Vec::new();
                for backend in [&plain, &batched_dyn] {
                    round.push(runtime.block_on(run_ours(backend, case, Workload::Write, concurrency, measure)));
                }
                row.ours.push(round);
                let requests = ((row.ours.last().map_or(0.0, |r| r[0].0) * secs) as u64).max(2_000);
                let key = "throttle:bench:{__rand_int__}:default";
                row.theirs.push(benchmark(&server, &shas[c], case, key, KEYS, concurrency, 1, requests));
                if concurrency > 1 {
                    row.pipelined.push(benchmark(&server, &shas[c], case, key, KEYS, 1, concurrency, requests));
                }
            }
        }
        for (k, &concurrency) in concurrencies.iter().enumerate() {
            let row = &mut attack_rows[k];
            let mut round = Vec::new();
            for backend in [&batched_dyn, &cached] {
                round.push(runtime.block_on(run_ours(backend, &attack, Workload::Attack, concurrency, measure)));
            }
            row.ours.push(round);
            let requests = ((row.ours.last().map_or(0.0, |r| r[0].0) * secs) as u64).max(2_000);
            let key = "throttle:attack:{__rand_int__}:default";
            row.theirs.push(benchmark(&server, &shas[2], &attack, key, ATTACKERS, concurrency, 1, requests));
        }
    }
    let ended = load_average();

    println!("## Machine");
    println!();
    println!("- CPU: {} x {}", available_cpus(), cpu_model());
    println!("- redis-server {} on 127.0.0.1:{} (not pinned, shares the CPUs)", server.version(), server.port);
    println!("- load average (1 min) {started} at the start, {ended} at the end");
    println!("- {secs} s per measurement, median of {rounds} interleaved rounds");
    println!(
        "- batching: up to {} decisions per call, {} calls in flight",
        batching.max_decisions(),
        batching.max_calls_in_flight()
    );
    println!();
    println!("## Write path (every hit admitted)");
    println!();
    println!(
        "| strategy | tasks | throttle, batching off (decisions/s) | throttle, batching on (decisions/s) \
         | redis-benchmark EVALSHA (req/s) | on ÷ redis-benchmark | p50 ms (off / on / redis-benchmark) \
         | redis-benchmark `-c 1 -P 64` (req/s) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (c, case) in cases.iter().enumerate() {
        for (k, &concurrency) in concurrencies.iter().enumerate() {
            let row = &mut write_rows[c * concurrencies.len() + k];
            let (off, on) = (median(&mut column(&row.ours, 0)), median(&mut column(&row.ours, 1)));
            let theirs = median(&mut row.theirs);
            let pipelined = if row.pipelined.is_empty() {
                "–".to_string()
            } else {
                format!("{:.0}", median(&mut row.pipelined).0)
            };
            println!(
                "| `{}` | {concurrency} | {:.0} | {:.0} | {:.0} | **{:.2}×** | {:.3} / {:.3} / {:.3} | {pipelined} |",
                case.name,
                off.0,
                on.0,
                theirs.0,
                on.0 / theirs.0,
                off.1,
                on.1,
                theirs.1
            );
        }
    }
    println!();
    println!(
        "## Deny-heavy attack ({ATTACK_PERCENT} % of hits from {ATTACKERS} clients over a limit of {ATTACK_LIMIT}/day)"
    );
    println!();
    println!(
        "| tasks | throttle, no cache (decisions/s) | throttle, deny cache (decisions/s) | cache ÷ no cache \
         | redis-benchmark EVALSHA, rejections (req/s) | cache ÷ redis-benchmark | p50 ms (no cache / cache / redis-benchmark) |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (k, &concurrency) in concurrencies.iter().enumerate() {
        let row = &mut attack_rows[k];
        let (off, on) = (median(&mut column(&row.ours, 0)), median(&mut column(&row.ours, 1)));
        let theirs = median(&mut row.theirs);
        println!(
            "| {concurrency} | {:.0} | {:.0} | **{:.1}×** | {:.0} | {:.1}× | {:.3} / {:.4} / {:.3} |",
            off.0,
            on.0,
            on.0 / off.0,
            theirs.0,
            on.0 / theirs.0,
            off.1,
            on.1,
            theirs.1
        );
    }
}

/// `concurrency` tasks hitting keys of `workload` until `measure` has passed:
/// decisions per second and the median latency in ms. Panics on a wrong answer.
async fn run_ours(
    backend: &Arc<dyn Backend>,
    case: &Case,
    workload: Workload,
    concurrency: usize,
    measure: Duration,
) -> (f64, f64) {
    let started = Instant::now();
    let deadline = started + measure;
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let (backend, strategy, rate) = (backend.clone(), case.strategy.clone(), case.rate);
            tokio::spawn(async move {
                let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ (i as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                rng ^= started.elapsed().as_nanos() as u64; // other keys each round
                let mut latencies = Vec::with_capacity(1 << 16);
                loop {
                    let (key, admitted) = workload.next(&mut rng);
                    let call = Instant::now();
                    let decision = backend.hit(&key, &*strategy, rate, 1).await.expect("redis answers");
                    latencies.push(call.elapsed());
                    assert_eq!(decision.allowed, admitted, "{key}");
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

fn column(rounds: &[Vec<(f64, f64)>], index: usize) -> Vec<(f64, f64)> {
    rounds.iter().map(|round| round[index]).collect()
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

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "?".to_string())
}

fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `redis-benchmark` running `EVALSHA sha 1 key "" limit period 1 0 [param]` on
/// `key` (with `{__rand_int__}` out of `keys`) over `connections` connections with
/// `pipeline` requests in flight on each: requests per second and the median latency
/// in ms.
#[allow(clippy::too_many_arguments)]
fn benchmark(
    server: &Server,
    sha: &str,
    case: &Case,
    key: &str,
    keys: u64,
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
        keys.to_string(),
        "--csv".to_string(),
        "EVALSHA".to_string(),
        sha.to_string(),
        "1".to_string(),
        key.to_string(),
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
