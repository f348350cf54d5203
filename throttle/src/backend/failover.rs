//! [`Failover`]: a primary backend (Redis) behind a circuit breaker, with a fallback
//! backend (in memory) that decides while the primary is failing.

use super::circuit_breaker::{Attempt, BreakerConfig, CircuitBreaker, CircuitState};
use super::{Backend, BackendError, Hit, InvalidBackendOption, Key, Reply, Route, Since};
use crate::strategy::{Decision, DynStrategy, NEVER, Snapshot};
use crate::{Clock, Rate};
use core::fmt;
use std::sync::Arc;
use std::time::Duration;

type RateMap = dyn Fn(Rate) -> Rate + Send + Sync;

/// The primary's and the fallback's places in a [`Route`].
const PRIMARY: u64 = 0;
const FALLBACK: u64 = 1;
const STORES: u64 = 2;

/// Decides on a primary backend while it answers, and on a fallback backend (for
/// example a [`MemoryBackend`](crate::backend::MemoryBackend), possibly at a smaller rate) while
/// it fails, then returns to the primary by itself.
///
/// A circuit breaker picks the backend:
///
/// - **closed**: the primary decides. Each call has its own
///   [`timeout`](FailoverBuilder::timeout); a call that fails or times out is decided
///   by the fallback at once, so no request waits longer than the timeout.
/// - **open** after [`failures`](FailoverBuilder::failures) consecutive failures: the
///   fallback decides, and the primary is not called at all, for the
///   [`cool_down`](FailoverBuilder::cool_down).
/// - **half-open** after the cool-down: up to [`probes`](FailoverBuilder::probes)
///   calls at once go to the primary, the rest to the fallback. A probe that answers
///   closes the circuit; one that fails opens it again for another cool-down.
///
/// Every error of the primary counts as a failure, as does a call its caller stopped
/// waiting for (and every answer as a success, including a
/// [`DenyCache`](super::DenyCache)'s local ones): keep the failover's timeout below the throttle's
/// [`timeout`](crate::ThrottleBuilder::timeout) (default 250 ms), so the failover
/// decides before the throttle gives up. The fallback's own errors are returned (and
/// the throttle's [`OnError`](crate::OnError) policy applies).
///
/// ```no_run
/// # #[cfg(feature = "redis")]
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use throttle::{HttpThrottle, Rate, backend::MemoryBackend};
/// use throttle::backend::{DenyCache, Failover, RedisBackend};
///
/// let redis = RedisBackend::connect("redis://127.0.0.1:6379").await?;
/// // Four app instances: while Redis is down each admits a quarter of the rate.
/// let backend = Failover::builder(DenyCache::new(redis), MemoryBackend::new())
///     .fallback_rate(|rate| Rate::per_millis(rate.limit() / 4, rate.period_ms()))
///     .timeout(Duration::from_millis(100))
///     .failures(5)
///     .cool_down(Duration::from_secs(2))
///     .build()?;
/// let api = HttpThrottle::builder("api:data").rate("100/min").backend(backend).build()?;
/// # let _ = api; Ok(()) }
/// ```
///
/// Put a [`DenyCache`](super::DenyCache) *inside* the failover, as above (it caches
/// the primary's rejections only); outside, it would keep repeating the fallback's
/// rejections after the primary is back.
///
/// The two backends hold separate state: what the primary counted is not known to the
/// fallback, and the other way round. [`reset`](Backend::reset) resets both;
/// [`stat`](Backend::stat) reads the backend that decides now. A
/// [`refund`](Backend::refund) goes to the backend that decided the hit (its
/// [`Route`]), at that backend's rate: a hit the fallback counted is given back there,
/// even once the primary is back; one the primary counted is given back on the primary
/// when the breaker lets a call through (otherwise it stays counted). Cloning is cheap
/// and shares the breaker.
pub struct Failover<P, F> {
    shared: Arc<Shared<P, F>>,
}

