//! Where in-flight units live: [`InFlightStore`], and the in-process
//! [`MemoryInFlight`].

use crate::backend::{BackendError, BoxFuture, Key};
use core::fmt;
use core::hash::BuildHasher;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

type Hasher = foldhash::fast::RandomState;

/// Units held per key, in one shard.
type Counts = Mutex<HashMap<Box<str>, u64>>;

/// The answer of [`InFlightStore::acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Acquired {
    /// Whether the lease was taken.
    pub admitted: bool,
    /// Units held on the key after the call (the new lease included when admitted).
    pub in_flight: u64,
}

impl Acquired {
    /// An answer: `admitted`, with `in_flight` units held afterwards.
    pub const fn new(admitted: bool, in_flight: u64) -> Self {
        Acquired { admitted, in_flight }
    }
}

/// What [`InFlightStore::release`] did.
#[non_exhaustive]
pub enum Release {
    /// The unit is back already.
    Done,
    /// The unit comes back when this future completes; the limit runs it in the
    /// background (it is `'static`: it owns what it needs).
    Pending(BoxFuture<'static, Result<(), BackendError>>),
}

impl fmt::Debug for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Release::Done => f.write_str("Done"),
            Release::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

/// A store of in-flight units: per key, a set of leases, at most `max` at once.
///
/// [`MemoryInFlight`] (the default) counts in the process; `RedisBackend` (feature
/// `redis`) keeps one sorted set of lease id → expiry per client, so processes share
/// the limit and the leases of a process that died expire by themselves.
pub trait InFlightStore: fmt::Debug + Send + Sync + 'static {
    /// Prefix of every key (letters, digits, `_`, `-`, `.`).
    fn namespace(&self) -> &str;

    /// Takes a unit on `key` under the id `lease` if fewer than `max` are held, the
    /// lease expiring after `ttl` unless renewed (stores whose leases cannot outlive
    /// the process may ignore it). Atomic per key.
    fn acquire<'a>(
        &'a self,
        key: Key<'a>,
        lease: &'a str,
        max: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Acquired, BackendError>>;

    /// Gives the unit of `lease` back. Called when a response ends or is dropped, so
    /// it must not block: return [`Release::Pending`] for work that waits. Releasing
    /// a lease that is gone (expired, released) is not an error.
    fn release(&self, key: Key<'_>, lease: &str) -> Release;

    /// Whether leases expire after their TTL (`false` by default). Live permits on such
    /// a store [`renew`](Self::renew) their leases.
    fn leases_expire(&self) -> bool {
        false
    }

    /// Pushes `lease`'s expiry to `ttl` from now; `Ok(false)` when it is gone (it
    /// expired). Only called when [`leases_expire`](Self::leases_expire).
    fn renew(&self, key: Key<'_>, lease: &str, ttl: Duration) -> BoxFuture<'static, Result<bool, BackendError>> {
        let _ = (key, lease, ttl);
        Box::pin(async { Ok(true) })
    }

    /// Units held on `key` now (live leases only).
    fn in_flight<'a>(&'a self, key: Key<'a>) -> BoxFuture<'a, Result<u64, BackendError>>;

    /// Whether calls leave the process (they then get the limit's timeout).
    fn is_remote(&self) -> bool {
        true
    }
}

/// In-flight units counted in this process: a sharded map of key → units held, where a
/// key exists only while it has units, so memory follows the requests in flight. Leases
/// never expire: a unit comes back when its response ends or is dropped, which in one
/// process always happens. Cloning shares the counts.
///
/// ```
/// use throttle::inflight::{InFlightLimit, MemoryInFlight};
///
/// let store = MemoryInFlight::new();
/// let uploads = InFlightLimit::builder("docs:uploads").max(2).store(store.clone()).build()?;
/// let downloads = InFlightLimit::builder("docs:downloads").max(8).store(store).build()?;
/// # let _ = (uploads, downloads);
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Clone, Default)]
pub struct MemoryInFlight {
    inner: Arc<Shards>,
}

struct Shards {
    hasher: Hasher,
    shards: Box<[Counts]>,
}

impl Default for Shards {
    fn default() -> Self {
        let shards = (std::thread::available_parallelism().map_or(4, |n| n.get()) * 4).next_power_of_two().max(8);
        Shards { hasher: Hasher::default(), shards: (0..shards).map(|_| Mutex::default()).collect() }
    }
}

impl MemoryInFlight {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys with units held now (one per client with requests in flight).
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|shard| shard.lock().len()).sum()
    }

    /// `true` when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &str) -> &Counts {
        let hash = self.inner.hasher.hash_one(key);
        &self.inner.shards[(hash >> 40) as usize & (self.inner.shards.len() - 1)]
    }

    fn acquire_now(&self, key: &str, max: u64) -> Acquired {
        let mut shard = self.shard(key).lock();
        let held = shard.get(key).copied().unwrap_or(0);
        if held >= max {
            return Acquired::new(false, held);
        }
        shard.insert(key.into(), held + 1);
        Acquired::new(true, held + 1)
    }
}

impl InFlightStore for MemoryInFlight {
    fn namespace(&self) -> &str {
        "throttle"
    }

    fn acquire<'a>(
        &'a self,
        key: Key<'a>,
        _lease: &'a str,
        max: u64,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<Acquired, BackendError>> {
        let acquired = self.acquire_now(key.as_str(), max);
        Box::pin(async move { Ok(acquired) })
    }

    fn release(&self, key: Key<'_>, _lease: &str) -> Release {
        let key = key.as_str();
        let mut shard = self.shard(key).lock();
        match shard.get_mut(key) {
            Some(held) if *held > 1 => *held -= 1,
            Some(_) => {
                shard.remove(key);
            }
            None => {}
        }
        Release::Done
    }

    fn in_flight<'a>(&'a self, key: Key<'a>) -> BoxFuture<'a, Result<u64, BackendError>> {
        let key = key.as_str();
        let held = self.shard(key).lock().get(key).copied().unwrap_or(0);
        Box::pin(async move { Ok(held) })
    }

    fn is_remote(&self) -> bool {
        false
    }
}

impl fmt::Debug for MemoryInFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryInFlight").field("keys", &self.len()).finish()
    }
}
