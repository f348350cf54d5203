//! Redis CPU per decision on a full bucket, for every built-in strategy at limits of
//! 100 and 5 000 per hour: what one client sending rejected requests costs the server.
//!
//! `cargo bench -p throttle --features redis --bench redis_cost`
//!
//! The bench starts its own `redis-server` on a free loopback port (and stops it);
//! without `redis-server` and `redis-cli` on PATH it prints a notice and exits.
//!
//! For each strategy and limit, one key is filled through `RedisBackend` (decisions
//! on a `ManualClock` advanced 1 ms per hit, so every admitted hit lands in its own
//! millisecond: the sliding log's worst case) until the first rejection. Then, after
//! `CONFIG RESETSTAT`, `THROTTLE_BENCH_CALLS` (default 300) more hits are sent at that
//! moment, all rejected, and `usec_per_call` of `evalsha` is read from
//! `INFO commandstats`: server-side time per decision, the client excluded.
//!
//! The "admit" column runs the same number of admitted hits on the full key, each at
//! the earliest moment it fits (found by an in-memory twin on the same clock, so Redis
//! sees admitted hits only): a client that keeps the bucket full, where the sliding
//! log ages one entry out per hit and the queue drains one. "bytes" is `MEMORY USAGE`
//! summed over the bucket's keys once full.
//!
//! `THROTTLE_BENCH_ROUNDS` (default 7) rounds visit every cell in turn, and each cell
//! reports its median: Redis measures wall time, so a load spike from another
//! process lands in one round of every cell rather than in all rounds of one.
//! `THROTTLE_BENCH_STRATEGIES=fixed_window,gcra` restricts the strategies.

#[path = "support/redis_server.rs"]
mod redis_server;

use redis_server::{Server, tools_found};
use std::sync::Arc;
use std::time::Duration;
use throttle::backend::{Backend, Hit, RedisBackend};
use throttle::strategy::{DynStrategy, StrategyKind};
use throttle::{
    Rate,
    backend::{ManualClock, MemoryBackend},
};

/// Far from the epoch, like a real clock.
const T0: u64 = 1_760_000_000_000;

/// One strategy at one limit: its full key and the in-memory twin that finds when
/// the next hit fits.
struct Cell {
    strategy: Arc<dyn DynStrategy>,
    name: &'static str,
    rate: Rate,
    key: String,
    client: String,
    clock: ManualClock,
    redis: RedisBackend,
    twin: MemoryBackend,
    filled: u64,
    bytes: u64,
    reject_usec: Vec<f64>,
    admit_usec: Vec<f64>,
}

fn main() {
    if !tools_found(&["redis-server", "redis-cli"]) {
        return;
    }
    let calls: u64 = env_or("THROTTLE_BENCH_CALLS", 300);
    let rounds: usize = env_or("THROTTLE_BENCH_ROUNDS", 7);
    let only: String = env_or("THROTTLE_BENCH_STRATEGIES", String::new());
    let kinds: Vec<StrategyKind> = StrategyKind::ALL
        .into_iter()
        .filter(|kind| only.is_empty() || only.split(',').any(|name| name == kind.name()))
        .collect();
    let server = Server::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let backend = runtime.block_on(RedisBackend::connect(&server.url())).expect("connects");

    let mut cells = Vec::new();
    for limit in [100, 5_000] {
        for &kind in &kinds {
            cells.push(runtime.block_on(fill(&server, &backend, kind, limit)));
        }
    }
    for _ in 0..rounds {
        for cell in &mut cells {
            let usec = runtime.block_on(reject(&server, cell, calls));
            cell.reject_usec.push(usec);
        }
    }
    for _ in 0..rounds {
        for cell in &mut cells {
            let usec = runtime.block_on(admit(&server, cell, calls));
            cell.admit_usec.push(usec);
        }
    }

    println!(
        "redis-server {} on 127.0.0.1:{}, {calls} calls per cell and round, median of {rounds} rounds",
        server.version(),
        server.port
    );
    println!();
    println!("| strategy | limit /h | admitted to fill | reject µs/call | × fixed window | admit µs/call | bytes |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for cell in &cells {
        let reject = median(&cell.reject_usec);
        let fixed = cells.iter().find(|c| c.rate == cell.rate && c.name == "fixed_window");
        let ratio = fixed.map_or("–".to_string(), |fixed| format!("{:.2}×", reject / median(&fixed.reject_usec)));
        println!(
            "| `{}` | {} | {} | {reject:.1} | {ratio} | {:.1} | {} |",
            cell.name,
            cell.rate.limit(),
            cell.filled,
            median(&cell.admit_usec),
            cell.bytes
        );
    }
}