struct Shared<P, F> {
    primary: P,
    fallback: F,
    breaker: CircuitBreaker,
    timeout: Duration,
    fallback_rate: Arc<RateMap>,
}

impl<P: Backend, F: Backend> Failover<P, F> {
    /// Options: thresholds, timeout, the fallback's rate, the clock.
    ///
    /// ```
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::Failover;
    ///
    /// let failover = Failover::builder(MemoryBackend::new(), MemoryBackend::new()).failures(3).build()?;
    /// # let _ = failover; Ok::<(), throttle::backend::InvalidBackendOption>(())
    /// ```
    pub fn builder(primary: P, fallback: F) -> FailoverBuilder<P, F> {
        FailoverBuilder {
            primary,
            fallback,
            failures: 5,
            cool_down: Duration::from_secs(2),
            probes: 1,
            timeout: Duration::from_millis(100),
            fallback_rate: Arc::new(|rate| rate),
            clock: Clock::System,
        }
    }

    /// Where the circuit breaker stands.
    ///
    /// ```
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::{CircuitState, Failover};
    /// let failover = Failover::builder(MemoryBackend::new(), MemoryBackend::new()).build()?;
    /// assert_eq!(failover.state(), CircuitState::Closed);
    /// # Ok::<(), throttle::backend::InvalidBackendOption>(())
    /// ```
    pub fn state(&self) -> CircuitState {
        self.shared.breaker.state()
    }

    /// The primary backend.
    ///
    /// ```
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::{Backend, Failover};
    /// let primary = MemoryBackend::builder().namespace("main").build()?;
    /// let failover = Failover::builder(primary, MemoryBackend::new()).build()?;
    /// assert_eq!(failover.primary().namespace(), "main");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn primary(&self) -> &P {
        &self.shared.primary
    }

    /// The fallback backend.
    ///
    /// ```
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::{Backend, Failover};
    /// let fallback = MemoryBackend::builder().namespace("spare").build()?;
    /// let failover = Failover::builder(MemoryBackend::new(), fallback).build()?;
    /// assert_eq!(failover.fallback().namespace(), "spare");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fallback(&self) -> &F {
        &self.shared.fallback
    }
}

impl<P: Backend, F: Backend> Shared<P, F> {
    /// The primary's answer within the timeout, reported to the breaker; `None` when
    /// it failed (and the fallback must decide).
    async fn try_primary<T>(&self, attempt: Attempt<'_>, call: Reply<'_, T>) -> Option<T> {
        match call.within(self.timeout).await {
            Ok(answer) => {
                attempt.succeeded();
                Some(answer)
            }
            Err(error) => {
                attempt.failed();
                crate::log::event!(debug, "failover: primary backend failed: {error}");
                None
            }
        }
    }

