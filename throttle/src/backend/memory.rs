//! The embedded in-memory backend: sharded maps of per-key strategy state.

use super::{Backend, BackendError, BoxFuture, HitRequest, Route, Since};
use crate::strategy::{AnyState, Decision, DynStrategy, Snapshot};
use crate::{Clock, Rate};
use core::fmt;
use core::hash::BuildHasher;
use hashbrown::{HashTable, hash_table};
use parking_lot::{Mutex, MutexGuard};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

type Hasher = foldhash::fast::RandomState;

/// Process-local state for every throttle that has no other backend; the default.
///
/// Keys are spread over many independently locked shards, so hits on different keys
/// rarely contend and a hit on one key is exact under any number of threads. Each key
/// holds only its strategy's state (16 bytes for a fixed window) and the time it
/// expires.
///
/// Cloning is cheap and shares the state.
///
/// # Memory
///
/// Memory follows the number of *active* clients, not every client ever seen. Expired
/// keys are swept:
///
/// - from a shard, once the keys inserted into it since its last sweep reach half its
///   size, so under churn a shard holds at most about 1.5× its live keys;
/// - from every shard, by the first call (hit, stat or reset, on any key) that comes
///   [`SWEEP_PERIOD`](Self::SWEEP_PERIOD) or more after the previous such sweep, by this
///   backend's clock, so expired keys never linger in shards that see no new keys;
/// - on demand, with [`sweep`](Self::sweep).
///
/// A sweep that leaves a shard's table less than a quarter full shrinks it, so the
/// memory taken by a spike of clients is given back once their keys expire
/// ([`capacity`](Self::capacity) shows it). Sweeps are amortised over the calls: the
/// decision itself only reads one shared atomic to learn whether a sweep is due.
///
/// ```
/// use std::time::Duration;
/// use throttle::strategy::FixedWindow;
/// use throttle::{ManualClock, MemoryBackend, Rate};
///
/// let clock = ManualClock::new(0);
/// let backend = MemoryBackend::builder().clock(clock.clone()).build()?;
/// for client in 0..1_000 {
///     backend.hit_now(&format!("ns:uid:{client}:default"), &FixedWindow, Rate::per_second(5), 1);
/// }
/// assert_eq!(backend.len(), 1_000);
/// // The windows end; the next call, on any key, sweeps every shard.
/// clock.advance(Duration::from_secs(1) + MemoryBackend::SWEEP_PERIOD);
/// backend.hit_now("ns:uid:0:default", &FixedWindow, Rate::per_second(5), 1);
/// assert_eq!(backend.len(), 1);
/// assert!(backend.capacity() < 100);
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    namespace: String,
    clock: Clock,
    hasher: Hasher,
    shards: Box<[Shard]>,
    /// Clock time (ms) from which the next call sweeps every shard.
    next_sweep_ms: AtomicU64,
}

#[derive(Debug, Default)]
#[repr(align(64))] // one cache line per shard lock, so shards do not false-share
struct Shard(Mutex<ShardMap>);

/// One shard's keys. Keyed by the hash computed once per call (it also picks the
/// shard), so a decision hashes its key a single time.
#[derive(Default)]
struct ShardMap {
    entries: HashTable<(Box<str>, Entry)>,
    inserts_since_sweep: usize,
}

impl fmt::Debug for ShardMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardMap").field("keys", &self.entries.len()).finish_non_exhaustive()
    }
}

/// A key's encoded state and expiry, kept to roll a multi-hit back.
type Saved = (Vec<i64>, u64);

#[derive(Debug)]
struct Entry {
    state: AnyState,
    expires_at: u64,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// How often, at most, a call sweeps every shard (by the backend's clock). See
    /// [Memory](Self#memory).
    pub const SWEEP_PERIOD: Duration = Duration::from_secs(10);

    /// A backend with the system clock and the namespace `"throttle"`.
    pub fn new() -> Self {
        Self::from_parts("throttle".to_string(), Clock::System)
    }

    /// Options: namespace and clock.
    pub fn builder() -> MemoryBackendBuilder {
        MemoryBackendBuilder { namespace: "throttle".to_string(), clock: Clock::System }
    }

