//! Where per-key state lives: the embedded [`MemoryBackend`] (the default) or a
//! backend of your own; [`DenyCache`] and [`Failover`] wrap a remote one.

mod circuit_breaker;
mod default;
mod deny_cache;
mod failover;
mod invalid_option;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod route;
mod since;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{Batching, RedisBackend};
pub use crate::clock::{Clock, ManualClock};
pub use circuit_breaker::CircuitState;
pub use default::{DefaultBackendInUse, default_backend, set_default_backend};
pub use deny_cache::{DenyCache, DenyCacheBuilder};
pub use failover::{Failover, FailoverBuilder};
pub use invalid_option::InvalidBackendOption;
pub use memory::{MemoryBackend, MemoryBackendBuilder};
pub use route::Route;
pub use since::Since;

use crate::Rate;
use crate::strategy::{Decision, DynStrategy, Snapshot};
use core::fmt::Debug;
use core::future::Future;
use core::pin::Pin;

/// One hit of [`Backend::hit_all`]: key, strategy, rate and cost.
pub type HitRequest<'a> = (&'a str, &'a dyn DynStrategy, Rate, u64);

/// A boxed, `Send` future, as backend methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A store that runs strategy decisions atomically per key.
///
/// Every method must be atomic per key: `hit` reads the state, runs
/// [`DynStrategy::decide_any`] and writes it back with no other hit interleaved.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a throttle backend",
    note = "use `throttle::backend::MemoryBackend` or implement `throttle::backend::Backend`"
)]
pub trait Backend: Debug + Send + Sync + 'static {
    /// Prefix of every key this backend stores (`"throttle"` by default): letters,
    /// digits, `_`, `-`, `.`, at most [`MAX_NAMESPACE_LEN`](crate::key::MAX_NAMESPACE_LEN)
    /// bytes. A throttle on a backend with another namespace fails to build.
    fn namespace(&self) -> &str;

    /// Records a hit of `cost` on `key` and returns the decision.
    fn hit<'a>(
        &'a self,
        key: &'a str,
        strategy: &'a dyn DynStrategy,
        rate: Rate,
        cost: u64,
    ) -> BoxFuture<'a, Result<Decision, BackendError>>;

    /// Reads `key`'s state without changing it.
    fn stat<'a>(
        &'a self,
        key: &'a str,
        strategy: &'a dyn DynStrategy,
        rate: Rate,
    ) -> BoxFuture<'a, Result<Snapshot, BackendError>>;

    /// Forgets `key`, restoring its full quota.
    fn reset<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Decides several hits as one (stacked limits): either all are admitted, or
    /// nothing changes and the decisions stop at the first rejection. `None` when this
    /// backend cannot for these hits; they then run one by one, and a later rejection
    /// leaves the earlier hits counted.
    fn hit_all<'a>(&'a self, hits: &'a [HitRequest<'a>]) -> Option<BoxFuture<'a, Result<Vec<Decision>, BackendError>>> {
        let _ = hits;
        None
    }

    /// [`hit`](Self::hit), and which of its stores decided, for a later
    /// [`refund`](Self::refund) of the hit: a hit that takes a refund ticket is sent
    /// this way. The default sends `hit` and answers [`Route::default`]; a backend that
    /// picks a store per hit (a [`Failover`]) says which.
    fn hit_routed<'a>(
        &'a self,
        key: &'a str,
        strategy: &'a dyn DynStrategy,
        rate: Rate,
        cost: u64,
    ) -> BoxFuture<'a, Result<(Decision, Route), BackendError>> {
        let hit = self.hit(key, strategy, rate, cost);
        Box::pin(async move { Ok((hit.await?, Route::default())) })
    }

    /// [`hit_all`](Self::hit_all), and which of its stores decided them (one for all:
    /// a backend that would split them answers `None`).
    #[allow(clippy::type_complexity, reason = "`hit_all`'s type, with the route beside the decisions")]
    fn hit_all_routed<'a>(
        &'a self,
        hits: &'a [HitRequest<'a>],
    ) -> Option<BoxFuture<'a, Result<(Vec<Decision>, Route), BackendError>>> {
        let together = self.hit_all(hits)?;
        Some(Box::pin(async move { Ok((together.await?, Route::default())) }))
    }

    /// Equal for handles on one store (clones of one backend), so hits on throttles
    /// that share it can be decided together.
    fn store_id(&self) -> usize {
        (self as *const Self).cast::<()>() as usize
    }

    /// A moment before a hit, for a later refund of it: [`Since::Instant`] by default
    /// (this process's monotonic clock); a backend deciding on a clock of its own
    /// returns its reading, [`Since::Ms`].
    fn since_now(&self) -> Since {
        Since::Instant(std::time::Instant::now())
    }

    /// Gives back `cost` of a hit on `key` admitted after `since`, as far as the
    /// strategy's [`refund`](crate::strategy::Strategy::refund) finds the hit still
    /// holds it; `Ok(true)` when something was given back. Atomic per key, like `hit`.
    /// `route` is what [`hit_routed`](Self::hit_routed) answered for the hit.
    ///
    /// The default gives nothing back (`Ok(false)`): the hit stays counted. The
    /// in-memory and Redis backends implement it for every built-in strategy, a
    /// [`DenyCache`] forgets the key's cached rejection before passing it on, and a
    /// [`Failover`] passes it to the backend that decided the hit.
    fn refund<'a>(
        &'a self,
        key: &'a str,
        strategy: &'a dyn DynStrategy,
        rate: Rate,
        cost: u64,
        since: Since,
        route: Route,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        let _ = (key, strategy, rate, cost, since, route);
        Box::pin(core::future::ready(Ok(false)))
    }

    /// The in-memory backend answers synchronously; throttles use this to skip the
    /// boxed future and the timeout on the hot path.
    #[doc(hidden)]
    fn as_memory(&self) -> Option<&MemoryBackend> {
        None
    }
}

/// A backend could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The backend did not answer within the throttle's timeout.
    #[error("throttle backend timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The backend failed (connection refused, script error, ...).
    #[error("throttle backend failed: {0}")]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}
