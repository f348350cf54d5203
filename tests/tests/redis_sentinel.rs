//! The Redis backend through Redis Sentinel: a master, a replica and three sentinels
//! started by the test. When the master fails over (stopped, paused, or demoted on
//! request), decisions continue on the promoted replica, with the state it replicated.

mod support;

use std::time::{Duration, Instant};
use support::get_from;
use support::redis_server::{RedisSentinelSetup, UserStrategy};
use throttle::backend::RedisBackend;
use throttle::strategy::StrategyKind;
use throttle::{HttpThrottle, OnError, Rate};

/// How a test takes the master away.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Killed: its connections drop at once.
    Stopped,
    /// SIGSTOP: connections stay open and nothing answers, so only the throttle's
    /// timeout notices.
    Paused,
    /// `SENTINEL FAILOVER`: the master keeps running and becomes a replica.
    Demoted,
    /// `SENTINEL FAILOVER`, and Sentinel cannot demote the old master (as when a
    /// partition keeps it from reaching it; here `REPLICAOF` is renamed away): the old
    /// master keeps accepting writes, so only Sentinel's announcement can move
    /// decisions to the new one.
    Partitioned,
}

const LIMIT: u64 = 5;
const BEFORE: u64 = 3;

/// One throttle per built-in strategy and one user strategy (compare-and-set), each
/// `LIMIT` per hour (no window rolls over during the test), raising backend errors.
fn throttles(redis: &RedisBackend, test: &str) -> Vec<(String, HttpThrottle)> {
    let build = |uid: String| {
        HttpThrottle::builder(&uid)
            .rate(Rate::per_hour(LIMIT))
            .backend(redis.clone())
            .timeout(Duration::from_millis(250))
            .on_error(OnError::Raise)
    };
    let mut all: Vec<(String, HttpThrottle)> = StrategyKind::ALL
        .iter()
        .map(|kind| {
            let throttle = build(format!("{test}:{}", kind.name())).strategy_name(kind.name()).build().unwrap();
            (kind.name().to_string(), throttle)
        })
        .collect();
    let user = build(format!("{test}:user_cas")).strategy(UserStrategy(StrategyKind::Gcra.build())).build().unwrap();
    all.push(("user_cas".to_string(), user));
    all
}

/// Counted hits out of `n` from one client; every call must get an answer from Redis.
async fn admitted(throttle: &HttpThrottle, n: u64) -> u64 {
    let mut admitted = 0;
    for _ in 0..n {
        match throttle.hit(&get_from("/", [10, 7, 0, 1])).await {
            Ok(hit) => admitted += u64::from(hit.is_counted()),
            Err(err) => assert!(err.as_throttled().is_some(), "Redis answers: {err}"),
        }
    }
    admitted
}

/// Hits admitted before the fault stay counted after it, and the limit holds on the
/// new master: of the `LIMIT` per strategy, `BEFORE` are spent before the fault and
/// exactly the rest after it.
async fn decisions_follow_the_failover(fault: Fault, test: &str) {
    let undemotable = ["--rename-command", "REPLICAOF", "", "--rename-command", "SLAVEOF", ""];
    let master_args: &[&str] = if matches!(fault, Fault::Partitioned) { &undemotable } else { &[] };
    let Some(mut setup) = RedisSentinelSetup::start_with_master_args(master_args) else { return };
    let err = RedisBackend::connect_sentinel("no-such-master", setup.sentinel_urls()).await.unwrap_err();
    assert!(err.to_string().contains("not found in sentinel"), "a master no sentinel knows: {err}");
    let redis = RedisBackend::connect_sentinel(&setup.master_name, setup.sentinel_urls()).await.expect("connects");
    assert!(format!("{redis:?}").contains("sentinel"));
    let throttles = throttles(&redis, test);
    for (name, throttle) in &throttles {
        assert_eq!(admitted(throttle, BEFORE).await, BEFORE, "{fault:?} {name}: before");
    }
    assert!(setup.master.command_calls("evalsha") > 0, "decided on the master");
    // Replication is asynchronous: wait until the replica has every hit.
    assert_eq!(setup.master.cli(&["WAIT", "1", "5000"]).trim(), "1", "the replica acknowledged");

    let old_master = setup.master.port;
    match fault {
        Fault::Stopped => setup.master.stop(),
        Fault::Paused => setup.master.pause(),
        Fault::Demoted | Fault::Partitioned => setup.failover(),
    }

    // Sentinel needs a second or two to promote the replica; meanwhile decisions fail
    // within the timeout. Then a probe on a key of its own, until the new master answers.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    let (probe_name, probe) = &throttles[0];
    loop {
        let promoted = setup.master_port() == Some(setup.replica.port);
        let begun = Instant::now();
        let hit = probe.hit(&get_from("/", [10, 7, 0, 2])).await;
        assert!(begun.elapsed() < Duration::from_secs(1), "{fault:?}: a call waited past its timeout");
        let answered = hit.as_ref().map_or_else(|err| err.as_throttled().is_some(), |_| true);
        // Until the new master has decided something, calls may still reach the old one.
        if promoted && answered && setup.replica.command_calls("evalsha") > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{fault:?}: decisions did not resume on a new master");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("{fault:?}: decisions resumed {:?} after the fault ({probe_name} probe)", started.elapsed());
    assert_ne!(setup.replica.port, old_master);

    // (A paused master would not answer redis-cli.)
    let partitioned = matches!(fault, Fault::Partitioned);
    let old_master_calls = if partitioned { setup.master.command_calls("evalsha") } else { 0 };
    for (name, throttle) in &throttles {
        assert_eq!(admitted(throttle, 2 * LIMIT).await, LIMIT - BEFORE, "{fault:?} {name}: after");
    }
    if partitioned {
        assert_eq!(setup.master.cli(&["ROLE"]).lines().next(), Some("master"), "the old master still takes writes");
        assert_eq!(setup.master.command_calls("evalsha"), old_master_calls, "no decision reached the old master");
    }
    // The new master ran the scripts, loading them on its first NOSCRIPT.
    assert!(setup.replica.command_calls("evalsha") > 0, "{fault:?}: decided on the new master");
    assert!(setup.replica.command_calls("script|load") > 0, "{fault:?}: scripts loaded on the new master");
    if matches!(fault, Fault::Paused) {
        setup.master.resume();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_follow_a_failover_when_the_master_is_stopped() {
    decisions_follow_the_failover(Fault::Stopped, "sentinel:stopped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_follow_a_failover_when_the_master_is_paused() {
    decisions_follow_the_failover(Fault::Paused, "sentinel:paused").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_follow_a_failover_when_the_master_is_demoted() {
    decisions_follow_the_failover(Fault::Demoted, "sentinel:demoted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_follow_the_announcement_when_the_old_master_cannot_be_demoted() {
    decisions_follow_the_failover(Fault::Partitioned, "sentinel:partitioned").await;
}

/// Bad input is a clear error, never a panic: no sentinels, a URL that does not parse
/// (a master name no sentinel knows: in the failover tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sentinel_input_is_a_clear_error() {
    let none: [&str; 0] = [];
    let err = RedisBackend::connect_sentinel("m", none).await.unwrap_err();
    assert!(err.to_string().contains("no sentinel address"), "{err}");
    let err = RedisBackend::connect_sentinel("m", ["not a url"]).await.unwrap_err();
    assert!(err.to_string().contains("sentinel `not a url`"), "{err}");
}
