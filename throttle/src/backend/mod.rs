//! Where per-key state lives: the embedded [`MemoryBackend`] (the default) or a
//! backend of your own; [`DenyCache`] and [`Failover`] wrap a remote one.

mod circuit_breaker;
mod default;
mod deny_cache;
pub(crate) mod exact;
mod failover;
mod hit;
mod invalid_option;
mod key;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod reply;
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
pub use hit::Hit;
pub use invalid_option::InvalidBackendOption;
pub use key::Key;
pub use memory::{MemoryBackend, MemoryBackendBuilder};
pub use reply::Reply;
pub use route::Route;
pub use since::Since;

use crate::Rate;
use crate::strategy::{Decision, DynStrategy, Snapshot};
use core::any::Any;
use core::fmt::Debug;
use core::future::Future;
use core::pin::Pin;

/// A boxed, `Send` future, as in-flight stores return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A store that runs strategy decisions atomically per key.
///
/// Every method must be atomic per key: `hit` reads the state, runs
/// [`DynStrategy::decide_any`] and writes it back with no other hit interleaved.
///
/// Each call returns a [`Reply`]: [`Reply::ready`] from a store in this process (the
/// throttle then takes it as it is, with no future and no timer), [`Reply::pending`]
/// from a store it must wait for (bounded by the throttle's timeout).
///
/// ```
/// use throttle::backend::{Backend, Hit, Key, Reply};
/// use throttle::strategy::{Decision, DynStrategy, Snapshot};
/// use throttle::{Rate, backend::MemoryBackend};
///
/// /// Logs every hit, and decides in memory.
/// #[derive(Debug, Default)]
/// struct Logged(MemoryBackend);
///
/// impl Backend for Logged {
///     fn namespace(&self) -> &str {
///         self.0.namespace()
///     }
///     fn hit<'a>(&'a self, hit: Hit<'a>) -> Reply<'a, Decision> {
///         println!("hit {} by {}", hit.key, hit.cost);
///         self.0.hit(hit)
///     }
///     fn stat<'a>(&'a self, key: Key<'a>, strategy: &'a dyn DynStrategy, rate: Rate) -> Reply<'a, Snapshot> {
///         self.0.stat(key, strategy, rate)
///     }
///     fn reset<'a>(&'a self, key: Key<'a>) -> Reply<'a, ()> {
///         self.0.reset(key)
///     }
/// }
///
/// let api = throttle::HttpThrottle::builder("docs:logged").rate("5/s").backend(Logged::default()).build()?;
/// # let _ = api;
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a throttle backend",
    note = "use `throttle::backend::MemoryBackend` or implement `throttle::backend::Backend`"
)]
pub trait Backend: sealed::AsAny + Debug + Send + Sync + 'static {
    /// Prefix of every key this backend stores (`"throttle"` by default): letters,
    /// digits, `_`, `-`, `.`, at most [`MAX_NAMESPACE_LEN`](crate::key::MAX_NAMESPACE_LEN)
    /// bytes. A throttle on a backend with another namespace fails to build.
    fn namespace(&self) -> &str;

    /// Records `hit` and returns the decision.
    fn hit<'a>(&'a self, hit: Hit<'a>) -> Reply<'a, Decision>;

    /// Reads `key`'s state without changing it.
    fn stat<'a>(&'a self, key: Key<'a>, strategy: &'a dyn DynStrategy, rate: Rate) -> Reply<'a, Snapshot>;

    /// Forgets `key`, restoring its full quota.
    fn reset<'a>(&'a self, key: Key<'a>) -> Reply<'a, ()>;

    /// Decides several hits as one (stacked limits): either all are admitted, or
    /// nothing changes and the decisions stop at the first rejection. `None` when this
    /// backend cannot for these hits; they then run one by one, and a later rejection
    /// leaves the earlier hits counted.
    fn hit_all<'a>(&'a self, hits: &'a [Hit<'a>]) -> Option<Reply<'a, Vec<Decision>>> {
        let _ = hits;
        None
    }

    /// [`hit`](Self::hit), and which of its stores decided, for a later
    /// [`refund`](Self::refund) of the hit: a hit that takes a refund ticket is sent
    /// this way. The default sends `hit` and answers [`Route::default`]; a backend that
    /// picks a store per hit (a [`Failover`]) says which.
    fn hit_routed<'a>(&'a self, hit: Hit<'a>) -> Reply<'a, (Decision, Route)> {
        self.hit(hit).map(|decision| (decision, Route::default()))
    }

    /// [`hit_all`](Self::hit_all), and which of its stores decided them (one for all:
    /// a backend that would split them answers [`Route::UNKNOWN`]).
    fn hit_all_routed<'a>(&'a self, hits: &'a [Hit<'a>]) -> Option<Reply<'a, (Vec<Decision>, Route)>> {
        Some(self.hit_all(hits)?.map(|decisions| (decisions, Route::default())))
    }

    /// Whether `other` decides in the same store as this backend, so that stacked hits
    /// on throttles of both can be decided together, by one [`hit_all`](Self::hit_all)
    /// on either. By default only the same handle does.
    ///
    /// Throttles ask both ways (`a.shares_store_with(b) || b.shares_store_with(a)`), so
    /// a backend in front of another (a cache) need only recognise the one it wraps;
    /// clones of a store recognise each other with [`downcast_ref`](#method.downcast_ref).
    ///
    /// ```
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::Backend;
    ///
    /// let store = MemoryBackend::new();
    /// assert!(store.shares_store_with(&store.clone()));
    /// assert!(!store.shares_store_with(&MemoryBackend::new()));
    /// ```
    fn shares_store_with(&self, other: &dyn Backend) -> bool {
        core::ptr::addr_eq(self, other)
    }

    /// Whether every reply of [`hit`](Self::hit) and [`hit_routed`](Self::hit_routed)
    /// is ready when it is returned (a store in this process). A throttle then decides on
    /// this backend with no future at all; a reply that is pending all the same fails
    /// the hit ([`BackendError::Failed`], then the throttle's
    /// [`OnError`](crate::OnError)). `false` by default, which is always correct.
    ///
    /// ```
    /// use throttle::backend::{Backend, MemoryBackend};
    ///
    /// assert!(MemoryBackend::new().answers_at_once());
    /// ```
    fn answers_at_once(&self) -> bool {
        false
    }

    /// A moment before a hit, for a later refund of it: [`Since::Instant`] by default
    /// (this process's monotonic clock); a backend deciding on a clock of its own
    /// returns its reading, [`Since::Ms`].
    fn since_now(&self) -> Since {
        Since::Instant(std::time::Instant::now())
    }

    /// Gives back the cost of `hit`, admitted after `since`, as far as the strategy's
    /// [`refund`](crate::strategy::Strategy::refund) finds the hit still holds it;
    /// `Ok(true)` when something was given back. Atomic per key, like `hit`. `route` is
    /// what [`hit_routed`](Self::hit_routed) answered for the hit.
    ///
    /// The default gives nothing back (`Ok(false)`): the hit stays counted. The
    /// in-memory and Redis backends implement it for every built-in strategy, a
    /// [`DenyCache`] forgets the key's cached rejection before passing it on, and a
    /// [`Failover`] passes it to the backend that decided the hit.
    fn refund<'a>(&'a self, hit: Hit<'a>, since: Since, route: Route) -> Reply<'a, bool> {
        let _ = (hit, since, route);
        Reply::ready(Ok(false))
    }
}

impl dyn Backend {
    /// The backend as its concrete type `B`, if it is one: how a backend recognises a
    /// clone of itself in [`shares_store_with`](Backend::shares_store_with).
    ///
    /// ```
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::Backend;
    ///
    /// let backend: &dyn Backend = &MemoryBackend::new();
    /// assert!(backend.downcast_ref::<MemoryBackend>().is_some());
    /// ```
    pub fn downcast_ref<B: Backend>(&self) -> Option<&B> {
        self.as_any().downcast_ref()
    }
}

/// Whether throttles on `a` and `b` can be decided together (see
/// [`Backend::shares_store_with`]).
pub(crate) fn share_a_store(a: &dyn Backend, b: &dyn Backend) -> bool {
    a.shares_store_with(b) || b.shares_store_with(a)
}

mod sealed {
    use super::Any;

    /// Any backend as [`Any`], for `<dyn Backend>::downcast_ref`:
    /// implemented for every type, so no backend writes it.
    #[allow(unreachable_pub, reason = "a supertrait of `Backend` that no one can name")]
    pub trait AsAny: Any {
        fn as_any(&self) -> &dyn Any;
    }

    impl<T: Any> AsAny for T {
        fn as_any(&self) -> &dyn Any {
            self
        }
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