    fn from_parts(namespace: String, clock: Clock) -> Self {
        let shards = std::thread::available_parallelism().map_or(4, |n| n.get()) * 8;
        let shards = shards.next_power_of_two().max(16);
        let shards = (0..shards).map(|_| Shard::default()).collect();
        let next_sweep_ms = AtomicU64::new(clock.now_ms().saturating_add(SWEEP_PERIOD_MS));
        Self { inner: Arc::new(Inner { namespace, clock, hasher: Hasher::default(), shards, next_sweep_ms }) }
    }

    /// The clock this backend decides with.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Number of keys currently held, expired ones included until they are swept (see
    /// [Memory](Self#memory)).
    ///
    /// ```
    /// let backend = throttle::MemoryBackend::new();
    /// assert_eq!(backend.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| s.0.lock().entries.len()).sum()
    }

    /// `true` when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many keys the tables have room for without growing: the memory reserved,
    /// used or not. It grows with [`len`](Self::len) and falls back once a sweep finds
    /// a table less than a quarter full (see [Memory](Self#memory)).
    ///
    /// ```
    /// let backend = throttle::MemoryBackend::new();
    /// assert!(backend.capacity() >= backend.len());
    /// ```
    pub fn capacity(&self) -> usize {
        self.inner.shards.iter().map(|s| s.0.lock().entries.capacity()).sum()
    }

    /// Drops every expired key now, and gives back the room they took (this also
    /// happens on its own: see [Memory](Self#memory)).
    pub fn sweep(&self) {
        self.sweep_all(self.inner.clock.now_ms());
    }

    /// Forgets every key and gives back the tables' memory.
    pub fn clear(&self) {
        for shard in self.inner.shards.iter() {
            *shard.0.lock() = ShardMap::default();
        }
    }

    fn sweep_all(&self, now: u64) {
        for shard in self.inner.shards.iter() {
            shard.0.lock().sweep(now, &self.inner.hasher);
        }
    }

    /// Sweeps every shard when the period has passed (or the clock went back past it).
    /// Called after a call's own locks are released; one atomic load when not due.
    fn sweep_if_due(&self, now: u64) {
        let due = self.inner.next_sweep_ms.load(Ordering::Relaxed);
        if now < due && due - now <= SWEEP_PERIOD_MS {
            return;
        }
        let next = now.saturating_add(SWEEP_PERIOD_MS);
        // One caller wins the sweep; the others go on at once.
        if self.inner.next_sweep_ms.compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.sweep_all(now);
        }
    }

    /// The key's hash and the index of its shard.
    fn locate(&self, key: &str) -> (u64, usize) {
        let hash = self.inner.hasher.hash_one(key);
        // Bits 40.. pick the shard; the table inside uses the low bits and the top 7, so
        // the two choices stay independent.
        (hash, (hash >> 40) as usize & (self.inner.shards.len() - 1))
    }

    /// Decides a hit synchronously: the in-memory fast path.
    pub fn hit_now(&self, key: &str, strategy: &dyn DynStrategy, rate: Rate, cost: u64) -> Decision {
        let now = self.inner.clock.now_ms();
        let (hash, shard) = self.locate(key);
        let decision =
            self.inner.shards[shard].0.lock().hit(hash, (key, strategy, rate, cost), now, &self.inner.hasher);
        self.sweep_if_due(now);
        decision
    }

    /// Decides several hits as one: either every hit is admitted, or the state of
    /// every key is left as it was and the decisions stop at the first rejection.
    /// `None` when a strategy has no state codec to roll back with; then nothing was
    /// touched.
    fn hit_all_now(&self, hits: &[HitRequest<'_>]) -> Option<Vec<Decision>> {
        if !hits.iter().all(|(_, strategy, _, _)| strategy.has_codec()) {
            return None;
        }
        let now = self.inner.clock.now_ms();
        let hasher = &self.inner.hasher;
        let mut located: Vec<(u64, usize)> = hits.iter().map(|(key, ..)| self.locate(key)).collect();
        let mut shards: Vec<usize> = located.iter().map(|(_, shard)| *shard).collect();
        shards.sort_unstable();
        shards.dedup();
        // Ascending shard order: two multi-hits can never wait on each other in a cycle.
        let mut guards: Vec<MutexGuard<'_, ShardMap>> = shards.iter().map(|&i| self.inner.shards[i].0.lock()).collect();
        // From here on, each hit names the guard of its shard.
        for (_, shard) in &mut located {
            *shard = shards.partition_point(|&i| i < *shard);
        }
        let decisions = decide_jointly(&mut guards, &located, hits, now, hasher);
        // Only now, with every key decided (or restored), may a sweep run: a sweep in
        // the middle could drop a key inserted for this call.
        for map in &mut guards {
            map.sweep_if_crowded(now, hasher);
        }
        drop(guards);
        self.sweep_if_due(now);
        Some(decisions)
    }

    /// Reads a key's state synchronously.
    pub fn stat_now(&self, key: &str, strategy: &dyn DynStrategy, rate: Rate) -> Snapshot {
        let now = self.inner.clock.now_ms();
        let (hash, shard) = self.locate(key);
        let snapshot = {
            let map = self.inner.shards[shard].0.lock();
            strategy.stat_any(map.get(hash, key).map(|e| &e.state), now, rate)
        };
        self.sweep_if_due(now);
        snapshot
    }

    /// Gives back `cost` of a hit on `key` admitted at or after `since_ms` (this
    /// backend's clock), synchronously; see [`Backend::refund`].
    pub fn refund_now(&self, key: &str, strategy: &dyn DynStrategy, rate: Rate, cost: u64, since_ms: u64) -> bool {
        let now = self.inner.clock.now_ms();
        let (hash, shard) = self.locate(key);
        let mut map = self.inner.shards[shard].0.lock();
        let Some((_, entry)) = map.entries.find_mut(hash, |(k, _)| **k == *key) else { return false };
        match strategy.refund_any(&mut entry.state, now, rate, cost, since_ms) {
            Some(expires_at) => {
                entry.expires_at = expires_at;
                true
            }
            None => false,
        }
    }

    /// Forgets one key.
    pub fn reset_now(&self, key: &str) {
        let (hash, shard) = self.locate(key);
        self.inner.shards[shard].0.lock().remove(hash, key);
        self.sweep_if_due(self.inner.clock.now_ms());
    }
}