/// A key of `kind` at `limit` per hour, filled with one admitted hit per millisecond
/// until the first rejection.
async fn fill(server: &Server, backend: &RedisBackend, kind: StrategyKind, limit: u64) -> Cell {
    let strategy = kind.build();
    let rate = Rate::per_hour(limit);
    let clock = ManualClock::new(T0);
    let redis = backend.clone().with_clock(clock.clone());
    let twin = MemoryBackend::builder().clock(clock.clone()).build().expect("backend");
    let client = format!("{}-{limit}", kind.name());
    let key = format!("throttle:cost:{client}:default");
    let mut filled = 0;
    loop {
        let decision = redis.hit(Hit::new(&key, &*strategy, rate, 1)).await.expect("redis answers");
        assert_eq!(decision, twin.hit_now(&key, &*strategy, rate, 1), "{client}: fill");
        if !decision.allowed {
            break;
        }
        filled += 1;
        clock.advance(Duration::from_millis(1));
    }
    let bytes = bucket_bytes(server, &client);
    let (reject_usec, admit_usec) = (Vec::new(), Vec::new());
    Cell { strategy, name: kind.name(), rate, key, client, clock, redis, twin, filled, bytes, reject_usec, admit_usec }
}

/// `calls` rejected hits on the full key: Redis's time per call, in µs.
async fn reject(server: &Server, cell: &Cell, calls: u64) -> f64 {
    server.cli(&["CONFIG", "RESETSTAT"]);
    for _ in 0..calls {
        let decision = cell.redis.hit(Hit::new(&cell.key, &*cell.strategy, cell.rate, 1)).await.expect("redis answers");
        assert!(!decision.allowed, "{}: reject", cell.client);
    }
    assert_eq!(server.command_stat("evalsha", "calls") as u64, calls, "{}: one EVALSHA per decision", cell.client);
    server.command_stat("evalsha", "usec_per_call")
}

/// `calls` admitted hits, each at the earliest moment it fits as the twin finds it,
/// then replayed on Redis: Redis's time per call, in µs.
async fn admit(server: &Server, cell: &Cell, calls: u64) -> f64 {
    let mut moments = Vec::with_capacity(calls as usize);
    for _ in 0..calls {
        loop {
            let decision = cell.twin.hit_now(&cell.key, &*cell.strategy, cell.rate, 1);
            if decision.allowed {
                moments.push(cell.clock.now_ms());
                break;
            }
            cell.clock.advance(Duration::from_millis(decision.wait_ms));
        }
    }
    server.cli(&["CONFIG", "RESETSTAT"]);
    for at in moments {
        cell.clock.set(at);
        let decision = cell.redis.hit(Hit::new(&cell.key, &*cell.strategy, cell.rate, 1)).await.expect("redis answers");
        assert!(decision.allowed, "{}: admit", cell.client);
    }
    server.command_stat("evalsha", "usec_per_call")
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `MEMORY USAGE` summed over the keys of one client's bucket.
fn bucket_bytes(server: &Server, client: &str) -> u64 {
    let keys = server.cli(&["--scan", "--pattern", &format!("*{{{client}}}*")]);
    keys.lines()
        .map(|key| server.cli(&["MEMORY", "USAGE", key.trim(), "SAMPLES", "0"]).trim().parse::<u64>().unwrap_or(0))
        .sum()
}
