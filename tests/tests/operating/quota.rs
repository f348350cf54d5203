//! Quota contexts through real Routers: costs queued during a handler and applied
//! together, all or nothing; cancelled or dropped contexts charge nothing; nested
//! contexts merge; pre-checks count the queued total.

use crate::support::redis_server::RedisServer;
use crate::support::*;
use axum::Router;
use axum::extract::{Query, Request};
use axum::routing::get;
use http::{HeaderMap, StatusCode};
use std::collections::HashMap;
use throttle::quota::Quota;
use throttle::{
    HttpThrottle, ThrottleError,
    backend::{Backend, MemoryBackend},
};

fn throttle(uid: &str, rate: &str, backend: impl Backend) -> HttpThrottle {
    HttpThrottle::builder(uid).rate(rate).backend(backend).build().unwrap()
}

async fn remaining(throttle: &HttpThrottle, ip: [u8; 4]) -> u64 {
    throttle.stat(&get_from("/", ip)).await.unwrap().unwrap().hits_remaining
}

/// `/work?reads=R&writes=W&fail=1`: queues R on `reads` and W on `writes`, one unit at
/// a time as it "works", then applies them, unless it fails first.
fn app(reads: &HttpThrottle, writes: &HttpThrottle) -> Router {
    let (reads, writes) = (reads.clone(), writes.clone());
    let handler = move |Query(params): Query<HashMap<String, u64>>, request: Request| {
        let (reads, writes) = (reads.clone(), writes.clone());
        async move {
            let mut quota = Quota::new();
            for _ in 0..params.get("reads").copied().unwrap_or(0) {
                quota.add(&reads, 1)?;
            }
            quota.add(&writes, params.get("writes").copied().unwrap_or(0))?;
            if params.contains_key("fail") {
                // An error path: the context is dropped unapplied.
                return Ok::<_, ThrottleError>((StatusCode::INTERNAL_SERVER_ERROR, HeaderMap::new(), "failed"));
            }
            let headers = quota.apply(&request).await?;
            Ok((StatusCode::OK, headers, "done"))
        }
    };
    Router::new().route("/work", get(handler))
}

#[tokio::test]
async fn queued_costs_are_applied_together_at_the_end() {
    let (backend, _clock) = manual_backend();
    let reads = throttle("quota:reads", "10/min", backend.clone());
    let writes = throttle("quota:writes", "5/min", backend);
    let app = app(&reads, &writes);
    let response = send(&app, get_from("/work?reads=4&writes=2", [1, 1, 1, 1])).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!((remaining(&reads, [1, 1, 1, 1]).await, remaining(&writes, [1, 1, 1, 1]).await), (6, 3));
}

#[tokio::test]
async fn all_or_nothing_a_rejection_consumes_nothing_anywhere() {
    let (backend, _clock) = manual_backend();
    let reads = throttle("quota:aon:reads", "10/min", backend.clone());
    let writes = throttle("quota:aon:writes", "5/min", backend);
    let app = app(&reads, &writes);
    assert_eq!(send(&app, get_from("/work?reads=3&writes=4", [1, 1, 1, 1])).await.status(), StatusCode::OK);
    // Reads have room for 6 more, writes for 1: asking 2 writes fails, and the 5 reads
    // queued before it are not taken either.
    let rejected = send(&app, get_from("/work?reads=5&writes=2", [1, 1, 1, 1])).await;
    assert_eq!(rejected.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&rejected, "retry-after"), Some("45"));
    assert_eq!((remaining(&reads, [1, 1, 1, 1]).await, remaining(&writes, [1, 1, 1, 1]).await), (7, 1));
    // A total above what a throttle can ever admit is its own error, and charges nothing.
    let too_big = send(&app, get_from("/work?reads=11", [1, 1, 1, 1])).await;
    assert_eq!(too_big.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body_text(too_big).await, "This request costs 11, more than the limit of 10 allows.");
    assert_eq!(remaining(&reads, [1, 1, 1, 1]).await, 7);
}

#[tokio::test]
async fn a_handler_that_fails_or_cancels_charges_nothing() {
    let (backend, _clock) = manual_backend();
    let reads = throttle("quota:fail:reads", "10/min", backend.clone());
    let writes = throttle("quota:fail:writes", "5/min", backend.clone());
    let app = app(&reads, &writes);
    let failed = send(&app, get_from("/work?reads=4&writes=2&fail=1", [1, 1, 1, 1])).await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(backend.is_empty(), "a dropped context touched no state");
    let mut quota = Quota::new();
    quota.add(&reads, 3).unwrap().add(&writes, 1).unwrap();
    quota.cancel();
    assert!(backend.is_empty());
}