    /// `hit` as the fallback decides it: at the fallback's rate.
    fn on_fallback_rate<'h>(&self, hit: Hit<'h>) -> Hit<'h> {
        Hit { rate: (self.fallback_rate)(hit.rate), ..hit }
    }

    /// The fallback's decision, at the fallback's rate. A cost it can never admit
    /// (above its capacity) waits for the next probe of the primary, not forever.
    fn on_fallback(&self, mut decision: Decision) -> Decision {
        if decision.wait_ms == NEVER {
            decision.wait_ms = self.breaker.cool_down_ms();
        }
        decision
    }

    async fn hit(&self, hit: Hit<'_>) -> Result<Decision, BackendError> {
        if let Some(attempt) = self.breaker.attempt() {
            if let Some(decision) = self.try_primary(attempt, self.primary.hit(hit)).await {
                return Ok(decision);
            }
        }
        let decision = self.fallback.hit(self.on_fallback_rate(hit)).await?;
        Ok(self.on_fallback(decision))
    }

    /// [`hit`](Self::hit), and which backend decided.
    async fn hit_routed(&self, hit: Hit<'_>) -> Result<(Decision, Route), BackendError> {
        if let Some(attempt) = self.breaker.attempt() {
            if let Some((decision, route)) = self.try_primary(attempt, self.primary.hit_routed(hit)).await {
                return Ok((decision, route.through(PRIMARY, STORES)));
            }
        }
        let (decision, route) = self.fallback.hit_routed(self.on_fallback_rate(hit)).await?;
        Ok((self.on_fallback(decision), route.through(FALLBACK, STORES)))
    }

    /// Gives the hit back on the backend that decided it. The primary is called only
    /// when the breaker lets a call through, and the outcome counts for the breaker.
    async fn refund(&self, hit: Hit<'_>, since: Since, route: Route) -> Result<bool, BackendError> {
        if route == Route::UNKNOWN {
            return Ok(false);
        }
        match route.split(STORES) {
            (FALLBACK, inner) => self.fallback.refund(self.on_fallback_rate(hit), since, inner).await,
            (_, inner) => {
                let Some(attempt) = self.breaker.attempt() else {
                    return Err(BackendError::Failed("failover: the primary backend is failing (circuit open)".into()));
                };
                match self.primary.refund(hit, since, inner).within(self.timeout).await {
                    Ok(given) => {
                        attempt.succeeded();
                        Ok(given)
                    }
                    Err(error) => {
                        attempt.failed();
                        Err(error)
                    }
                }
            }
        }
    }

    async fn stat(&self, key: Key<'_>, strategy: &dyn DynStrategy, rate: Rate) -> Result<Snapshot, BackendError> {
        if let Some(attempt) = self.breaker.attempt() {
            let call = self.primary.stat(key, strategy, rate);
            if let Some(snapshot) = self.try_primary(attempt, call).await {
                return Ok(snapshot);
            }
        }
        self.fallback.stat(key, strategy, (self.fallback_rate)(rate)).await
    }

    async fn reset(&self, key: Key<'_>) -> Result<(), BackendError> {
        // An administrative call: the primary is tried whatever the breaker says, and
        // its failure is reported, not hidden.
        let primary = self.primary.reset(key).within(self.timeout).await;
        self.fallback.reset(key).await?;
        primary
    }

    /// Several hits on the fallback, as one when it can, else one by one up to the
    /// first rejection; and the route they took there ([`Route::UNKNOWN`] if one by one
    /// took different ones).
    async fn hit_all_on_fallback(&self, hits: &[Hit<'_>]) -> Result<(Vec<Decision>, Route), BackendError> {
        let mapped: Vec<Hit<'_>> = hits.iter().map(|&hit| self.on_fallback_rate(hit)).collect();
        let (decisions, route) = match self.fallback.hit_all_routed(&mapped) {
            Some(together) => together.await?,
            None => {
                let mut decisions = Vec::with_capacity(mapped.len());
                let mut routes = Vec::with_capacity(mapped.len());
                for &hit in &mapped {
                    let (decision, route) = self.fallback.hit_routed(hit).await?;
                    decisions.push(decision);
                    routes.push(route);
                    if !decision.allowed {
                        break;
                    }
                }
                let first = routes.first().copied().unwrap_or_default();
                (decisions, if routes.iter().all(|r| *r == first) { first } else { Route::UNKNOWN })
            }
        };
        let decisions = decisions.into_iter().map(|d| self.on_fallback(d)).collect();
        Ok((decisions, route.through(FALLBACK, STORES)))
    }
}

impl<P: Backend, F: Backend> Backend for Failover<P, F> {
    fn namespace(&self) -> &str {
        self.shared.primary.namespace()
    }

    fn hit<'a>(&'a self, hit: Hit<'a>) -> Reply<'a, Decision> {
        Reply::pending(self.shared.hit(hit))
    }

