//! Metrics through the `metrics` facade, scraped from a Prometheus recorder after known
//! sequences through Routers: backend errors by what the policy made of them, refunds,
//! stacked limits decided together, and the metric names the docs list.

mod support;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use std::time::Duration;
use support::*;
use throttle::backend::{Backend, BackendError, Hit, Key, Reply};
use throttle::strategy::{Decision, DynStrategy, Snapshot};
use throttle::{CountWhen, HttpThrottle, OnError, Rate, ThrottleLayer};

/// A backend that always fails.
#[derive(Debug, Clone)]
struct Down;

impl Backend for Down {
    fn namespace(&self) -> &str {
        "throttle"
    }
    fn hit<'a>(&'a self, _: Hit<'a>) -> Reply<'a, Decision> {
        Reply::pending(async { Err(BackendError::Failed("connection refused".into())) })
    }
    fn stat<'a>(&'a self, _: Key<'a>, _: &'a dyn DynStrategy, _: Rate) -> Reply<'a, Snapshot> {
        Reply::pending(async { Err(BackendError::Failed("connection refused".into())) })
    }
    fn reset<'a>(&'a self, _: Key<'a>) -> Reply<'a, ()> {
        Reply::pending(async { Err(BackendError::Failed("connection refused".into())) })
    }
}

fn scrape(recorder: &PrometheusRecorder) -> String {
    recorder.handle().render()
}

fn sample(scrape: &str, name_and_labels: &str) -> Option<f64> {
    scrape.lines().find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
}

fn app(layer: ThrottleLayer) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/fail", get(|| async { StatusCode::BAD_GATEWAY }))
        .layer(layer)
}

#[tokio::test]
async fn backend_errors_are_counted_by_what_the_policy_made_of_them() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let (allow, throttle, raise) = metrics::with_local_recorder(&recorder, || {
        let build = |uid: &str, policy: OnError| {
            HttpThrottle::builder(uid).rate("5/min").backend(Down).on_error(policy).build().unwrap()
        };
        (
            build("metrics:errors:allow", OnError::Allow),
            build("metrics:errors:throttle", OnError::Throttle(Duration::from_secs(1))),
            build("metrics:errors:raise", OnError::Raise),
        )
    });
    for (throttle, status, times) in [(allow, 200, 3), (throttle, 429, 2), (raise, 500, 1)] {
        let app = app(ThrottleLayer::new(throttle));
        for _ in 0..times {
            assert_eq!(send(&app, get_from("/", [5, 5, 5, 5])).await.status().as_u16(), status);
        }
    }
    let scrape = scrape(&recorder);
    let errors = |uid: &str, outcome: &str| {
        sample(&scrape, &format!("throttle_backend_errors_total{{throttle=\"{uid}\",outcome=\"{outcome}\"}}"))
    };
    assert_eq!(errors("metrics:errors:allow", "allowed"), Some(3.0), "{scrape}");
    assert_eq!(errors("metrics:errors:throttle", "throttled"), Some(2.0));
    assert_eq!(errors("metrics:errors:raise", "raised"), Some(1.0));
    assert_eq!(errors("metrics:errors:allow", "throttled"), Some(0.0));
    let rejected = |uid: &str| sample(&scrape, &format!("throttle_rejected_total{{throttle=\"{uid}\"}}"));
    assert_eq!(rejected("metrics:errors:throttle"), Some(0.0), "a failing backend is no rejection over the limit");
    let decisions = |uid: &str| sample(&scrape, &format!("throttle_decision_seconds_count{{throttle=\"{uid}\"}}"));
    assert_eq!(decisions("metrics:errors:allow"), Some(3.0), "failed decisions are timed too");
}

#[tokio::test]
async fn refunds_and_joint_decisions_are_counted() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let (backend, _clock) = manual_backend();
    let (login, burst, daily) = metrics::with_local_recorder(&recorder, || {
        let login = HttpThrottle::builder("metrics:login")
            .rate("3/min")
            .count_when(CountWhen::Failures)
            .backend(backend.clone())
            .build()
            .unwrap();
        let burst = HttpThrottle::builder("metrics:burst").rate("4/min").backend(backend.clone()).build().unwrap();
        let daily = HttpThrottle::builder("metrics:daily").rate("100/day").backend(backend).build().unwrap();
        (login, burst, daily)
    });
    let logins = app(ThrottleLayer::new(login));
    for _ in 0..4 {
        assert_eq!(send(&logins, get_from("/", [6, 6, 6, 6])).await.status(), StatusCode::OK);
    }
    assert_eq!(send(&logins, get_from("/fail", [6, 6, 6, 6])).await.status(), StatusCode::BAD_GATEWAY);
    // Two throttles on one store: decided together, one timing each.
    let stacked = app(ThrottleLayer::new(burst).and(daily));
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(send(&stacked, get_from("/", [6, 6, 6, 6])).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429]);

    let scrape = scrape(&recorder);
    let value = |name: &str, uid: &str| sample(&scrape, &format!("{name}{{throttle=\"{uid}\"}}"));
    assert_eq!(value("throttle_admitted_total", "metrics:login"), Some(5.0), "{scrape}");
    assert_eq!(value("throttle_refunded_total", "metrics:login"), Some(4.0), "the 4 successes were given back");
    assert_eq!(value("throttle_decision_seconds_count", "metrics:burst"), Some(5.0));
    assert_eq!(value("throttle_decision_seconds_count", "metrics:daily"), Some(5.0), "timed with its joint call");
    assert_eq!(value("throttle_rejected_total", "metrics:burst"), Some(1.0));
    assert_eq!(value("throttle_admitted_total", "metrics:daily"), Some(4.0), "a joint rejection counts nothing");
    // The names the docs list, each registered for every throttle.
    for name in [
        throttle::metrics::ADMITTED,
        throttle::metrics::REJECTED,
        throttle::metrics::SHADOW_REJECTED,
        throttle::metrics::EXEMPTED,
        throttle::metrics::BYPASSED,
        throttle::metrics::NEAR_LIMIT,
        throttle::metrics::REFUNDED,
    ] {
        assert!(value(name, "metrics:daily").is_some(), "{name}");
    }
}
