//! Bad input anywhere gets a typed error with a clear message, never a panic.

mod support;

use axum::response::IntoResponse;
use http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::*;
use throttle::backend::{Backend, BackendError, Hit, Key, Reply};
use throttle::strategy::{Decision, DynStrategy, Snapshot};
use throttle::{
    ConfigError, Cost, HttpThrottle, OnError, Rate, ThrottleError,
    throttles::{ErrorAction, InvalidCost},
};

#[test]
fn invalid_rate_strings_fail_the_build() {
    for bad in ["", "100", "5/mins!", "0/min", "5/0s", "-1/s", "99999999999999999999/s"] {
        let err = HttpThrottle::builder("bad:rate").rate(bad).build().unwrap_err();
        assert!(matches!(err, ConfigError::Rate(_)), "{bad:?}: {err:?}");
        assert!(err.to_string().starts_with(&format!("invalid rate {bad:?}")), "{err}");
    }
    let err = HttpThrottle::builder("bad:rate").rate("5/weeks").build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid rate \"5/weeks\": unknown time unit `weeks`; expected one of `ms`, `s`, `sec`, `second`, `m`, `min`, `minute`, `h`, `hr`, `hour`, `d`, `day` (plurals accepted)"
    );
}

#[test]
fn uids_are_validated_and_unique() {
    let err = HttpThrottle::builder("").rate("1/s").build().unwrap_err();
    assert_eq!(err.to_string(), "invalid throttle uid \"\": a uid cannot be empty");
    let err = HttpThrottle::builder("has space").rate("1/s").build().unwrap_err();
    assert!(matches!(err, ConfigError::InvalidUid { .. }));

    let registry = throttle::registry::Registry::new();
    let first = HttpThrottle::builder("unique:uid").rate("1/s").registry(&registry).build().unwrap();
    let err = HttpThrottle::builder("unique:uid").rate("1/s").registry(&registry).build().unwrap_err();
    let ConfigError::DuplicateUid { uid, existing, new } = &err else { panic!("{err:?}") };
    assert_eq!(uid, "unique:uid");
    assert!(existing.contains("bad_input.rs") && new.contains("bad_input.rs"), "{err}");
    assert!(err.to_string().contains("\"unique:uid\" is already registered"));
    drop(first);
    // Once the first throttle is gone, its uid is free again.
    HttpThrottle::builder("unique:uid").rate("1/s").registry(&registry).build().unwrap();
    // Outside a registry, building never collides: the same router builds twice.
    let _twice = (HttpThrottle::builder("unique:uid").rate("1/s").build().unwrap(), first_again());
}

fn first_again() -> HttpThrottle {
    HttpThrottle::builder("unique:uid").rate("1/s").build().unwrap()
}

#[test]
fn missing_rate_is_reported() {
    let err = HttpThrottle::builder("no:rate").build().unwrap_err();
    assert_eq!(err.to_string(), "throttle \"no:rate\" has no rate; call `.rate(\"100/min\")` or `.rate_fn(..)`");
}

#[test]
fn invalid_costs_are_typed_errors() {
    assert_eq!(Cost::try_from(-5), Err(InvalidCost::Negative(-5)));
    assert_eq!(Cost::try_from(1u64 << 60), Err(InvalidCost::TooLarge(1 << 60)));
    assert_eq!(Cost::try_from(u128::MAX), Err(InvalidCost::TooLarge(u128::MAX)));
    assert_eq!(Cost::try_from(Cost::MAX).unwrap().get(), Cost::MAX);
    let err = HttpThrottle::builder("bad:default:cost").rate("1/s").cost(-1).build().unwrap_err();
    assert_eq!(err.to_string(), "cost cannot be negative (got -1)");
}

#[tokio::test]
async fn invalid_per_call_costs_fail_the_call_without_io() {
    let (backend, _clock) = manual_backend();
    let api = HttpThrottle::builder("bad:call:cost").rate("10/min").backend(backend.clone()).build().unwrap();
    let request = get_from("/", [1, 0, 0, 1]);
    let err = api.hit(&request).cost(-3).await.unwrap_err();
    assert!(matches!(err, ThrottleError::InvalidCost(InvalidCost::Negative(-3))));
    assert_eq!(err.into_response().status(), StatusCode::INTERNAL_SERVER_ERROR);
    let err = api.hit(&request).cost(i64::MAX).await.unwrap_err();
    assert!(matches!(err, ThrottleError::InvalidCost(InvalidCost::TooLarge(_))));
    let err = api.hit(&request).cost(11).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "cost 11 exceeds the capacity 10 of throttle \"bad:call:cost\"; no wait would ever admit it"
    );
    let response = err.into_response();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!response.headers().contains_key("retry-after"), "no wait would ever admit it");
    assert!(backend.is_empty());
}

