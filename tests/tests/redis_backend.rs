//! The Redis backend against a real `redis-server` on a free loopback port.

mod support;

use std::time::Duration;
use support::redis_server::RedisServer;
use support::*;
use throttle::backend::RedisBackend;
use throttle::{HttpThrottle, OnError, ThrottleError};

async fn backend(server: &RedisServer) -> RedisBackend {
    RedisBackend::connect(&server.url()).await.expect("connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_with_one_script_call_per_decision() {
    let Some(server) = RedisServer::start() else { return };
    let api = HttpThrottle::builder("redis:basic").rate("5/min").backend(backend(&server).await).build().unwrap();
    let request = get_from("/", [1, 0, 0, 1]);
    // The first call of each script loads it (EVALSHA, NOSCRIPT, SCRIPT LOAD, EVALSHA);
    // count after the decision script and the state script (stats) are loaded.
    api.hit(&get_from("/", [9, 9, 9, 9])).await.unwrap();
    api.stat(&get_from("/", [9, 9, 9, 9])).await.unwrap();
    let before = server.command_calls("evalsha");
    for expected in (0..5).rev() {
        assert_eq!(api.hit(&request).await.unwrap().remaining(), Some(expected));
    }
    let err = api.hit(&request).await.unwrap_err();
    let wait = err.as_throttled().expect("a rejection").wait_ms();
    assert!(wait > 0 && wait <= 60_000, "{wait}");
    assert_eq!(server.command_calls("evalsha") - before, 6, "one EVALSHA per decision");
    assert_eq!(server.command_calls("eval"), 0);

    let stat = api.stat(&request).await.unwrap().unwrap();
    assert_eq!(stat.hits_remaining, 0);
    assert!(stat.wait_ms > 0);
    assert_eq!(server.command_calls("evalsha") - before, 7, "stat is one read-only call too");

    // The key carries the client as hash tag and expires with its window.
    let keys = server.cli(&["KEYS", "*1.0.0.1*"]);
    assert_eq!(keys.trim(), "throttle:redis:basic:{1.0.0.1}:default");
    let ttl: i64 = server.cli(&["PTTL", keys.trim()]).trim().parse().unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_reloaded_after_script_flush() {
    let Some(server) = RedisServer::start() else { return };
    let api = HttpThrottle::builder("redis:noscript").rate("5/min").backend(backend(&server).await).build().unwrap();
    let request = get_from("/", [1, 0, 0, 2]);
    api.hit(&request).await.unwrap();
    assert_eq!(server.cli(&["SCRIPT", "FLUSH"]).trim(), "OK");
    assert_eq!(api.hit(&request).await.unwrap().remaining(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_follows_the_error_policy_and_recovers() {
    let Some(mut server) = RedisServer::start() else { return };
    let redis = backend(&server).await;
    let build = |uid: &str, policy: OnError| {
        HttpThrottle::builder(uid)
            .rate("100/min")
            .backend(redis.clone())
            .timeout(Duration::from_millis(300))
            .on_error(policy)
            .build()
            .unwrap()
    };
    let allow = build("redis:fault:allow", OnError::Allow);
    let closed = build("redis:fault:throttle", OnError::Throttle(Duration::from_secs(2)));
    let raise = build("redis:fault:raise", OnError::Raise);
    let request = get_from("/", [1, 0, 0, 3]);
    assert!(allow.hit(&request).await.unwrap().is_counted());

    for (state, action) in [("stopped", 0), ("paused", 1)] {
        if action == 0 { server.stop() } else { server.restart(); server.pause() }
        let started = std::time::Instant::now();
        assert!(!allow.hit(&request).await.unwrap().is_counted(), "{state}: allowed through");
        let err = closed.hit(&request).await.unwrap_err();
        assert_eq!(err.as_throttled().map(|t| t.retry_after_secs()), Some(2), "{state}");
        assert!(matches!(raise.hit(&request).await, Err(ThrottleError::Backend(_))), "{state}");
        assert!(started.elapsed() < Duration::from_secs(3), "{state}: no request waits past its timeout");
        if action == 1 {
            server.resume();
        }
    }
    if !server_is_running(&server) {
        server.restart();
    }
    // The connection manager reconnects by itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(admitted) = raise.hit(&request).await {
            assert!(admitted.is_counted());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn server_is_running(server: &RedisServer) -> bool {
    server.cli(&["PING"]).trim() == "PONG"
}