    fn stat<'a>(&'a self, key: Key<'a>, strategy: &'a dyn DynStrategy, rate: Rate) -> Reply<'a, Snapshot> {
        Reply::pending(self.shared.stat(key, strategy, rate))
    }

    fn reset<'a>(&'a self, key: Key<'a>) -> Reply<'a, ()> {
        Reply::pending(self.shared.reset(key))
    }

    fn hit_all<'a>(&'a self, hits: &'a [Hit<'a>]) -> Option<Reply<'a, Vec<Decision>>> {
        Some(self.hit_all_routed(hits)?.map(|(decisions, _)| decisions))
    }

    fn hit_routed<'a>(&'a self, hit: Hit<'a>) -> Reply<'a, (Decision, Route)> {
        Reply::pending(self.shared.hit_routed(hit))
    }

    fn hit_all_routed<'a>(&'a self, hits: &'a [Hit<'a>]) -> Option<Reply<'a, (Vec<Decision>, Route)>> {
        let shared = &*self.shared;
        let Some(attempt) = shared.breaker.attempt() else {
            return Some(Reply::pending(shared.hit_all_on_fallback(hits)));
        };
        let Some(call) = shared.primary.hit_all_routed(hits) else {
            // One by one instead, each through `hit` (and the breaker).
            attempt.release();
            return None;
        };
        Some(Reply::pending(async move {
            match shared.try_primary(attempt, call).await {
                Some((decisions, route)) => Ok((decisions, route.through(PRIMARY, STORES))),
                None => shared.hit_all_on_fallback(hits).await,
            }
        }))
    }

    fn refund<'a>(&'a self, hit: Hit<'a>, since: Since, route: Route) -> Reply<'a, bool> {
        Reply::pending(self.shared.refund(hit, since, route))
    }

    /// Clones of one failover decide stacked limits together; a throttle on the bare
    /// primary does not join them (it would not fail over).
    fn shares_store_with(&self, other: &dyn Backend) -> bool {
        other.downcast_ref::<Self>().is_some_and(|other| Arc::ptr_eq(&self.shared, &other.shared))
    }
}

impl<P, F> Clone for Failover<P, F> {
    fn clone(&self) -> Self {
        Failover { shared: self.shared.clone() }
    }
}

