//! One in-memory decision on a warm key, for every strategy, beside governor's keyed
//! limiter in the same run, for two kinds of key:
//!
//! - **text**: both sides hash the same `String` key, look it up in a sharded map and
//!   decide (our text is digested: a key of no throttle's form);
//! - **address**: the key a throttle builds for an IPv4 client (made once, as a throttle
//!   makes it once per request) beside governor keyed on the client's `IpAddr` (as
//!   tower_governor's `PeerIpKeyExtractor` keys it).
//!
//! `cargo bench -p throttle --bench decision`
//!
//! Both sides read time from quanta (governor's default clock; ours anchors it to the
//! epoch). Allow: a quota too large to run out. Deny: a quota of 1 already spent.
//!
//! The `floor` group times what every decision of either side pays before any work of
//! its own: reading the clock, and (ours) one uncontended shard lock.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};
use std::hash::Hash;
use std::hint::black_box;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;
use throttle::backend::Key;
use throttle::strategy::StrategyKind;
use throttle::{Rate, backend::MemoryBackend};

/// A key of no throttle's form: digested.
const TEXT_KEY: &str = "throttle:bench:203.0.113.7:default";
/// A throttle's key for the client 203.0.113.7 on its default scope.
const ADDRESS_KEY: &str = "throttle:bench:ip=203.0.113.7:default";
const ADDRESS: [u8; 4] = [203, 0, 113, 7];

/// 2^40 per second never runs out during a run, and keeps the bucket strategies'
/// `limit × period` well inside their exact range.
const ALLOW: Rate = Rate::per_second(1 << 40);
const DENY: Rate = Rate::per_hour(1);

fn floor(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision/floor");
    let clock = throttle::backend::Clock::System;
    group.bench_function("throttle clock (Clock::System::now_ms)", |b| b.iter(|| black_box(clock.now_ms())));
    let quanta = quanta::Clock::new();
    group.bench_function("governor clock (quanta::Clock::now)", |b| b.iter(|| black_box(quanta.now())));
    let shard = parking_lot::Mutex::new(0u64);
    group.bench_function("uncontended lock and unlock (parking_lot)", |b| b.iter(|| *black_box(&shard).lock() += 1));
    group.finish();
}

fn decision(c: &mut Criterion) {
    for (path, ours_rate, gov_quota) in
        [("allow", ALLOW, Quota::per_second(NonZeroU32::MAX)), ("deny", DENY, Quota::per_hour(NonZeroU32::MIN))]
    {
        for kind_of_key in ["text", "address"] {
            let mut group = c.benchmark_group(format!("decision/{path}/{kind_of_key}"));
            let key = Key::from(if kind_of_key == "text" { TEXT_KEY } else { ADDRESS_KEY });
            for kind in StrategyKind::ALL {
                let strategy = kind.build();
                let backend = MemoryBackend::new();
                let _ = backend.hit_now(key, &*strategy, ours_rate, 1);
                group.bench_function(BenchmarkId::new("throttle", kind.name()), |b| {
                    b.iter(|| black_box(backend.hit_now(black_box(key), &*strategy, ours_rate, 1)))
                });
            }
            if kind_of_key == "text" {
                governor_row(&mut group, gov_quota, TEXT_KEY.to_string());
            } else {
                governor_row(&mut group, gov_quota, IpAddr::from(ADDRESS));
            }
            group.finish();
        }
    }
}

/// governor's keyed `check_key` on a warm `key`.
fn governor_row<K: Clone + Hash + Eq + Send + Sync>(group: &mut BenchmarkGroup<'_, WallTime>, quota: Quota, key: K) {
    let governor = RateLimiter::keyed(quota);
    let _ = governor.check_key(&key);
    group.bench_function(BenchmarkId::new("governor", "check_key"), |b| {
        b.iter(|| black_box(governor.check_key(black_box(&key)).is_ok()))
    });
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
}

criterion_group! { name = benches; config = config(); targets = floor, decision }
criterion_main!(benches);
