//! One in-memory decision on a warm key, for every strategy, beside governor's keyed
//! limiter in the same run.
//!
//! `cargo bench -p throttle --bench decision`
//!
//! Both sides hash the same `String` key, look it up in a sharded map and decide; both
//! read time from quanta (governor's default clock; ours anchors it to the epoch).
//! Allow: a quota too large to run out. Deny: a quota of 1 already spent.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;
use throttle::strategy::StrategyKind;
use throttle::{Rate, backend::MemoryBackend};

const KEY: &str = "throttle:bench:203.0.113.7:default";

/// 2^40 per second never runs out during a run, and keeps the bucket strategies'
/// `limit × period` well inside their exact range.
const ALLOW: Rate = Rate::per_second(1 << 40);
const DENY: Rate = Rate::per_hour(1);

fn decision(c: &mut Criterion) {
    for (path, ours_rate, gov_quota) in
        [("allow", ALLOW, Quota::per_second(NonZeroU32::MAX)), ("deny", DENY, Quota::per_hour(NonZeroU32::MIN))]
    {
        let mut group = c.benchmark_group(format!("decision/{path}"));

        for kind in StrategyKind::ALL {
            let strategy = kind.build();
            let backend = MemoryBackend::new();
            let _ = backend.hit_now(KEY, &*strategy, ours_rate, 1);
            group.bench_function(BenchmarkId::new("throttle", kind.name()), |b| {
                b.iter(|| black_box(backend.hit_now(black_box(KEY), &*strategy, ours_rate, 1)))
            });
        }

        let governor = RateLimiter::keyed(gov_quota);
        let key = KEY.to_string();
        let _ = governor.check_key(&key);
        group.bench_function(BenchmarkId::new("governor", "check_key"), |b| {
            b.iter(|| black_box(governor.check_key(black_box(&key)).is_ok()))
        });
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
}

criterion_group! { name = benches; config = config(); targets = decision }
criterion_main!(benches);
