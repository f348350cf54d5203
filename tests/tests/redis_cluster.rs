//! The Redis backend on a 3-master Redis Cluster started by the test
//! (`redis-cli --cluster create`).

mod support;

use std::time::{Duration, Instant};
use support::get_from;
use support::redis_server::{RedisCluster, every_strategy, hammer};
use support::test_redis::{TestRedis, deny_cache_on};
use throttle::backend::{Backend, Hit, Key};
use throttle::{HttpThrottle, OnError, Rate, ThrottleError};

/// The backend under test: behind a deny cache when `THROTTLE_TEST_DENY_CACHE=1`.
async fn backend(cluster: &RedisCluster) -> TestRedis {
    TestRedis::connect_cluster(cluster.urls()).await.expect("connects to the cluster")
}

fn calls(cluster: &RedisCluster, command: &str) -> u64 {
    cluster.nodes.iter().map(|node| node.command_calls(command)).sum()
}

/// The index of the node holding `key` (as stored).
fn owner(cluster: &RedisCluster, key: &str) -> Option<usize> {
    cluster.nodes.iter().position(|node| node.cli(&["EXISTS", key]).trim() == "1")
}

/// Four instances on their own cluster connections admit exactly the limit for every
/// strategy; every decision is one script call on the key's master; and
/// `reset_namespace` clears the namespace on every master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_admits_exactly_the_limit_and_resets_every_master() {
    let Some(cluster) = RedisCluster::start() else { return };
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(backend(&cluster).await);
    }
    let rate = Rate::per_day(30);
    let mut owners = Vec::new();
    for (name, strategy) in every_strategy() {
        // A different client per strategy: the keys spread over the masters.
        let key = format!("throttle:exact:{name}:default");
        let admitted = hammer(&instances, &key, strategy.clone(), rate, 6, 6).await;
        assert_eq!(admitted, 30, "{name}: 4 instances x 6 tasks x 6 hits");
        let stored = format!("throttle:exact:{{{name}}}:default");
        owners.push(owner(&cluster, &stored).expect("the key is on one master"));

        // Once both scripts are loaded (SCRIPT LOAD reaches every master): one script
        // call per decision and per stat, summed over the masters.
        instances[2].stat(Key::from(&key), &*strategy, rate).await.unwrap();
        let before = calls(&cluster, "evalsha");
        let decision = instances[1].hit(Hit::new(&key, &*strategy, rate, 1)).await.unwrap();
        assert!(!decision.allowed, "{name}");
        assert_eq!(instances[2].stat(Key::from(&key), &*strategy, rate).await.unwrap().remaining, 0, "{name}");
        let made = calls(&cluster, "evalsha") - before;
        // Behind the deny cache, instance 1 may remember this rejection from the hammer.
        let expected = if deny_cache_on() && name != "user_cas" { 1..=2 } else { 2..=2 };
        assert!(expected.contains(&made), "{name}: {made} calls");
    }
    owners.sort_unstable();
    owners.dedup();
    assert!(owners.len() >= 2, "keys spread over the masters: {owners:?}");
    assert_eq!(calls(&cluster, "eval"), 0);

    // A few hundred more keys, everywhere; another namespace survives.
    let strategy = throttle::strategy::FixedWindow;
    for i in 0..300 {
        assert!(
            instances[0]
                .hit(Hit::new(&format!("throttle:bulk:c{i}:default"), &strategy, rate, 1))
                .await
                .unwrap()
                .allowed
        );
    }
    let other = backend(&cluster).await.with_namespace("other").unwrap();
    assert!(other.hit(Hit::new("other:api:c1:default", &strategy, rate, 1)).await.unwrap().allowed);
    let deleted = instances[3].reset_namespace().await.unwrap();
    // The sliding log and the queue keep their entries in a second key.
    assert_eq!(deleted, 300 + every_strategy().len() as u64 + 2);
    for node in &cluster.nodes {
        let left = node.cli(&["--scan", "--pattern", "throttle:*"]);
        assert_eq!(left.trim(), "", "node {} still holds {left}", node.port);
    }
    assert_eq!(owner(&cluster, "other:api:{c1}:default").map(|_| ()), Some(()));
    // The instance that reset (a deny cache elsewhere only learns of a reset when its
    // cached wait ends).
    assert!(
        instances[3].hit(Hit::new("throttle:exact:fixed_window:default", &strategy, rate, 1)).await.unwrap().allowed
    );
}

