//! The limits file: loaded at startup, reloaded on change, applied all or nothing
//! through the registry; a bad file is refused with its line, column, uid and field,
//! and changes nothing.

use crate::support::*;
use axum::Router;
use axum::routing::get;
use http::StatusCode;
use std::path::PathBuf;
use std::time::Duration;
use throttle::limits::{LimitsErrorKind, LimitsFile};
use throttle::registry;
use throttle::{
    HttpThrottle, Rate, ThrottleLayer,
    backend::{ManualClock, MemoryBackend},
};

/// A file in a fresh temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("throttle-limits-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = TempFile(dir.join("limits.toml"));
        file.write(text);
        file
    }

    /// Replaces the content in one step (write aside, then rename), as deploy tools do.
    fn write(&self, text: &str) {
        let aside = self.0.with_extension("tmp");
        std::fs::write(&aside, text).unwrap();
        std::fs::rename(&aside, &self.0).unwrap();
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

fn throttle(uid: &str, rate: &str, backend: &MemoryBackend) -> HttpThrottle {
    HttpThrottle::builder(uid)
        .rate(rate)
        .backend(backend.clone())
        .registry(throttle::registry::global())
        .build()
        .unwrap()
}

async fn admitted(app: &Router, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        ok += usize::from(send(app, get_from("/", [9, 9, 9, 9])).await.status() == StatusCode::OK);
    }
    ok
}

#[tokio::test]
async fn a_file_sets_rates_and_switches_through_the_registry() {
    let (backend, _clock) = manual_backend();
    let api = throttle("limits:load:api", "2/min", &backend);
    let search = throttle("limits:load:search", "1/min", &backend);
    let app = Router::new().route("/", get(|| async { "ok" })).layer(ThrottleLayer::new(api.clone()));
    let file = TempFile::new(
        "load",
        r#"
        [throttles."limits:load:api"]
        rate = "5 per minute"
        strategy = "fixed_window"
        enabled = true
        shadow = false

        [throttles."limits:load:search"]
        enabled = false
        "#,
    );
    let limits = LimitsFile::new(&file.0);
    assert_eq!(limits.check().unwrap(), 2, "a dry run names both");
    assert_eq!(api.rate(), Some(Rate::per_minute(2)), "and applies nothing");
    assert_eq!(limits.load().unwrap(), 2);
    assert_eq!(api.rate(), Some(Rate::per_minute(5)));
    assert!(!search.is_enabled());
    assert_eq!(admitted(&app, 8).await, 5, "the router enforces the file's rate");
    assert_eq!(limits.load().unwrap(), 2, "loading again is a no-op");
    assert_eq!(api.rate(), Some(Rate::per_minute(5)));
}

#[tokio::test]
async fn fields_a_new_version_leaves_out_go_back_to_the_code() {
    let (backend, _clock) = manual_backend();
    let api = throttle("limits:restore:api", "2/min", &backend);
    let dynamic = HttpThrottle::builder("limits:restore:dynamic")
        .rate_fn(|_, _| async { Rate::per_second(1) })
        .backend(backend.clone())
        .registry(throttle::registry::global())
        .build()
        .unwrap();
    let file = TempFile::new(
        "restore",
        r#"
        [throttles."limits:restore:api"]
        rate = "10/min"
        enabled = false
        [throttles."limits:restore:dynamic"]
        rate = "7/s"
        "#,
    );
    let limits = LimitsFile::new(&file.0);
    limits.load().unwrap();
    assert_eq!((api.rate(), api.is_enabled()), (Some(Rate::per_minute(10)), false));
    assert_eq!(dynamic.rate(), Some(Rate::per_second(7)));
    file.write("[throttles.\"limits:restore:api\"]\nrate = \"20/min\"\n");
    limits.load().unwrap();
    assert_eq!((api.rate(), api.is_enabled()), (Some(Rate::per_minute(20)), true), "`enabled` left out: back on");
    assert_eq!(dynamic.rate(), None, "dropped from the file: its rate function is back");
    file.write("[throttles]\n");
    limits.load().unwrap();
    assert_eq!(api.rate(), Some(Rate::per_minute(2)), "the code's rate");
}

