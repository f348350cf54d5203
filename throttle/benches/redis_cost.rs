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
//! `CONFIG RESETSTAT`, `THROTTLE_BENCH_CALLS` (default 500) more hits are sent at that
//! moment, all rejected, and `usec_per_call` of `evalsha` is read from
//! `INFO commandstats`: server-side CPU per decision, the client excluded.
//!
//! The "admit" column runs the same number of admitted hits on the full key, each at
//! the earliest moment it fits (found by an in-memory twin on the same clock, so Redis
//! sees admitted hits only): a client that keeps the bucket full, where the sliding
//! log ages one entry out per hit. "bytes" is `MEMORY USAGE` summed over the
//! bucket's keys once full.

#[path = "support/redis_server.rs"]
mod redis_server;

use redis_server::{Server, tools_found};
use std::time::Duration;
use throttle::backend::{Backend, RedisBackend};
use throttle::strategy::StrategyKind;
use throttle::{ManualClock, MemoryBackend, Rate};

/// Far from the epoch, like a real clock.
const T0: u64 = 1_760_000_000_000;

struct Row {
    strategy: &'static str,
    limit: u64,
    filled: u64,
    reject_usec: f64,
    admit_usec: f64,
    bytes: u64,
}

fn main() {
    if !tools_found(&["redis-server", "redis-cli"]) {
        return;
    }
    let calls: u64 = std::env::var("THROTTLE_BENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let server = Server::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let backend = runtime.block_on(RedisBackend::connect(&server.url())).expect("connects");

    let mut rows = Vec::new();
    for limit in [100, 5_000] {
        for kind in StrategyKind::ALL {
            rows.push(runtime.block_on(measure(&server, &backend, kind, limit, calls)));
        }
    }

    println!("redis-server {} on 127.0.0.1:{}, {calls} calls per cell", server.version(), server.port);
    println!();
    println!("| strategy | limit /h | admitted to fill | reject µs/call | × fixed window | admit µs/call | bytes |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in &rows {
        let fixed = rows.iter().find(|r| r.limit == row.limit && r.strategy == "fixed_window").expect("fixed row");
        println!(
            "| `{}` | {} | {} | {:.2} | {:.2}× | {:.2} | {} |",
            row.strategy,
            row.limit,
            row.filled,
            row.reject_usec,
            row.reject_usec / fixed.reject_usec,
            row.admit_usec,
            row.bytes
        );
    }
}

async fn measure(server: &Server, backend: &RedisBackend, kind: StrategyKind, limit: u64, calls: u64) -> Row {
    let strategy = kind.build();
    let rate = Rate::per_hour(limit);
    let clock = ManualClock::new(T0);
    let redis = backend.clone().with_clock(clock.clone());
    let twin = MemoryBackend::builder().clock(clock.clone()).build().expect("backend");
    let client = format!("{}-{limit}", kind.name());
    let key = format!("throttle:cost:{client}:default");

    // Fill: one admitted hit per millisecond until the first rejection.
    let mut filled = 0;
    loop {
        let decision = redis.hit(&key, &*strategy, rate, 1).await.expect("redis answers");
        assert_eq!(decision, twin.hit_now(&key, &*strategy, rate, 1), "{client}: fill");
        if !decision.allowed {
            break;
        }
        filled += 1;
        clock.advance(Duration::from_millis(1));
    }
    let bytes = bucket_bytes(server, &client);

    server.cli(&["CONFIG", "RESETSTAT"]);
    for _ in 0..calls {
        assert!(!redis.hit(&key, &*strategy, rate, 1).await.expect("redis answers").allowed, "{client}: reject");
    }
    let reject_usec = server.command_stat("evalsha", "usec_per_call");
    assert_eq!(server.command_stat("evalsha", "calls") as u64, calls, "{client}: one EVALSHA per decision");

    // Admit: each hit at the earliest moment it fits, as the twin finds it.
    let mut moments = Vec::with_capacity(calls as usize);
    let probe = clock.clone();
    let start = probe.now_ms();
    for _ in 0..calls {
        loop {
            let decision = twin.hit_now(&key, &*strategy, rate, 1);
            if decision.allowed {
                moments.push(probe.now_ms());
                break;
            }
            probe.advance(Duration::from_millis(decision.wait_ms));
        }
    }
    probe.set(start);
    server.cli(&["CONFIG", "RESETSTAT"]);
    for at in moments {
        clock.set(at);
        assert!(redis.hit(&key, &*strategy, rate, 1).await.expect("redis answers").allowed, "{client}: admit");
    }
    let admit_usec = server.command_stat("evalsha", "usec_per_call");
    Row { strategy: kind.name(), limit, filled, reject_usec, admit_usec, bytes }
}

/// `MEMORY USAGE` summed over the keys of one client's bucket.
fn bucket_bytes(server: &Server, client: &str) -> u64 {
    let keys = server.cli(&["--scan", "--pattern", &format!("*{{{client}}}*")]);
    keys.lines()
        .map(|key| server.cli(&["MEMORY", "USAGE", key.trim(), "SAMPLES", "0"]).trim().parse::<u64>().unwrap_or(0))
        .sum()
}