/// A master stopped, or paused, under a cluster connection: hits on its keys follow
/// the error policy within the timeout, hits on the other masters' keys carry on,
/// and service on its keys recovers by itself when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_master_follows_the_error_policy_and_recovers() {
    let Some(mut cluster) = RedisCluster::start() else { return };
    let redis = backend(&cluster).await;
    let build = |uid: &str, policy: OnError| {
        HttpThrottle::builder(uid)
            .rate("1000/min")
            .backend(redis.clone())
            .timeout(Duration::from_millis(300))
            .on_error(policy)
            .build()
            .unwrap()
    };
    let allow = build("cluster:fault:allow", OnError::Allow);
    let closed = build("cluster:fault:throttle", OnError::Throttle(Duration::from_secs(2)));
    let raise = build("cluster:fault:raise", OnError::Raise);

    // Clients whose keys live on each master.
    let mut client_on = [None; 3];
    for i in 1..=60u8 {
        let ip = [10, 9, 0, i];
        assert!(raise.hit(&get_from("/", ip)).await.unwrap().is_counted());
        let stored = format!("throttle:cluster:fault:raise:{{ip=10.9.0.{i}}}:default");
        let node = owner(&cluster, &stored).expect("stored");
        client_on[node].get_or_insert(ip);
    }
    let [Some(victim), Some(bystander), _] = client_on else { panic!("keys on every master: {client_on:?}") };

    for (state, paused) in [("stopped", false), ("paused", true)] {
        if paused {
            cluster.nodes[0].pause();
        } else {
            cluster.nodes[0].stop();
        }
        let started = Instant::now();
        let request = get_from("/", victim);
        assert!(!allow.hit(&request).await.unwrap().is_counted(), "{state}: allowed through");
        let err = closed.hit(&request).await.unwrap_err();
        assert_eq!(err.as_throttled().map(|t| t.retry_after_secs()), Some(2), "{state}");
        assert!(matches!(raise.hit(&request).await, Err(ThrottleError::Backend(_))), "{state}");
        assert!(started.elapsed() < Duration::from_secs(3), "{state}: no request waits past its timeout");
        assert!(raise.hit(&get_from("/", bystander)).await.unwrap().is_counted(), "{state}: other masters serve");

        if paused {
            cluster.nodes[0].resume();
        } else {
            cluster.nodes[0].restart(); // empty, rejoins from its nodes.conf
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(admitted) = raise.hit(&request).await {
                assert!(admitted.is_counted(), "{state}");
                break;
            }
            assert!(Instant::now() < deadline, "{state}: did not recover");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Stacked limits of one client share its hash tag, so the Cluster decides them in
/// one script call on one master: exact, and a later rejection consumes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacked_limits_are_decided_together_on_the_cluster() {
    let Some(cluster) = RedisCluster::start() else { return };
    let redis = backend(&cluster).await;
    let burst = HttpThrottle::builder("cluster:stack:burst").rate("10/min").backend(redis.clone()).build().unwrap();
    let daily = HttpThrottle::builder("cluster:stack:daily").rate("3/min").backend(redis).build().unwrap();
    let pair = [burst, daily];
    let (parts, _) = get_from("/", [1, 0, 0, 9]).into_parts();
    let mut admitted = 0;
    for _ in 0..8 {
        admitted += usize::from(throttle::hit_all(&pair, &parts).await.is_ok());
    }
    assert_eq!(admitted, 3);
    assert_eq!(pair[0].stat(&parts).await.unwrap().unwrap().hits_remaining, 7);
    assert_eq!(pair[1].stat(&parts).await.unwrap().unwrap().hits_remaining, 0);
}