/// [`MemoryBackend::SWEEP_PERIOD`] in milliseconds.
const SWEEP_PERIOD_MS: u64 = MemoryBackend::SWEEP_PERIOD.as_millis() as u64;

/// Decides `hits` in order on their locked shards (`located`: each hit's hash and the
/// index of its shard's guard). At the first rejection, every key touched so far is
/// restored, and the decisions stop there.
fn decide_jointly(
    guards: &mut [MutexGuard<'_, ShardMap>],
    located: &[(u64, usize)],
    hits: &[HitRequest<'_>],
    now: u64,
    hasher: &Hasher,
) -> Vec<Decision> {
    // Per hit so far: its encoded state and expiry before this call (`None`: the key was new).
    let mut undo: Vec<Option<Saved>> = Vec::with_capacity(hits.len());
    let mut decisions = Vec::with_capacity(hits.len());
    for (&(key, strategy, rate, cost), &(hash, guard)) in hits.iter().zip(located) {
        let map = &mut *guards[guard];
        let (entry, before) = map.entry_for(hash, key, strategy, hasher);
        undo.push(before);
        let (decision, expires_at) = strategy.decide_any(&mut entry.state, now, rate, cost);
        entry.expires_at = expires_at;
        decisions.push(decision);
        if !decision.allowed {
            for ((before, &(key, strategy, ..)), &(hash, guard)) in undo.into_iter().zip(hits).zip(located).rev() {
                guards[guard].restore(hash, key, strategy, before);
            }
            break;
        }
    }
    decisions
}

impl ShardMap {
    fn get(&self, hash: u64, key: &str) -> Option<&Entry> {
        self.entries.find(hash, |(k, _)| **k == *key).map(|(_, entry)| entry)
    }

    fn remove(&mut self, hash: u64, key: &str) {
        if let Ok(entry) = self.entries.find_entry(hash, |(k, _)| **k == *key) {
            entry.remove();
        }
    }

    /// One hit on one key; a new key is inserted with its decided state.
    fn hit(&mut self, hash: u64, (key, strategy, rate, cost): HitRequest<'_>, now: u64, hasher: &Hasher) -> Decision {
        if let Some((_, entry)) = self.entries.find_mut(hash, |(k, _)| **k == *key) {
            let (decision, expires_at) = strategy.decide_any(&mut entry.state, now, rate, cost);
            entry.expires_at = expires_at;
            return decision;
        }
        let mut state = strategy.new_state();
        let (decision, expires_at) = strategy.decide_any(&mut state, now, rate, cost);
        self.entries.insert_unique(hash, (key.into(), Entry { state, expires_at }), |(k, _)| hasher.hash_one(&**k));
        self.inserts_since_sweep += 1;
        self.sweep_if_crowded(now, hasher);
        decision
    }

    /// The key's entry, inserted fresh if absent, with what it held before (`None`: it
    /// was new). A fresh entry never expires until it is decided, and nothing sweeps
    /// here, so it stays until the caller is done.
    fn entry_for(
        &mut self,
        hash: u64,
        key: &str,
        strategy: &dyn DynStrategy,
        hasher: &Hasher,
    ) -> (&mut Entry, Option<Saved>) {
        let inserted = match self.entries.entry(hash, |(k, _)| **k == *key, |(k, _)| hasher.hash_one(&**k)) {
            hash_table::Entry::Occupied(occupied) => {
                let (_, entry) = occupied.into_mut();
                let before = strategy.encode_any(&entry.state).map(|fields| (fields, entry.expires_at));
                return (entry, before);
            }
            hash_table::Entry::Vacant(vacant) => {
                vacant.insert((key.into(), Entry { state: strategy.new_state(), expires_at: u64::MAX }))
            }
        };
        self.inserts_since_sweep += 1;
        (&mut inserted.into_mut().1, None)
    }

    /// Puts back what a key held before a multi-hit (removes it if it was new, or if
    /// its old state was unreadable, which reads as new).
    fn restore(&mut self, hash: u64, key: &str, strategy: &dyn DynStrategy, before: Option<Saved>) {
        match before.and_then(|(fields, at)| strategy.decode_any(&fields).map(|state| (state, at))) {
            Some((state, expires_at)) => {
                if let Some((_, entry)) = self.entries.find_mut(hash, |(k, _)| **k == *key) {
                    *entry = Entry { state, expires_at };
                }
            }
            None => self.remove(hash, key),
        }
    }

    /// Sweeps once inserts since the last sweep reach half the map: amortised O(1) per
    /// insert, and the map never holds more than ~1.5x its live keys.
    fn sweep_if_crowded(&mut self, now: u64, hasher: &Hasher) {
        if self.inserts_since_sweep >= (self.entries.len() / 2).max(64) {
            self.sweep(now, hasher);
        }
    }

    /// Drops expired keys, and shrinks a table left less than a quarter full to twice
    /// its keys (so it does not shrink and grow back on every sweep).
    fn sweep(&mut self, now: u64, hasher: &Hasher) {
        self.entries.retain(|(_, entry)| entry.expires_at > now);
        self.inserts_since_sweep = 0;
        let len = self.entries.len();
        if len < self.entries.capacity() / 4 {
            self.entries.shrink_to(len * 2, |(k, _)| hasher.hash_one(&**k));
        }
    }
}

impl Backend for MemoryBackend {
    fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    fn hit<'a>(
        &'a self,
        key: &'a str,
        strategy: &'a dyn DynStrategy,
        rate: Rate,
        cost: u64,
    ) -> BoxFuture<'a, Result<Decision, BackendError>> {
        Box::pin(async move { Ok(self.hit_now(key, strategy, rate, cost)) })
    }

    fn stat<'a>(
        &'a self,
        key: &'a str,
        strategy: &'a dyn DynStrategy,
        rate: Rate,
    ) -> BoxFuture<'a, Result<Snapshot, BackendError>> {
        Box::pin(async move { Ok(self.stat_now(key, strategy, rate)) })
    }

    fn reset<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            self.reset_now(key);
            Ok(())
        })
    }

    fn hit_all<'a>(&'a self, hits: &'a [HitRequest<'a>]) -> Option<BoxFuture<'a, Result<Vec<Decision>, BackendError>>> {
        let decisions = self.hit_all_now(hits)?;
        Some(Box::pin(async move { Ok(decisions) }))
    }

    fn store_id(&self) -> usize {
        Arc::as_ptr(&self.inner).cast::<()>() as usize
    }

    fn as_memory(&self) -> Option<&MemoryBackend> {
        Some(self)
    }

    fn since_now(&self) -> Since {
        Since::Ms(self.inner.clock.now_ms())
    }

    fn refund<'a>(
        &'a self,
        key: &'a str,
        strategy: &'a dyn DynStrategy,
        rate: Rate,
        cost: u64,
        since: Since,
        _route: Route,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        let since_ms = since.as_ms_before(self.inner.clock.now_ms());
        Box::pin(core::future::ready(Ok(self.refund_now(key, strategy, rate, cost, since_ms))))
    }
}