#[test]
fn rate_constructors_check_their_range() {
    assert!(Rate::new(1, Duration::ZERO).is_err());
    assert!(Rate::new(Rate::MAX + 1, Duration::from_secs(1)).is_err());
    assert_eq!(Rate::per_millis(5, 0).period_ms(), 1);
}

/// A backend that is down: every call fails.
#[derive(Debug, Default)]
struct DownBackend {
    calls: AtomicUsize,
}

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection refused")
    }
}
impl std::error::Error for Refused {}

/// Shares one `DownBackend` between throttles, so the test can count calls.
#[derive(Debug)]
struct SharedDown(Arc<DownBackend>);

impl Backend for SharedDown {
    fn namespace(&self) -> &str {
        "down"
    }
    fn hit<'a>(&'a self, _: Hit<'a>) -> Reply<'a, Decision> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        Reply::pending(async { Err(BackendError::Failed(Box::new(Refused))) })
    }
    fn stat<'a>(&'a self, _: Key<'a>, _: &'a dyn DynStrategy, _: Rate) -> Reply<'a, Snapshot> {
        Reply::pending(async { Err(BackendError::Failed(Box::new(Refused))) })
    }
    fn reset<'a>(&'a self, _: Key<'a>) -> Reply<'a, ()> {
        Reply::ready(Ok(()))
    }
}

/// A backend that never answers.
#[derive(Debug)]
struct HungBackend;

impl Backend for HungBackend {
    fn namespace(&self) -> &str {
        "hung"
    }
    fn hit<'a>(&'a self, _: Hit<'a>) -> Reply<'a, Decision> {
        Reply::pending(std::future::pending())
    }
    fn stat<'a>(&'a self, _: Key<'a>, _: &'a dyn DynStrategy, _: Rate) -> Reply<'a, Snapshot> {
        Reply::pending(std::future::pending())
    }
    fn reset<'a>(&'a self, _: Key<'a>) -> Reply<'a, ()> {
        Reply::pending(std::future::pending())
    }
}

#[tokio::test]
async fn backend_failures_follow_the_error_policy() {
    let down = Arc::new(DownBackend::default());
    let request = get_from("/", [2, 0, 0, 1]);
    let build = |uid: &str, policy: OnError| {
        HttpThrottle::builder(uid).rate("5/s").backend(SharedDown(down.clone())).on_error(policy).build().unwrap()
    };

    let allow = build("policy:allow", OnError::Allow);
    assert!(!allow.hit(&request).await.unwrap().is_counted());

    let closed = build("policy:throttle", OnError::Throttle(Duration::from_millis(1_500)));
    let err = closed.hit(&request).await.unwrap_err();
    assert_eq!(err.as_throttled().unwrap().retry_after_secs(), 2);

    let raise = build("policy:raise", OnError::Raise);
    let err = raise.hit(&request).await.unwrap_err();
    assert_eq!(err.to_string(), "throttle backend failed: connection refused");
    assert_eq!(err.into_response().status(), StatusCode::INTERNAL_SERVER_ERROR);

    let custom = build(
        "policy:custom",
        OnError::custom(|error, ctx| match (error, ctx.scope()) {
            (BackendError::Failed(_), "vip") => ErrorAction::Allow,
            _ => ErrorAction::Throttle(Duration::from_secs(3)),
        }),
    );
    assert!(custom.hit(&request).scope("vip").await.is_ok());
    assert_eq!(custom.hit(&request).await.unwrap_err().as_throttled().unwrap().retry_after_secs(), 3);

    // stat reports the failure; check stays optimistic.
    assert!(matches!(raise.stat(&request).await, Err(ThrottleError::Backend(_))));
    assert!(raise.check(&request).await);
    assert_eq!(down.calls.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn a_hung_backend_times_out_instead_of_hanging_the_request() {
    let api = HttpThrottle::builder("policy:timeout")
        .rate("5/s")
        .backend(HungBackend)
        .timeout(Duration::from_millis(100))
        .on_error(OnError::Raise)
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let err = api.hit(&get_from("/", [3, 0, 0, 1])).await.unwrap_err();
    assert!(matches!(err, ThrottleError::Backend(BackendError::Timeout(_))), "{err:?}");
    assert_eq!(started.elapsed(), Duration::from_millis(100));
}
