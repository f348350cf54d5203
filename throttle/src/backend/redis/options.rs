//! The options of a [`RedisBackend`]: namespace, clock and batching.

use super::RedisBackend;
use super::batch::{Batcher, Batching};
use crate::{Clock, ConfigError};
use std::sync::Arc;

/// How long past its expiry a key is kept when decisions use a caller's clock
/// (which Redis's expiry clock may not agree with). Keeping a key longer is always
/// safe: a state past its expiry reads as a fresh one.
const CLOCK_GRACE_MS: u64 = 60_000;

impl RedisBackend {
    /// The key prefix (default `"throttle"`): letters, digits, `_`, `-` and `.`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use throttle::backend::RedisBackend;
    /// let redis = RedisBackend::connect("redis://127.0.0.1:6379").await?.with_namespace("shop")?;
    /// # let _ = redis; Ok(()) }
    /// ```
    pub fn with_namespace(mut self, namespace: &str) -> Result<Self, ConfigError> {
        crate::key::validate_namespace(namespace)?;
        self.namespace = namespace.to_string();
        Ok(self)
    }

    /// Decides at this clock's time instead of Redis server time: for tests that drive
    /// a [`ManualClock`](crate::backend::ManualClock) (shared with a
    /// [`MemoryBackend`](crate::backend::MemoryBackend) to compare the two step by step), or to
    /// trust the app's clock.
    ///
    /// Keys still expire on Redis's clock, after the same durations, plus a minute of
    /// grace since the two clocks need not agree (a key kept past its expiry reads as
    /// a fresh state, so the grace costs memory only).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use throttle::backend::ManualClock;
    /// use throttle::backend::RedisBackend;
    ///
    /// let clock = ManualClock::new(1_700_000_000_000);
    /// let redis = RedisBackend::connect("redis://127.0.0.1:6379").await?.with_clock(clock.clone());
    /// # let _ = redis; Ok(()) }
    /// ```
    pub fn with_clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = Some(clock.into());
        // A batch is decided at one time: only decisions on this clock may share it.
        self.batcher = Arc::new(Batcher::new(self.batcher.batching()));
        self
    }

    /// How concurrent decisions share script calls: [`Batching::default()`] (on) unless
    /// changed here. Clones made after this call share its queue.
    ///
    /// With batching on, a decision is sent at once, as its strategy's own script call,
    /// when no call is waiting for Redis. Otherwise it queues, and as soon as a call
    /// slot is free (at most [`max_calls_in_flight`](Batching::max_calls_in_flight))
    /// the queue (up to [`max_decisions`](Batching::max_decisions)) goes out as **one**
    /// script call, which decides each hit on its own, one after another, each on the
    /// state the previous one left:
    ///
    /// - **Exact**: the answers are those of the same hits sent one by one in that
    ///   order (the batch is atomic, like any script call).
    /// - **No added latency at low load**: a lone decision never waits for company.
    /// - **Cheaper under load**: a round trip and a script invocation are paid per
    ///   batch, not per decision (`BENCHMARKS.md` measures it).
    /// - **Cluster**: a batch is split by slot, one call per slot (keys are hash-tagged
    ///   by client, so one client's decisions share a call).
    /// - **Failures**: a decision whose own step fails inside Redis (a key holding
    ///   another type, say) fails alone, and the others in its batch are decided; a
    ///   call that fails as a whole (connection lost) fails every decision it carried,
    ///   each then handled by its throttle's [`OnError`](crate::OnError) policy.
    /// - **Timeouts**: a queued decision whose caller gave up (its throttle's
    ///   [`timeout`](crate::ThrottleBuilder::timeout)) is never sent, so it never
    ///   consumes quota after its policy has answered.
    ///
    /// Strategies of your own (compare-and-set) and stacked limits
    /// ([`Backend::hit_all`](crate::backend::Backend::hit_all)) are not batched.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use throttle::backend::{Batching, RedisBackend};
    ///
    /// let redis = RedisBackend::connect("redis://127.0.0.1:6379").await?.with_batching(Batching::new(64, 4)?);
    /// let one_call_per_decision = redis.clone().with_batching(Batching::OFF);
    /// # let _ = one_call_per_decision; Ok(()) }
    /// ```
    pub fn with_batching(mut self, batching: Batching) -> Self {
        self.batcher = Arc::new(Batcher::new(batching));
        self
    }

    /// The batching in use (see [`with_batching`](Self::with_batching)).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use throttle::backend::{Batching, RedisBackend};
    /// let redis = RedisBackend::connect("redis://127.0.0.1:6379").await?;
    /// assert_eq!(redis.batching(), Batching::default());
    /// # Ok(()) }
    /// ```
    pub fn batching(&self) -> Batching {
        self.batcher.batching()
    }

    /// `ARGV[1]` of every script: the caller's time, or "" for Redis server time.
    pub(super) fn now_arg(&self) -> String {
        self.clock.as_ref().map(|clock| clock.now_ms().to_string()).unwrap_or_default()
    }

    pub(super) fn grace_ms(&self) -> u64 {
        if self.clock.is_some() { CLOCK_GRACE_MS } else { 0 }
    }
}