/// Builds a [`MemoryBackend`].
#[derive(Debug)]
#[must_use]
pub struct MemoryBackendBuilder {
    namespace: String,
    clock: Clock,
}

impl MemoryBackendBuilder {
    /// The key prefix (letters, digits, `_`, `-`, `.`; not empty).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The clock decisions use; tests pass a [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Checks the options and builds the backend.
    pub fn build(self) -> Result<MemoryBackend, crate::ConfigError> {
        crate::key::validate_namespace(&self.namespace)?;
        Ok(MemoryBackend::from_parts(self.namespace, self.clock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use crate::strategy::FixedWindow;
    use std::time::Duration;

    #[test]
    fn memory_stays_bounded_under_a_million_distinct_clients() {
        let clock = ManualClock::new(0);
        let backend = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
        let rate = Rate::per_second(10);
        let mut peak = 0;
        for second in 0..100u64 {
            for client in 0..10_000u64 {
                let key = format!("ns:u:{}:default", second * 10_000 + client);
                assert!(backend.hit_now(&key, &FixedWindow, rate, 1).allowed);
            }
            peak = peak.max(backend.len());
            clock.advance(Duration::from_secs(1));
        }
        // 1,000,000 clients seen, 10,000 live per second: the map holds a few seconds' worth.
        assert!(peak < 40_000, "peak {peak} keys");
        backend.sweep();
        assert_eq!(backend.len(), 0);
    }

    #[test]
    fn threads_hammering_one_key_are_admitted_exactly() {
        let backend = MemoryBackend::builder().clock(ManualClock::new(0)).build().unwrap();
        let rate = Rate::per_minute(1_000);
        let admitted: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| (0..500).filter(|_| backend.hit_now("k", &FixedWindow, rate, 1).allowed).count())
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(admitted, 1_000);
        assert_eq!(backend.stat_now("k", &FixedWindow, rate).remaining, 0);
    }

    #[test]
    fn state_of_another_strategy_reads_as_fresh() {
        #[derive(Debug)]
        struct Other;
        impl crate::strategy::Strategy for Other {
            type State = String;
            fn name(&self) -> &'static str {
                "other"
            }
            fn decide(&self, _: &mut String, _: u64, rate: Rate, _: u64) -> Decision {
                Decision { allowed: true, remaining: rate.limit(), wait_ms: 0, reset_ms: 0 }
            }
            fn stat(&self, _: &String, _: u64, rate: Rate) -> Snapshot {
                Snapshot { remaining: rate.limit(), wait_ms: 0, reset_ms: 0, metadata: crate::strategy::Metadata::None }
            }
            fn expires_at(&self, _: &String, _: Rate) -> u64 {
                u64::MAX
            }
        }
        let backend = MemoryBackend::builder().clock(ManualClock::new(0)).build().unwrap();
        let rate = Rate::per_minute(3);
        assert!(backend.hit_now("k", &Other, rate, 1).allowed);
        assert_eq!(backend.stat_now("k", &FixedWindow, rate).remaining, 3);
        assert_eq!(backend.hit_now("k", &FixedWindow, rate, 1).remaining, 2);
    }
}
