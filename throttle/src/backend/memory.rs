//! The embedded in-memory backend: sharded maps of per-key strategy state.

use super::{Backend, BackendError, BoxFuture, HitRequest};
use crate::strategy::{AnyState, Decision, DynStrategy, Snapshot};
use crate::{Clock, Rate};
use core::fmt;
use core::hash::BuildHasher;
use hashbrown::HashTable;
use parking_lot::Mutex;
use std::sync::Arc;

type Hasher = foldhash::fast::RandomState;

/// Process-local state for every throttle that has no other backend; the default.
///
/// Keys are spread over many independently locked shards, so hits on different keys
/// rarely contend and a hit on one key is exact under any number of threads. Each key
/// holds only its strategy's state (16 bytes for a fixed window) and the time it
/// expires; expired keys are swept as new keys arrive, so memory follows the number of
/// *active* clients, not every client ever seen.
///
/// Cloning is cheap and shares the state.
///
/// ```
/// use throttle::{ManualClock, MemoryBackend};
///
/// let clock = ManualClock::new(0);
/// let backend = MemoryBackend::builder().clock(clock.clone()).build()?;
/// assert_eq!(backend.len(), 0);
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
        Self { inner: Arc::new(Inner { namespace, clock, hasher: Hasher::default(), shards }) }
    }

    /// The clock this backend decides with.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Number of keys currently held (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| s.0.lock().entries.len()).sum()
    }

    /// `true` when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every expired key now (this also happens on its own as keys arrive).
    pub fn sweep(&self) {
        let now = self.inner.clock.now_ms();
        for shard in self.inner.shards.iter() {
            shard.0.lock().sweep(now);
        }
    }

    /// Forgets every key.
    pub fn clear(&self) {
        for shard in self.inner.shards.iter() {
            shard.0.lock().entries.clear();
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
        let mut map = self.inner.shards[shard].0.lock();
        if let Some(entry) = map.get_mut(hash, key) {
            let (decision, expires_at) = strategy.decide_any(&mut entry.state, now, rate, cost);
            entry.expires_at = expires_at;
            return decision;
        }
        let mut state = strategy.new_state();
        let (decision, expires_at) = strategy.decide_any(&mut state, now, rate, cost);
        map.insert_new(hash, key, Entry { state, expires_at }, now, &self.inner.hasher);
        decision
    }

    /// Decides several hits as one: either every hit is admitted, or the state of
    /// every key is left as it was and the decisions stop at the first rejection.
    /// `None` when a strategy has no state codec to roll back with.
    fn hit_all_now(&self, hits: &[HitRequest<'_>]) -> Option<Vec<Decision>> {
        if !hits.iter().all(|(_, strategy, _, _)| strategy.has_codec()) {
            return None;
        }
        let now = self.inner.clock.now_ms();
        let hasher = &self.inner.hasher;
        let located: Vec<(u64, usize)> = hits.iter().map(|(key, ..)| self.locate(key)).collect();
        let mut indices: Vec<usize> = located.iter().map(|(_, shard)| *shard).collect();
        indices.sort_unstable();
        indices.dedup();
        // Ascending shard order: two multi-hits can never wait on each other in a cycle.
        let mut guards: Vec<(usize, parking_lot::MutexGuard<'_, ShardMap>)> =
            indices.into_iter().map(|i| (i, self.inner.shards[i].0.lock())).collect();
        // Per hit so far: its encoded state and expiry before this call (`None`: the key was new).
        let mut undo: Vec<(usize, Option<Saved>)> = Vec::with_capacity(hits.len());
        let mut decisions = Vec::with_capacity(hits.len());
        for (n, (key, strategy, rate, cost)) in hits.iter().enumerate() {
            let (hash, shard) = located[n];
            let map = &mut guards.iter_mut().find(|(i, _)| *i == shard)?.1;
            if map.get_mut(hash, key).is_none() {
                map.insert_new(hash, key, Entry { state: strategy.new_state(), expires_at: 0 }, now, hasher);
                undo.push((n, None));
            } else {
                let entry = map.get_mut(hash, key)?;
                undo.push((n, strategy.encode_any(&entry.state).map(|fields| (fields, entry.expires_at))));
            }
            let entry = map.get_mut(hash, key)?;
            let (decision, expires_at) = strategy.decide_any(&mut entry.state, now, *rate, *cost);
            entry.expires_at = expires_at;
            decisions.push(decision);
            if !decision.allowed {
                for (m, before) in undo.into_iter().rev() {
                    let (key, strategy, ..) = hits[m];
                    let (hash, shard) = located[m];
                    let map = &mut guards.iter_mut().find(|(i, _)| *i == shard)?.1;
                    match before.and_then(|(fields, at)| strategy.decode_any(&fields).map(|s| (s, at))) {
                        Some((state, expires_at)) => {
                            if let Some(entry) = map.get_mut(hash, key) {
                                *entry = Entry { state, expires_at };
                            }
                        }
                        // The key was new (or its old state was unreadable, which reads as new).
                        None => map.remove(hash, key),
                    }
                }
                return Some(decisions);
            }
        }
        Some(decisions)
    }

    /// Reads a key's state synchronously.
    pub fn stat_now(&self, key: &str, strategy: &dyn DynStrategy, rate: Rate) -> Snapshot {
        let now = self.inner.clock.now_ms();
        let (hash, shard) = self.locate(key);
        let map = self.inner.shards[shard].0.lock();
        strategy.stat_any(map.get(hash, key).map(|e| &e.state), now, rate)
    }

    /// Forgets one key.
    pub fn reset_now(&self, key: &str) {
        let (hash, shard) = self.locate(key);
        self.inner.shards[shard].0.lock().remove(hash, key);
    }
}

impl ShardMap {
    fn get(&self, hash: u64, key: &str) -> Option<&Entry> {
        self.entries.find(hash, |(k, _)| **k == *key).map(|(_, entry)| entry)
    }

    fn get_mut(&mut self, hash: u64, key: &str) -> Option<&mut Entry> {
        self.entries.find_mut(hash, |(k, _)| **k == *key).map(|(_, entry)| entry)
    }

    fn remove(&mut self, hash: u64, key: &str) {
        if let Ok(entry) = self.entries.find_entry(hash, |(k, _)| **k == *key) {
            entry.remove();
        }
    }

    /// Inserts a key known to be absent.
    fn insert_new(&mut self, hash: u64, key: &str, entry: Entry, now: u64, hasher: &Hasher) {
        self.entries.insert_unique(hash, (key.into(), entry), |(k, _)| hasher.hash_one(&**k));
        self.inserts_since_sweep += 1;
        // Sweep once inserts reach half the map: amortised O(1) per insert, and the map
        // never holds more than ~1.5x its live keys.
        if self.inserts_since_sweep >= (self.entries.len() / 2).max(64) {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: u64) {
        self.entries.retain(|(_, entry)| entry.expires_at > now);
        self.inserts_since_sweep = 0;
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