#[tokio::test]
async fn the_same_throttle_twice_is_one_charge_and_scopes_are_separate() {
    let (backend, _clock) = manual_backend();
    let reads = throttle("quota:sum", "10/min", backend);
    let request = get_from("/", [1, 1, 1, 1]);
    let mut quota = Quota::new();
    quota.add(&reads, 4).unwrap().add(&reads, 5).unwrap().add(&reads, 0).unwrap();
    quota.add_scoped(&reads, 2, "tenant-7").unwrap();
    assert_eq!(quota.queued_cost(&reads), 9);
    assert!(quota.add(&reads, -1).is_err(), "a negative cost is refused");
    quota.apply(&request).await.unwrap();
    assert_eq!(remaining(&reads, [1, 1, 1, 1]).await, 1);
    let scoped = reads.stat(&request).scope("tenant-7").await.unwrap().unwrap();
    assert_eq!(scoped.hits_remaining, 8);
}

#[tokio::test]
async fn pre_checks_count_the_queued_total_including_enclosing_contexts() {
    let (backend, _clock) = manual_backend();
    let reads = throttle("quota:check", "10/min", backend);
    let request = get_from("/", [1, 1, 1, 1]);
    reads.hit(&request).cost(3).await.unwrap(); // 7 left
    let mut quota = Quota::new();
    assert!(quota.check(&request, &reads, 7).await);
    quota.add(&reads, 5).unwrap();
    assert!(quota.check(&request, &reads, 2).await, "5 queued + 2 = 7 fits");
    assert!(!quota.check(&request, &reads, 3).await, "5 queued + 3 = 8 does not");
    assert!(!quota.check(&request, &reads, -1).await);
    {
        let mut child = quota.nested();
        assert!(child.check(&request, &reads, 2).await, "the parent's 5 count");
        assert!(!child.check(&request, &reads, 3).await);
        child.add(&reads, 2).unwrap();
        assert_eq!(child.queued_cost(&reads), 7);
        assert!(child.check_queued(&request).await);
        child.add(&reads, 1).unwrap();
        assert!(!child.check_queued(&request).await, "8 queued in all");
        // Dropped: its 3 vanish.
    }
    assert_eq!(quota.queued_cost(&reads), 5);
    assert!(quota.check_queued(&request).await);
    assert_eq!(remaining(&reads, [1, 1, 1, 1]).await, 7, "checks consume nothing");
}

#[tokio::test]
async fn nested_contexts_merge_into_their_parent_and_only_the_outermost_applies() {
    let (backend, _clock) = manual_backend();
    let reads = throttle("quota:nested:reads", "10/min", backend.clone());
    let writes = throttle("quota:nested:writes", "5/min", backend);
    let request = get_from("/", [1, 1, 1, 1]);
    let mut quota = Quota::new();
    quota.add(&reads, 1).unwrap();
    {
        let mut step = quota.nested();
        step.add(&reads, 2).unwrap();
        {
            let mut inner = step.nested();
            inner.add(&writes, 4).unwrap();
            inner.merge();
        }
        {
            let mut abandoned = step.nested();
            abandoned.add(&writes, 1).unwrap();
            abandoned.cancel();
        }
        step.merge();
    }
    assert_eq!((quota.queued_cost(&reads), quota.queued_cost(&writes)), (3, 4));
    assert_eq!(remaining(&reads, [1, 1, 1, 1]).await, 10, "nothing is charged before the apply");
    quota.apply(&request).await.unwrap();
    assert_eq!((remaining(&reads, [1, 1, 1, 1]).await, remaining(&writes, [1, 1, 1, 1]).await), (7, 1));
}

/// Many handlers on many threads apply 3 reads and 2 writes each: exactly as many
/// apply as the tighter budget allows, and no rejected one leaves a partial charge.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_applies_are_all_or_nothing_on_one_backend() {
    let backend = MemoryBackend::builder().clock(throttle::backend::ManualClock::new(T0)).build().unwrap();
    let reads = throttle("quota:race:reads", "100/min", backend.clone());
    let writes = throttle("quota:race:writes", "41/min", backend);
    let app = app(&reads, &writes);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, get_from("/work?reads=3&writes=2", [5, 5, 5, 5])).await.status() })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => applied += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(applied, 20, "41 writes admit 20 handlers of 2");
    assert_eq!(remaining(&writes, [5, 5, 5, 5]).await, 1);
    assert_eq!(remaining(&reads, [5, 5, 5, 5]).await, 100 - 3 * 20, "no rejected handler took reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_or_nothing_on_redis_in_one_script_call() {
    let Some(server) = RedisServer::start() else { return };
    let redis = throttle::backend::RedisBackend::connect(&server.url()).await.unwrap();
    let reads = throttle("quota:redis:reads", "10/min", redis.clone());
    let writes = throttle("quota:redis:writes", "5/min", redis);
    let app = app(&reads, &writes);
    assert_eq!(send(&app, get_from("/work?reads=3&writes=4", [1, 1, 1, 1])).await.status(), StatusCode::OK);
    let calls = server.command_calls("evalsha");
    let rejected = send(&app, get_from("/work?reads=5&writes=2", [1, 1, 1, 1])).await;
    assert_eq!(rejected.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(server.command_calls("evalsha"), calls + 1, "both throttles in one call");
    assert_eq!((remaining(&reads, [1, 1, 1, 1]).await, remaining(&writes, [1, 1, 1, 1]).await), (7, 1));
}