/// Every way a file can be wrong: the error, and no change anywhere (the valid entry
/// before the bad one included).
#[tokio::test]
async fn a_bad_file_is_refused_precisely_and_changes_nothing() {
    let (backend, _clock) = manual_backend();
    let api = throttle("limits:bad:api", "2/min", &backend);
    let gcra = HttpThrottle::builder("limits:bad:gcra")
        .rate("10/s")
        .strategy_name("gcra(burst = 20)")
        .backend(backend.clone())
        .registry(throttle::registry::global())
        .build()
        .unwrap();
    let valid = "[throttles.\"limits:bad:api\"]\nrate = \"50/min\"\nenabled = false\n";
    let cases: &[(&str, &str)] = &[
        ("[throttles.\"limits:bad:gcra\"\nrate = 1", "limits.toml:4:29: invalid TOML: unclosed table, expected `]`"),
        (
            "[throttles.\"limits:bad:apj\"]\nrate = \"1/s\"",
            "limits.toml:4:12: throttle \"limits:bad:apj\": no throttle with this uid is running (did you mean `limits:bad:api`?)",
        ),
        (
            "[throttles.\"limits:bad:gcra\"]\nrate = \"20/fortnight\"",
            "limits.toml:5:8: throttle \"limits:bad:gcra\", field `rate`: ",
        ),
        (
            "[throttles.\"limits:bad:gcra\"]\nrate = 20",
            "limits.toml:5:8: throttle \"limits:bad:gcra\", field `rate`: expected a string, found integer",
        ),
        (
            "[throttles.\"limits:bad:gcra\"]\nstrategy = \"gcar\"",
            "limits.toml:5:12: throttle \"limits:bad:gcra\", field `strategy`: ",
        ),
        (
            "[throttles.\"limits:bad:gcra\"]\nrate = \"1/s\"\nstrategy = \"token_bucket(burst = 0)\"",
            "limits.toml:6:12: throttle \"limits:bad:gcra\", field `strategy`: invalid parameter of strategy `token_bucket`: `burst` must be at least 1",
        ),
        (
            "[throttles.\"limits:bad:gcra\"]\nrte = \"1/s\"",
            "limits.toml:5:1: throttle \"limits:bad:gcra\", field `rte`: unknown key `rte`; expected `rate`, `strategy`, `enabled` or `shadow` (did you mean `rate`?)",
        ),
        (
            "[throttles.\"limits:bad:gcra\"]\nenabled = \"no\"",
            "limits.toml:5:11: throttle \"limits:bad:gcra\", field `enabled`: expected a boolean (`true` or `false`), found string",
        ),
        (
            "[throttles.\"limits:bad:gcra\"]\nshadow = 1",
            "limits.toml:5:10: throttle \"limits:bad:gcra\", field `shadow`: expected a boolean (`true` or `false`), found integer",
        ),
        (
            "[throttle.\"limits:bad:gcra\"]",
            "limits.toml:4:2: `throttle`: unknown key `throttle`; expected `throttles` (did you mean `throttles`?)",
        ),
        ("[throttles.\"bad uid\"]", "limits.toml:4:12: throttle \"bad uid\": invalid uid: "),
        (
            "[throttles]\n\"limits:bad:gcra\" = 5",
            "limits.toml:5:21: throttle \"limits:bad:gcra\": expected a table, found integer",
        ),
        ("[throttles.\"limits:bad:api\"]\nrate = \"1/s\"", "limits.toml:4:12: invalid TOML: duplicate key"),
    ];
    let file = TempFile::new("bad", valid);
    let limits = LimitsFile::new(&file.0);
    let mut mismatches = Vec::new();
    for (bad, expected) in cases {
        file.write(&format!("{valid}{bad}\n"));
        let Err(error) = limits.load() else { panic!("{bad:?} was applied") };
        let message = error.to_string();
        let message = message.strip_prefix(file.0.parent().unwrap().to_str().unwrap()).unwrap().trim_start_matches('/');
        if !message.starts_with(expected) {
            mismatches.push(format!("for {bad:?}:\n  got      {message}\n  expected {expected}…"));
        }
        assert_eq!(api.rate(), Some(Rate::per_minute(2)), "{bad:?} changed the valid entry before it");
        assert!(api.is_enabled(), "{bad:?}");
        assert_eq!(gcra.rate(), Some(Rate::per_second(10)), "{bad:?}");
        assert_eq!(registry::global().get("limits:bad:gcra").unwrap().strategy(), "gcra", "{bad:?}");
        assert!(!gcra.is_shadow(), "{bad:?}");
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // The structured parts of one error.
    file.write(&format!("{valid}[throttles.\"limits:bad:gcra\"]\nrate = \"20/fortnight\"\n"));
    let error = limits.load().unwrap_err();
    assert_eq!((error.position(), error.uid(), error.field()), (Some((5, 8)), Some("limits:bad:gcra"), Some("rate")));
    assert!(matches!(error.kind(), LimitsErrorKind::Rate(_)));
    assert!(error.to_string().contains("unknown time unit `fortnight`"), "{error}");
    // Missing and oversized files are refused too.
    std::fs::remove_file(&file.0).unwrap();
    assert!(matches!(limits.load().unwrap_err().kind(), LimitsErrorKind::Io(_)));
    file.write(&format!("# {}\n", "x".repeat(1 << 20)));
    assert!(matches!(limits.load().unwrap_err().kind(), LimitsErrorKind::TooLarge(_)));
    // Then a good file applies.
    file.write(valid);
    limits.load().unwrap();
    assert_eq!((api.rate(), api.is_enabled()), (Some(Rate::per_minute(50)), false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_applies_each_new_version_and_keeps_the_limits_through_a_bad_one() {
    let (backend, _clock) = manual_backend();
    let api = throttle("limits:watch:api", "2/min", &backend);
    let file = TempFile::new("watch", "[throttles.\"limits:watch:api\"]\nrate = \"3/min\"\n");
    let limits = LimitsFile::new(&file.0);
    limits.load().unwrap();
    let watcher = limits.watch(Duration::from_millis(5));
    let mut status = watcher.status();
    let bound = Duration::from_secs(30);
    file.write("[throttles.\"limits:watch:api\"]\nrate = \"4/min\"\n");
    tokio::time::timeout(bound, status.wait_for(|s| s.applied == 1)).await.unwrap().unwrap();
    assert_eq!(api.rate(), Some(Rate::per_minute(4)));
    file.write("[throttles.\"limits:watch:api\"]\nrate = \"4/min\"\nburst = 3\n");
    let refused = tokio::time::timeout(bound, status.wait_for(|s| s.refused == 1)).await.unwrap().unwrap().clone();
    assert!(refused.last_error.unwrap().to_string().contains("unknown key `burst`"));
    assert_eq!(api.rate(), Some(Rate::per_minute(4)), "a refused version changes nothing");
    file.write("[throttles.\"limits:watch:api\"]\nrate = \"6/min\"\n");
    let applied = tokio::time::timeout(bound, status.wait_for(|s| s.applied == 2)).await.unwrap().unwrap().clone();
    assert!(applied.last_error.is_none());
    assert_eq!(api.rate(), Some(Rate::per_minute(6)));
    drop(watcher);
    file.write("[throttles.\"limits:watch:api\"]\nrate = \"7/min\"\n");
    // The task ends without publishing anything more: the sender goes with it.
    assert!(tokio::time::timeout(bound, status.changed()).await.unwrap().is_err());
    assert_eq!(api.rate(), Some(Rate::per_minute(6)), "a dropped watcher applies nothing");
}

/// `shadow = true` puts the throttle in shadow mode: it admits everything and counts
/// each would-be rejection; a version without the line enforces again.
#[tokio::test]
async fn the_file_turns_shadow_mode_on_and_off() {
    let (backend, clock) = manual_backend();
    let api = HttpThrottle::builder("limits:shadow:api")
        .rate("2/min")
        .backend(backend)
        .track_top_denied(4)
        .registry(registry::global())
        .build()
        .unwrap();
    let app = Router::new().route("/", get(|| async { "ok" })).layer(ThrottleLayer::new(api.clone()));
    let denials = || api.top_denied().first().map_or(0, |d| d.denials);
    let file = TempFile::new("shadow", "[throttles.\"limits:shadow:api\"]\nshadow = true\n");
    let limits = LimitsFile::new(&file.0);
    limits.load().unwrap();
    assert!(api.is_shadow());
    assert_eq!(admitted(&app, 5).await, 5, "shadow mode admits everything");
    assert_eq!(denials(), 3, "and counts the 3 rejections enforcing mode would have made");
    limits.load().unwrap();
    assert!(api.is_shadow(), "applying again changes nothing");

    file.write("[throttles.\"limits:shadow:api\"]\nrate = \"2/min\"\n");
    limits.load().unwrap();
    assert!(!api.is_shadow(), "the line removed: the code's setting is back");
    assert_eq!(admitted(&app, 3).await, 0, "enforced again, on the same count");
    assert_eq!(denials(), 6);
    clock.advance(Duration::from_secs(45));
    assert_eq!(admitted(&app, 3).await, 2, "the next window: the limit, exactly");

    // A throttle built in shadow mode, put to enforcing by the file, then dropped from it.
    let (backend, _clock) = manual_backend();
    let rollout = HttpThrottle::builder("limits:shadow:rollout")
        .rate("1/min")
        .backend(backend)
        .shadow(true)
        .registry(registry::global())
        .build()
        .unwrap();
    let app = Router::new().route("/", get(|| async { "ok" })).layer(ThrottleLayer::new(rollout.clone()));
    file.write("[throttles.\"limits:shadow:rollout\"]\nshadow = false\n");
    limits.load().unwrap();
    assert_eq!(admitted(&app, 3).await, 1, "the file enforces");
    file.write("[throttles]\n");
    limits.load().unwrap();
    assert!(rollout.is_shadow(), "dropped: back to the code's shadow mode");
    assert_eq!(admitted(&app, 3).await, 3);
}

/// The statuses of `n` requests from one client, in order.
async fn statuses(app: &Router, n: usize) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(n);
    for _ in 0..n {
        statuses.push(send(app, get_from("/", [9, 9, 9, 9])).await.status().as_u16());
    }
    statuses
}

/// What a router does over a minute with a rate of 4/min, from `T0` (15 s into a
/// window): a fixed window admits 4, then nothing until the window ends 45 s later; a
/// token bucket admits 4, then one more every 15 s.
async fn fixed_or_bucket(app: &Router, clock: &ManualClock) -> &'static str {
    let burst = statuses(app, 5).await;
    assert_eq!(burst, [200, 200, 200, 200, 429], "a fresh quota of 4");
    clock.advance(Duration::from_secs(15));
    let refill = statuses(app, 2).await;
    clock.advance(Duration::from_secs(30));
    match refill[..] {
        [429, 429] => "fixed_window",
        [200, 429] => "token_bucket",
        _ => panic!("neither: {refill:?}"),
    }
}

/// Switches a fixed window to a token bucket and back through the file, on `backend`
/// (in memory or on Redis): each behaves as its strategy does, starts from a full
/// quota (no state of the other kind is read), and going back finds the fixed
/// window's own state. A hit taken under one strategy is refunded to it.
async fn assert_strategy_swaps(uid: &str, backend: impl throttle::backend::Backend + Clone, clock: &ManualClock) {
    let api = HttpThrottle::builder(uid).rate("4/min").backend(backend).registry(registry::global()).build().unwrap();
    let app = Router::new().route("/", get(|| async { "ok" })).layer(ThrottleLayer::new(api.clone()));
    let entry = registry::global().get(uid).unwrap();
    assert_eq!(fixed_or_bucket(&app, clock).await, "fixed_window");
    // The next window: 3 used, and one more taken with a ticket.
    assert_eq!(statuses(&app, 3).await, [200, 200, 200]);
    let mut ticket = api.hit(&get_from("/", [9, 9, 9, 9])).refundable().await.unwrap();

    let file = TempFile::new(&uid.replace(':', "-"), &format!("[throttles.\"{uid}\"]\nstrategy = \"token_bucket\"\n"));
    let limits = LimitsFile::new(&file.0);
    limits.load().unwrap();
    assert_eq!(entry.strategy(), "token_bucket");
    assert_eq!(fixed_or_bucket(&app, clock).await, "token_bucket", "a full bucket, then its refill");
    assert!(ticket.refund().await.unwrap(), "given back to the fixed window it was counted in");
    limits.load().unwrap();
    assert_eq!(entry.strategy(), "token_bucket", "applying again changes nothing");
    assert_eq!(statuses(&app, 3).await, [200, 200, 429], "nor resets the bucket: 2 tokens in 30 s");

    file.write(&format!("[throttles.\"{uid}\"]\nrate = \"4/min\"\n"));
    limits.load().unwrap();
    assert_eq!(entry.strategy(), "fixed_window", "the key dropped: the code's strategy is back");
    assert_eq!(statuses(&app, 2).await, [200, 429], "its window, as left: 3 counted, the refunded one free");
    clock.advance(Duration::from_secs(15));
    assert_eq!(fixed_or_bucket(&app, clock).await, "fixed_window");

    // Written out, the code's own strategy is no swap either.
    file.write(&format!("[throttles.\"{uid}\"]\nstrategy = \"fixed_window\"\n"));
    limits.load().unwrap();
    assert_eq!(statuses(&app, 2).await, [429, 429], "the same keys: no fresh quota");
    clock.advance(Duration::from_secs(15));
    assert_eq!(fixed_or_bucket(&app, clock).await, "fixed_window");
}

#[tokio::test]
async fn the_file_switches_the_strategy_and_dropping_it_restores_the_code_s() {
    let (backend, clock) = manual_backend();
    assert_strategy_swaps("limits:strategy:memory", backend, &clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_the_file_switches_the_strategy_and_its_keys() {
    let Some(server) = crate::support::redis_server::RedisServer::start() else { return };
    let clock = ManualClock::new(T0);
    let redis = crate::support::test_redis::TestRedis::connect(&server.url()).await.unwrap().with_clock(clock.clone());
    assert_strategy_swaps("limits:strategy:redis", redis, &clock).await;
    let mut keys: Vec<String> = server.cli(&["KEYS", "*"]).lines().map(str::to_string).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "throttle:limits:strategy:redis:{ip=9.9.9.9}:default",
            "throttle:limits:strategy:redis:{ip=9.9.9.9}:default#t"
        ],
        "the token bucket's state under a key of its own"
    );
}

/// A bad strategy refuses the whole file: the rate before it is not applied either,
/// and the router goes on enforcing the code's limit with the code's strategy.
#[tokio::test]
async fn a_bad_strategy_changes_nothing() {
    let (backend, clock) = manual_backend();
    let uid = "limits:strategy:bad";
    let api = HttpThrottle::builder(uid).rate("4/min").backend(backend).registry(registry::global()).build().unwrap();
    let app = Router::new().route("/", get(|| async { "ok" })).layer(ThrottleLayer::new(api.clone()));
    let file = TempFile::new(
        "bad-strategy",
        &format!("[throttles.\"{uid}\"]\nrate = \"9/min\"\nstrategy = \"token_buckets\"\nshadow = true\n"),
    );
    let error = LimitsFile::new(&file.0).load().unwrap_err();
    assert_eq!((error.position(), error.uid(), error.field()), (Some((3, 12)), Some(uid), Some("strategy")));
    assert!(matches!(error.kind(), LimitsErrorKind::Strategy(_)));
    assert!(error.to_string().ends_with("(did you mean `token_bucket`?)"), "{error}");
    assert_eq!(api.rate(), Some(Rate::per_minute(4)));
    assert!(!api.is_shadow());
    assert_eq!(registry::global().get(uid).unwrap().strategy(), "fixed_window");
    assert_eq!(fixed_or_bucket(&app, &clock).await, "fixed_window");
}
