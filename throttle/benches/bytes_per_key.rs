//! Memory per key: one million distinct clients through `HttpThrottle::hit` on a
//! `MemoryBackend`, for every built-in strategy, beside governor's keyed limiter
//! (DashMap) in the same run.
//!
//! `cargo bench -p throttle --bench bytes_per_key`
//!
//! Each row runs in a fresh child process (this binary re-run as `measure <row>`), so
//! rows do not share an allocator's free lists. The child counts live heap bytes with a
//! counting global allocator (`stats_alloc` over the system allocator), sends one
//! request from each of `THROTTLE_BYTES_KEYS` (default 1,000,000) distinct peer
//! addresses (`ConnectInfo`, throttle's default identifier), and reports, divided by the
//! number of keys:
//! - **heap bytes**: live bytes requested from the allocator after the run minus
//!   before the limiter was built (everything the limiter holds: table, keys, state;
//!   not malloc's own bookkeeping);
//! - **blocks**: live allocations, each costing malloc another 8–16 bytes;
//! - **RSS**: the growth of the process's resident memory, what the OS sees.
//!
//! Governor is measured with the key a peer-IP extractor gives it (`IpAddr`, as
//! tower_governor does) and with the address as a `String` (as a header key is).
//! Every throttle row uses the uid `api:items`, since today's keys embed it.
//! Hash tables grow by doubling, so bytes per key depend on where the count falls
//! between two growths; all rows here hold the same count.

use axum::body::Body;
use axum::extract::ConnectInfo;
use governor::{Quota, RateLimiter};
use http::Request;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::process::Command;
use throttle::strategy::StrategyKind;
use throttle::{HttpThrottle, Rate, backend::MemoryBackend};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const GOVERNOR_IP: &str = "governor-ipaddr";
const GOVERNOR_STRING: &str = "governor-string";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let keys: u32 = std::env::var("THROTTLE_BYTES_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    if let [mode, row] = args.as_slice()
        && mode == "measure"
    {
        measure(row, keys);
        return;
    }
    let rows = StrategyKind::ALL.iter().map(|k| k.name()).chain([GOVERNOR_IP, GOVERNOR_STRING]);
    println!("Memory per key, {keys} distinct clients, each row in a fresh process");
    println!();
    println!("| limiter | heap bytes / key | blocks / key | RSS bytes / key |");
    println!("| --- | ---: | ---: | ---: |");
    for row in rows {
        let exe = std::env::current_exe().expect("this binary");
        let output = Command::new(exe).args(["measure", row]).output().expect("the child runs");
        assert!(output.status.success(), "{row} failed: {}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let figures: Vec<f64> = stdout.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        let [bytes, blocks, rss] = figures[..] else { panic!("{row} printed {stdout:?}") };
        let label = match row {
            GOVERNOR_IP => "governor 0.10 keyed (DashMap), key `IpAddr`".to_string(),
            GOVERNOR_STRING => "governor 0.10 keyed (DashMap), key `String`".to_string(),
            strategy => format!("throttle `{strategy}`, `MemoryBackend`"),
        };
        println!("| {label} | {bytes:.0} | {blocks:.2} | {rss:.0} |");
    }
}

/// The child: builds the limiter, feeds it `keys` distinct clients, prints heap bytes,
/// blocks and RSS bytes per key.
fn measure(row: &str, keys: u32) {
    let rss_before = resident_bytes();
    let region = Region::new(GLOBAL);
    let address = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
    // Kept alive until the figures are taken.
    let limiter: Box<dyn std::any::Any> = match row {
        GOVERNOR_IP => {
            let limiter = RateLimiter::keyed(Quota::per_minute(NonZeroU32::new(100).expect("non-zero")));
            for i in 0..keys {
                assert!(limiter.check_key(&address(i)).is_ok());
            }
            Box::new(limiter)
        }
        GOVERNOR_STRING => {
            let limiter = RateLimiter::keyed(Quota::per_minute(NonZeroU32::new(100).expect("non-zero")));
            for i in 0..keys {
                assert!(limiter.check_key(&address(i).to_string()).is_ok());
            }
            Box::new(limiter)
        }
        strategy => {
            let backend = MemoryBackend::new();
            // A day-long quota: no key expires (and is swept) during the run.
            // One uid for every strategy: today's keys hold it (`throttle:api:items:<ip>:..`).
            let throttle = HttpThrottle::builder("api:items")
                .rate(Rate::per_day(1000))
                .strategy_name(strategy)
                .backend(backend.clone())
                .build()
                .expect("a valid throttle");
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async {
                for i in 0..keys {
                    let mut request = Request::get("/").body(Body::empty()).expect("a request");
                    request.extensions_mut().insert(ConnectInfo(SocketAddr::new(address(i), 40_000)));
                    let admitted = throttle.hit(&request).await.expect("the first request of a client is admitted");
                    assert!(admitted.is_counted());
                }
            });
            assert_eq!(backend.len(), keys as usize, "every client holds a key");
            Box::new((throttle, backend))
        }
    };
    let change = region.change();
    let rss_after = resident_bytes();
    let live_bytes = change.bytes_allocated as f64 - change.bytes_deallocated as f64;
    let live_blocks = change.allocations as f64 - change.deallocations as f64;
    let keys = f64::from(keys);
    println!("{} {} {}", live_bytes / keys, live_blocks / keys, (rss_after as f64 - rss_before as f64) / keys);
    drop(limiter);
}

/// The process's resident set size, from `/proc/self/statm` (0 where there is none).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}
