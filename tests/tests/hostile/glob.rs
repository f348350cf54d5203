//! Hostile: path globs cost time linear in the request path, whatever the glob.
//!
//! A backtracking matcher takes seconds to minutes on these (0.7 s for `/**/a/**/b` on
//! 16 KB, over a minute for three `*` in one segment); the bound below is orders of
//! magnitude above what a linear matcher needs, so it only catches backtracking.

use crate::support::*;
use axum::Router;
use axum::routing::get;
use http::StatusCode;
use std::time::{Duration, Instant};
use throttle::{HttpThrottle, Rule, ThrottleLayer};

/// Generous: a linear matcher needs a few milliseconds for all of these in a debug build.
const BOUND: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pathological_globs_on_long_paths_stay_linear() {
    let (backend, _clock) = manual_backend();
    let rule = Rule::apply_if()
        .path("/**/a/**/b")
        .and_then(|r| r.path("/**/a/**/a/**/b"))
        .and_then(|r| r.path("/files/*a*a*b"))
        .and_then(|r| r.path("/*.min.*.js"))
        .expect("valid globs");
    let limited = HttpThrottle::builder("hostile:glob")
        .rate("2/min")
        .backend(backend)
        .rule(rule)
        .build()
        .expect("valid throttle");
    let app = Router::new().fallback(get(|| async { "ok" })).layer(ThrottleLayer::new(limited));

    let deep = "/a".repeat(32_000); // 64 KB of `a` segments, no `b`
    let wide = format!("/files/{}", "a".repeat(64_000)); // one 64 KB segment of `a`
    let dots = format!("/{}", "x.min.".repeat(10_000));
    let started = Instant::now();
    for path in [&deep, &wide, &dots] {
        // None of these match an apply rule, so the throttle never applies: all pass.
        for _ in 0..3 {
            assert_eq!(send(&app, get_from(path, [1, 2, 3, 4])).await.status(), StatusCode::OK);
        }
    }
    let elapsed = started.elapsed();
    assert!(elapsed < BOUND, "9 requests on 64 KB paths took {elapsed:?}: the glob matcher backtracks");

    // The rules still match what they should: `/x/a/y/b` is limited at 2.
    let statuses: Vec<_> = [0; 3].iter().map(|_| get_from("/x/a/y/b", [1, 2, 3, 4])).collect();
    let mut admitted = 0;
    for request in statuses {
        if send(&app, request).await.status() == StatusCode::OK {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 2);
}
