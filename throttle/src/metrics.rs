//! What each throttle records through the [`metrics`](https://docs.rs/metrics) facade
//! (the `metrics` feature): install any exporter (Prometheus, StatsD, OpenTelemetry,
//! ...) and these appear, labelled `throttle = "<uid>"`.
//!
//! | name | kind | counts |
//! |---|---|---|
//! | [`ADMITTED`] | counter | hits admitted and counted |
//! | [`REJECTED`] | counter | hits rejected over the limit (the 429s) |
//! | [`SHADOW_REJECTED`] | counter | hits a throttle in [shadow mode](crate::shadow) would have rejected, let through |
//! | [`EXEMPTED`] | counter | hits of clients the identifier exempted |
//! | [`BYPASSED`] | counter | hits a [`Rule`](crate::Rule) kept the throttle away from |
//! | [`BACKEND_ERRORS`] | counter | backend failures and timeouts, with `outcome = "allowed" \| "throttled" \| "raised"`: what the [`OnError`](crate::OnError) policy made of them |
//! | [`NEAR_LIMIT`] | counter | admitted hits that left at most 20 % of the limit |
//! | [`REFUNDED`] | counter | admitted hits given back ([`Admitted::refund`](crate::Admitted::refund), [`CountWhen`](crate::CountWhen)) |
//! | [`DECISION_SECONDS`] | histogram | time the backend took to decide, in seconds |
//!
//! No label names a client: a label per client would let clients mint time series.
//! For the clients denied most, see
//! [`ThrottleBuilder::track_top_denied`](crate::ThrottleBuilder::track_top_denied), a
//! bounded list read through the throttle or the [registry](crate::registry).
//!
//! A throttle registers its metrics with the recorder installed when it is built, so
//! install the exporter first (the `#[throttle]` statics are built on first use, after
//! `main` has run). A throttle built under
//! [`metrics::with_local_recorder`](https://docs.rs/metrics/latest/metrics/fn.with_local_recorder.html)
//! records to that recorder, which tests use to count exactly.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use throttle::HttpThrottle;
//!
//! // With an exporter installed (e.g. `metrics_exporter_prometheus`), this counts in
//! // `throttle_admitted_total{throttle="docs:metrics"}`; with none, nothing is recorded.
//! let throttle = HttpThrottle::builder("docs:metrics").rate("10/s").build().unwrap();
//! let request = axum::http::Request::new(());
//! throttle.hit(&request).await.unwrap();
//! # }
//! ```

/// Counter: hits admitted and counted.
pub const ADMITTED: &str = "throttle_admitted_total";
/// Counter: hits rejected over the limit.
pub const REJECTED: &str = "throttle_rejected_total";
/// Counter: hits a throttle in shadow mode would have rejected.
pub const SHADOW_REJECTED: &str = "throttle_shadow_rejected_total";
/// Counter: hits of exempted clients.
pub const EXEMPTED: &str = "throttle_exempted_total";
/// Counter: hits a rule kept the throttle away from.
pub const BYPASSED: &str = "throttle_bypassed_total";
/// Counter: backend failures, labelled `outcome` with what the error policy did.
pub const BACKEND_ERRORS: &str = "throttle_backend_errors_total";
/// Counter: admitted hits that left at most 20 % of the limit.
pub const NEAR_LIMIT: &str = "throttle_near_limit_total";
/// Counter: admitted hits given back.
pub const REFUNDED: &str = "throttle_refunded_total";
/// Histogram: backend decision latency, in seconds.
pub const DECISION_SECONDS: &str = "throttle_decision_seconds";

/// The label naming the throttle (its uid).
pub const THROTTLE_LABEL: &str = "throttle";
/// The label of [`BACKEND_ERRORS`]: `"allowed"`, `"throttled"` or `"raised"`.
pub const OUTCOME_LABEL: &str = "outcome";
