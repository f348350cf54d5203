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
//! flight on each. Both keep `concurrency` requests in flight. Beside throughput,
//! each cell gives the CPU time per decision of the client (this process, or
//! redis-benchmark) and of redis-server, read from `/proc`: on a shared machine it
//! says what each side costs, whatever share of the CPUs it got. The last column adds
//! `redis-benchmark -c 1 -P 64` (one connection, 64 pipelined) as a reference for the
//! transport our connection uses.

#[path = "support/redis_server.rs"]
mod redis_server;

use redis_server::{Server, tools_found};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use throttle::Rate;
use throttle::backend::{Backend, Batching, DenyCache, Hit, RedisBackend};
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

/// One measurement: throughput, median latency, and CPU time per decision of the
/// client and of redis-server (from `/proc`: what each side spent, whatever share of
/// the machine it got).
#[derive(Clone, Copy, Default)]
struct Sample {
    per_second: f64,
    p50_ms: f64,
    client_us: f64,
    server_us: f64,
}

/// One row: a measurement of ours for each column, and redis-benchmark's.
#[derive(Default)]
struct Row {
    ours: Vec<Vec<Sample>>,
    theirs: Vec<Sample>,
    pipelined: Vec<Sample>,
}

fn main() {
    if !tools_found(&["redis-server", "redis-cli", "redis-benchmark"]) {
        return;
    }
    let secs: f64 = env_or("THROTTLE_BENCH_SECS", 1.0);
    let rounds: usize = env_or("THROTTLE_BENCH_ROUNDS", 7);
    let measure = Duration::from_secs_f64(secs);

    let server = Server::start();
    let cpu = Cpu::new(&server);
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
            let decision = unbatched.hit(Hit::new("throttle:bench:warm:default", &*case.strategy, case.rate, 1)).await;
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
                        assert!(
                            batched
                                .hit(Hit::new(&attacker(n), &*strategy, rate, 1))
                                .await
                                .expect("redis answers")
                                .allowed
                        );
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
            assert!(
                !cached
                    .hit(Hit::new(&attacker(n), &*attack.strategy, attack.rate, 1))
                    .await
                    .expect("redis answers")
                    .allowed
            );
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
                    let ours = cpu
                        .measure(|| runtime.block_on(run_ours(backend, case, Workload::Write, concurrency, measure)));
                    round.push(ours);
                }
                let requests = ((round[0].per_second * secs) as u64).max(2_000);
                row.ours.push(round);
                let key = "throttle:bench:{__rand_int__}:default";
                let run = |connections, pipeline| {
                    cpu.measure(|| benchmark(&server, &shas[c], case, key, KEYS, connections, pipeline, requests))
                };
                row.theirs.push(run(concurrency, 1));
                if concurrency > 1 {
                    row.pipelined.push(run(1, concurrency));
                }
            }
        }
        for (k, &concurrency) in concurrencies.iter().enumerate() {
            let row = &mut attack_rows[k];
            let mut round = Vec::new();
            for backend in [&batched_dyn, &cached] {
                let ours = cpu
                    .measure(|| runtime.block_on(run_ours(backend, &attack, Workload::Attack, concurrency, measure)));
                round.push(ours);
            }
            let requests = ((round[0].per_second * secs) as u64).max(2_000);
            row.ours.push(round);
            let key = "throttle:attack:{__rand_int__}:default";
            row.theirs
                .push(cpu.measure(|| benchmark(&server, &shas[2], &attack, key, ATTACKERS, concurrency, 1, requests)));
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
    println!("- CPU µs per decision: the client's (this process, or redis-benchmark) + redis-server's,");
    println!("  from /proc (10 ms ticks), so it does not depend on the share of the machine each got");
    println!();
    println!("## Write path (every hit admitted)");
    println!();
    println!(
        "| strategy | tasks | throttle, batching off (decisions/s) | throttle, batching on (decisions/s) \
         | redis-benchmark EVALSHA (req/s) | on ÷ redis-benchmark | p50 ms (off / on / redis-benchmark) \
         | CPU µs per decision, client + server (off / on / redis-benchmark) | redis-benchmark `-c 1 -P 64` (req/s) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (c, case) in cases.iter().enumerate() {
        for (k, &concurrency) in concurrencies.iter().enumerate() {
            let row = &write_rows[c * concurrencies.len() + k];
            let (off, on, theirs) = (median(&column(&row.ours, 0)), median(&column(&row.ours, 1)), median(&row.theirs));
            let pipelined = if row.pipelined.is_empty() {
                "–".to_string()
            } else {
                format!("{:.0}", median(&row.pipelined).per_second)
            };
            println!(
                "| `{}` | {concurrency} | {:.0} | {:.0} | {:.0} | **{:.2}×** | {:.3} / {:.3} / {:.3} | {} / {} / {} | {pipelined} |",
                case.name,
                off.per_second,
                on.per_second,
                theirs.per_second,
                on.per_second / theirs.per_second,
                off.p50_ms,
                on.p50_ms,
                theirs.p50_ms,
                cpu_text(&off),
                cpu_text(&on),
                cpu_text(&theirs),
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
         | redis-benchmark EVALSHA, rejections (req/s) | cache ÷ redis-benchmark | p50 ms (no cache / cache / redis-benchmark) \
         | CPU µs per decision, client + server (no cache / cache / redis-benchmark) |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (k, &concurrency) in concurrencies.iter().enumerate() {
        let row = &attack_rows[k];
        let (off, on, theirs) = (median(&column(&row.ours, 0)), median(&column(&row.ours, 1)), median(&row.theirs));
        println!(
            "| {concurrency} | {:.0} | {:.0} | **{:.1}×** | {:.0} | {:.1}× | {:.3} / {:.4} / {:.3} | {} / {} / {} |",
            off.per_second,
            on.per_second,
            on.per_second / off.per_second,
            theirs.per_second,
            on.per_second / theirs.per_second,
            off.p50_ms,
            on.p50_ms,
            theirs.p50_ms,
            cpu_text(&off),
            cpu_text(&on),
            cpu_text(&theirs),
        );
    }
}

fn cpu_text(sample: &Sample) -> String {
    format!("{:.1} + {:.1}", sample.client_us, sample.server_us)
}

/// CPU time of this process, of its waited-for children (redis-benchmark) and of
/// redis-server, from `/proc/*/stat`.
struct Cpu {
    redis_pid: String,
    tick_us: f64,
}

/// CPU ticks so far: (this process, its waited-for children, redis-server).
type Ticks = (u64, u64, u64);

impl Cpu {
    fn new(server: &Server) -> Self {
        let info = server.cli(&["INFO", "server"]);
        let redis_pid =
            info.lines().find_map(|l| l.strip_prefix("process_id:")).expect("process_id").trim().to_string();
        let hz: f64 = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(100.0);
        Cpu { redis_pid, tick_us: 1e6 / hz }
    }

    fn ticks(&self) -> Ticks {
        let own = stat_fields("self");
        let redis = stat_fields(&self.redis_pid);
        (own[11] + own[12], own[13] + own[14], redis[11] + redis[12])
    }

    /// Runs `run` (which returns a sample and how many decisions it made) and adds
    /// the CPU per decision: our process's for a run of ours, redis-benchmark's for one
    /// of its runs, and redis-server's.
    fn measure(&self, run: impl FnOnce() -> (Sample, u64)) -> Sample {
        let before = self.ticks();
        let (mut sample, decisions) = run();
        let after = self.ticks();
        let (own, children, redis) = (after.0 - before.0, after.1 - before.1, after.2 - before.2);
        let client = if children > 0 { children } else { own };
        let per = |ticks: u64| ticks as f64 * self.tick_us / decisions.max(1) as f64;
        sample.client_us = per(client);
        sample.server_us = per(redis);
        sample
    }
}

/// The numeric fields of `/proc/{pid}/stat` after the command name: index 11 is
/// utime, 12 stime, 13 cutime, 14 cstime (in clock ticks).
fn stat_fields(pid: &str) -> Vec<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc is readable");
    let after_name = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_name.split_whitespace().map(|field| field.parse().unwrap_or(0)).collect()
}

/// `concurrency` tasks hitting keys of `workload` until `measure` has passed:
/// decisions per second and the median latency in ms, and how many decisions were made.
/// Panics on a wrong answer.
async fn run_ours(
    backend: &Arc<dyn Backend>,
    case: &Case,
    workload: Workload,
    concurrency: usize,
    measure: Duration,
) -> (Sample, u64) {
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
                    let decision = backend.hit(Hit::new(&key, &*strategy, rate, 1)).await.expect("redis answers");
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
    let p50_ms = latencies[latencies.len() / 2].as_secs_f64() * 1_000.0;
    let decisions = latencies.len() as u64;
    (Sample { per_second: decisions as f64 / elapsed, p50_ms, ..Sample::default() }, decisions)
}

fn column(rounds: &[Vec<Sample>], index: usize) -> Vec<Sample> {
    rounds.iter().map(|round| round[index]).collect()
}

/// The median of each figure on its own.
fn median(samples: &[Sample]) -> Sample {
    let of = |field: fn(&Sample) -> f64| {
        let mut values: Vec<f64> = samples.iter().map(field).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    Sample {
        per_second: of(|s| s.per_second),
        p50_ms: of(|s| s.p50_ms),
        client_us: of(|s| s.client_us),
        server_us: of(|s| s.server_us),
    }
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
/// in ms, and how many requests were made.
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
) -> (Sample, u64) {
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
    // A run that prints no result row (seen once on a starved machine) is run again.
    let mut failures = Vec::new();
    for _ in 0..3 {
        let output = Command::new("redis-benchmark").args(&args).output().expect("redis-benchmark runs");
        let csv = String::from_utf8_lossy(&output.stdout);
        let row = csv.lines().last().unwrap_or_default();
        let fields: Vec<&str> = row.split("\",\"").map(|f| f.trim_matches('"')).collect();
        let parse = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        if let (Some(per_second), Some(p50_ms)) = (parse(1), parse(4)) {
            return (Sample { per_second, p50_ms, ..Sample::default() }, requests);
        }
        failures.push(format!("{}: {csv} {}", output.status, String::from_utf8_lossy(&output.stderr)));
    }
    panic!("cannot read redis-benchmark's output for {args:?}: {failures:#?}")
}