impl<P: fmt::Debug, F: fmt::Debug> fmt::Debug for Failover<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failover")
            .field("primary", &self.shared.primary)
            .field("fallback", &self.shared.fallback)
            .field("state", &self.shared.breaker.state())
            .field("timeout", &self.shared.timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Failover`]; [`build`](Self::build) checks the thresholds.
///
/// ```
/// use std::time::Duration;
/// use throttle::backend::MemoryBackend;
/// use throttle::backend::Failover;
///
/// let failover = Failover::builder(MemoryBackend::new(), MemoryBackend::new())
///     .failures(3)
///     .cool_down(Duration::from_secs(1))
///     .probes(2)
///     .timeout(Duration::from_millis(50))
///     .build()?;
/// # let _ = failover; Ok::<(), throttle::backend::InvalidBackendOption>(())
/// ```
#[must_use]
pub struct FailoverBuilder<P, F> {
    primary: P,
    fallback: F,
    failures: u32,
    cool_down: Duration,
    probes: u32,
    timeout: Duration,
    fallback_rate: Arc<RateMap>,
    clock: Clock,
}

impl<P: Backend, F: Backend> FailoverBuilder<P, F> {
    /// Consecutive failures of the primary that open the circuit (default 5, at
    /// least 1).
    ///
    /// ```
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::Failover;
    /// assert!(Failover::builder(MemoryBackend::new(), MemoryBackend::new()).failures(0).build().is_err());
    /// ```
    pub fn failures(mut self, consecutive: u32) -> Self {
        self.failures = consecutive;
        self
    }

    /// How long the circuit stays open before probing the primary (default 2 s, at
    /// least 1 ms).
    ///
    /// ```
    /// use std::time::Duration;
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::Failover;
    /// let builder = Failover::builder(MemoryBackend::new(), MemoryBackend::new());
    /// assert!(builder.cool_down(Duration::ZERO).build().is_err());
    /// ```
    pub fn cool_down(mut self, cool_down: Duration) -> Self {
        self.cool_down = cool_down;
        self
    }

    /// Probe calls in flight at once while half-open (default 1, at least 1).
    ///
    /// ```
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::Failover;
    /// assert!(Failover::builder(MemoryBackend::new(), MemoryBackend::new()).probes(3).build().is_ok());
    /// ```
    pub fn probes(mut self, probes: u32) -> Self {
        self.probes = probes;
        self
    }

    /// How long one call to the primary may take (default 100 ms, more than 0)
    /// before the fallback decides. Keep it below the throttle's timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::Failover;
    /// let builder = Failover::builder(MemoryBackend::new(), MemoryBackend::new());
    /// assert!(builder.timeout(Duration::from_millis(30)).build().is_ok());
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The rate the fallback decides at, from the throttle's (default: the same). With
    /// `n` app instances sharing the primary, `limit / n` keeps their sum near the
    /// limit while each decides alone. A limit of 0 rejects everything while failing
    /// over; a cost above the fallback's capacity is rejected with the cool-down as its
    /// wait.
    ///
    /// ```
    /// use throttle::{Rate, backend::MemoryBackend};
    /// use throttle::backend::Failover;
    ///
    /// let failover = Failover::builder(MemoryBackend::new(), MemoryBackend::new())
    ///     .fallback_rate(|rate| Rate::per_millis(rate.limit() / 4, rate.period_ms()))
    ///     .build()?;
    /// # let _ = failover; Ok::<(), throttle::backend::InvalidBackendOption>(())
    /// ```
    pub fn fallback_rate(mut self, f: impl Fn(Rate) -> Rate + Send + Sync + 'static) -> Self {
        self.fallback_rate = Arc::new(f);
        self
    }

    /// The clock the cool-down is measured on (default: the system's); tests pass a
    /// [`ManualClock`](crate::backend::ManualClock).
    ///
    /// ```
    /// use throttle::backend::{ManualClock, MemoryBackend};
    /// use throttle::backend::Failover;
    /// let builder = Failover::builder(MemoryBackend::new(), MemoryBackend::new());
    /// let failover = builder.clock(ManualClock::new(0)).build()?;
    /// # let _ = failover; Ok::<(), throttle::backend::InvalidBackendOption>(())
    /// ```
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Checks the thresholds and builds the failover.
    ///
    /// ```
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::Failover;
    /// let error = Failover::builder(MemoryBackend::new(), MemoryBackend::new()).probes(0).build().unwrap_err();
    /// assert_eq!(error.option, "probes");
    /// ```
    pub fn build(self) -> Result<Failover<P, F>, InvalidBackendOption> {
        if self.failures == 0 {
            return Err(InvalidBackendOption::new("failures", "at least 1 failure must open the circuit"));
        }
        if self.probes == 0 {
            return Err(InvalidBackendOption::new("probes", "at least 1 probe must be let through when half-open"));
        }
        let cool_down_ms = u64::try_from(self.cool_down.as_millis()).unwrap_or(u64::MAX);
        if cool_down_ms == 0 {
            return Err(InvalidBackendOption::new("cool_down", "the circuit must stay open for at least 1 ms"));
        }
        if self.timeout.is_zero() {
            return Err(InvalidBackendOption::new("timeout", "a call to the primary needs more than 0 s"));
        }
        let config = BreakerConfig { failures: self.failures, cool_down_ms, probes: self.probes };
        let shared = Shared {
            primary: self.primary,
            fallback: self.fallback,
            breaker: CircuitBreaker::new(config, self.clock),
            timeout: self.timeout,
            fallback_rate: self.fallback_rate,
        };
        Ok(Failover { shared: Arc::new(shared) })
    }
}

impl<P: fmt::Debug, F: fmt::Debug> fmt::Debug for FailoverBuilder<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailoverBuilder")
            .field("primary", &self.primary)
            .field("fallback", &self.fallback)
            .field("failures", &self.failures)
            .field("cool_down", &self.cool_down)
            .field("probes", &self.probes)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
