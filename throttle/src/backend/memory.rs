//! The embedded in-memory backend: sharded maps of per-key strategy state, keyed by
//! 128 bits per key: its exact form, or a keyed digest.

mod packed;

use self::packed::{Digest, Packed, PackedOp, Pair};
use super::{Backend, Hit, Key, Reply, Route, Since};
use crate::strategy::{AnyState, Decision, DynStrategy, Snapshot, Strategy};
use crate::{Clock, Rate};
use core::fmt;
use core::hash::BuildHasher;
use hashbrown::HashTable;
use parking_lot::{Mutex, MutexGuard};
use siphasher::sip128::SipHasher13;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Process-local state for every throttle that has no other backend; the default.
///
/// Keys are spread over many independently locked shards, so hits on different keys
/// rarely contend and a hit on one key is exact under any number of threads.
///
/// A key is held in 128 bits, never as text: a throttle's key for an IPv4 client as
/// its exact form (the address, and a keyed hash of the text around
/// it, computed once per throttle: nothing to hash per decision), any other key as its
/// digest (keyed SipHash-1-3 with a random key per backend). Either way no client can
/// choose a key that collides with another's. A fixed window, token bucket, leaky bucket or GCRA state is packed with it
/// into 28 bytes (about 61 bytes a key in a table, with the table's free room); other
/// states, and values too large to pack, are boxed.
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
/// use throttle::{Rate, backend::{ManualClock, MemoryBackend}};
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

struct Inner {
    namespace: String,
    clock: Clock,
    /// SipHash-1-3 keyed for this backend's digests: random, never shown.
    digester: SipHasher13,
    /// Keys of the permutation that spreads exact keys over shards and buckets.
    spread: (u64, u64),
    shards: Box<[Shard]>,
    /// Clock time (ms) from which the next call sweeps every shard.
    next_sweep_ms: AtomicU64,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("namespace", &self.namespace)
            .field("clock", &self.clock)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
#[repr(align(64))] // one cache line per shard lock, so shards do not false-share
struct Shard(Mutex<ShardMap>);

/// One shard's keys, by digest. The table hash is the digest's first half, so a
/// decision hashes its key a single time (the second half picks the shard).
#[derive(Default)]
struct ShardMap {
    packed: HashTable<Packed>,
    boxed: HashTable<Boxed>,
    inserts_since_sweep: usize,
}

/// A key whose state does not pack: any strategy of your own, the log and the queue,
/// or a built-in state with values too large for [`Packed`].
struct Boxed {
    id: Digest,
    state: AnyState,
    expires_at: u64,
}

impl fmt::Debug for ShardMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardMap").field("keys", &self.len()).finish_non_exhaustive()
    }
}

/// Where a key lives: its digest, the table hash and its shard.
#[derive(Clone, Copy)]
struct Located {
    id: Digest,
    hash: u64,
    shard: usize,
}

/// What a key held before a multi-hit, to roll it back.
enum Saved {
    Absent,
    Packed(Packed),
    /// A copy of a boxed state and its expiry; `None` when it is another strategy's
    /// (it reads as new then).
    Boxed(Option<(AnyState, u64)>),
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
        // std's `RandomState` is seeded from the OS once per process and moves on with
        // every instance: two of its outputs make an unpredictable 128-bit key.
        let random = std::collections::hash_map::RandomState::new();
        let digester = SipHasher13::new_with_keys(random.hash_one(0u8), random.hash_one(1u8));
        let spread = (random.hash_one(2u8), random.hash_one(3u8));
        Self { inner: Arc::new(Inner { namespace, clock, digester, spread, shards, next_sweep_ms }) }
    }

    /// The clock this backend decides with.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Number of keys currently held, expired ones included until they are swept (see
    /// [Memory](Self#memory)).
    ///
    /// ```
    /// let backend = throttle::backend::MemoryBackend::new();
    /// assert_eq!(backend.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| s.0.lock().len()).sum()
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
    /// let backend = throttle::backend::MemoryBackend::new();
    /// assert!(backend.capacity() >= backend.len());
    /// ```
    pub fn capacity(&self) -> usize {
        self.inner.shards.iter().map(|s| s.0.lock().capacity()).sum()
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
            shard.0.lock().sweep(now);
        }
    }

    /// Sweeps every shard when the period has passed (or the clock went back past it).
    /// Called after a call's own locks are released; one atomic load when not due.
    #[inline]
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

    /// Where a key lives. A key in [exact](super::exact) form is its own id: the space
    /// and the address, spread by a keyed permutation (no digest to compute). Any
    /// other key's id is its 128-bit digest, SipHash-1-3 with this backend's key, with
    /// the top bit clear, so it never equals an exact id (whose top bit is set). The id's
    /// first half is the table hash; bits of it pick the shard.
    #[inline]
    fn locate(&self, key: Key<'_>) -> Located {
        let (low, high) = match key.exact() {
            Some(exact) => {
                (spread(u64::from(exact.v4) | exact.space << 32, self.inner.spread), exact.space | EXACT_BIT)
            }
            None => {
                let digest = self.inner.digester.hash(key.as_str().as_bytes());
                (digest.h1, digest.h2 & !EXACT_BIT)
            }
        };
        let id = [low as u32, (low >> 32) as u32, high as u32, (high >> 32) as u32];
        Located { id, hash: low, shard: (low >> 32) as usize & (self.inner.shards.len() - 1) }
    }

    /// Decides a hit synchronously: the in-memory fast path.
    pub fn hit_now<'k>(&self, key: impl Into<Key<'k>>, strategy: &dyn DynStrategy, rate: Rate, cost: u64) -> Decision {
        let now = self.inner.clock.now_ms();
        let at = self.locate(key.into());
        let decision = {
            let mut map = self.inner.shards[at.shard].0.lock();
            let decision = map.hit(at, strategy, rate, cost, now);
            map.sweep_if_crowded(now);
            decision
        };
        self.sweep_if_due(now);
        decision
    }

    /// Decides several hits as one, for any strategy: either every hit is admitted,
    /// or the state of every key is left as it was and the decisions stop at the
    /// first rejection.
    fn hit_all_now(&self, hits: &[Hit<'_>]) -> Vec<Decision> {
        let now = self.inner.clock.now_ms();
        let mut located: Vec<Located> = hits.iter().map(|hit| self.locate(hit.key)).collect();
        let mut shards: Vec<usize> = located.iter().map(|at| at.shard).collect();
        shards.sort_unstable();
        shards.dedup();
        // Ascending shard order: two multi-hits can never wait on each other in a cycle.
        let mut guards: Vec<MutexGuard<'_, ShardMap>> = shards.iter().map(|&i| self.inner.shards[i].0.lock()).collect();
        // From here on, each hit names the guard of its shard.
        for at in &mut located {
            at.shard = shards.partition_point(|&i| i < at.shard);
        }
        let decisions = decide_jointly(&mut guards, &located, hits, now);
        // Only now, with every key decided (or restored), may a sweep run: a sweep in
        // the middle could drop a key inserted for this call.
        for map in &mut guards {
            map.sweep_if_crowded(now);
        }
        drop(guards);
        self.sweep_if_due(now);
        decisions
    }

    /// Reads a key's state synchronously.
    pub fn stat_now<'k>(&self, key: impl Into<Key<'k>>, strategy: &dyn DynStrategy, rate: Rate) -> Snapshot {
        let now = self.inner.clock.now_ms();
        let at = self.locate(key.into());
        let snapshot = self.inner.shards[at.shard].0.lock().stat(at, strategy, rate, now);
        self.sweep_if_due(now);
        snapshot
    }

    /// Gives back `cost` of a hit on `key` admitted at or after `since_ms` (this
    /// backend's clock), synchronously; see [`Backend::refund`].
    pub fn refund_now<'k>(
        &self,
        key: impl Into<Key<'k>>,
        strategy: &dyn DynStrategy,
        rate: Rate,
        cost: u64,
        since_ms: u64,
    ) -> bool {
        let now = self.inner.clock.now_ms();
        let at = self.locate(key.into());
        let refunded = self.inner.shards[at.shard].0.lock().refund(at, strategy, Refund { rate, cost, now, since_ms });
        self.sweep_if_due(now);
        refunded
    }

    /// Forgets one key.
    pub fn reset_now<'k>(&self, key: impl Into<Key<'k>>) {
        let at = self.locate(key.into());
        self.inner.shards[at.shard].0.lock().remove(at);
        self.sweep_if_due(self.inner.clock.now_ms());
    }
}

/// The top bit of an exact key's id; clear in every digest.
const EXACT_BIT: u64 = 1 << 63;

/// A keyed permutation of 64 bits (each step is invertible: xor, multiplication by an
/// odd number, xor with a right shift), so distinct inputs keep distinct outputs, spread
/// where no client can aim them.
#[inline]
fn spread(x: u64, (k1, k2): (u64, u64)) -> u64 {
    let x = (x ^ k1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let x = (x ^ (x >> 32)).wrapping_mul(k2 | 1);
    x ^ (x >> 29)
}

/// [`MemoryBackend::SWEEP_PERIOD`] in milliseconds.
const SWEEP_PERIOD_MS: u64 = MemoryBackend::SWEEP_PERIOD.as_millis() as u64;

/// Decides `hits` in order on their locked shards (`located`: each hit's digest and
/// the index of its shard's guard). At the first rejection, every key touched so far
/// is restored, and the decisions stop there.
fn decide_jointly(
    guards: &mut [MutexGuard<'_, ShardMap>],
    located: &[Located],
    hits: &[Hit<'_>],
    now: u64,
) -> Vec<Decision> {
    let mut undo: Vec<Saved> = Vec::with_capacity(hits.len());
    let mut decisions = Vec::with_capacity(hits.len());
    for (hit, &at) in hits.iter().zip(located) {
        let map = &mut *guards[at.shard];
        undo.push(map.save(at, hit.strategy));
        let decision = map.hit(at, hit.strategy, hit.rate, hit.cost, now);
        decisions.push(decision);
        if !decision.allowed {
            for (before, &at) in undo.into_iter().zip(located).rev() {
                guards[at.shard].restore(at, before);
            }
            break;
        }
    }
    decisions
}

/// One hit on a packed strategy.
struct PackedHit<'m> {
    map: &'m mut ShardMap,
    at: Located,
    rate: Rate,
    cost: u64,
    now: u64,
}

impl PackedOp for PackedHit<'_> {
    type Output = Decision;

    fn run<S: Strategy>(self, strategy: &S) -> Decision
    where
        S::State: Pair,
    {
        let PackedHit { map, at, rate, cost, now } = self;
        let decide = |state: &mut S::State| {
            let decision = strategy.decide(state, now, rate, cost);
            (decision, strategy.expires_at(state, rate))
        };
        if let Some(entry) = map.packed.find_mut(at.hash, |e| e.id == at.id) {
            // A state of another type reads as fresh, and is replaced.
            let mut state = entry.state::<S::State>().unwrap_or_default();
            let (decision, expires_at) = decide(&mut state);
            if let Err(state) = repack(entry, at, state, expires_at) {
                map.move_to_boxed(at, Box::new(state), expires_at);
            }
            return decision;
        }
        if let Some(entry) = map.boxed.find_mut(at.hash, |e| e.id == at.id) {
            let (decision, expires_at) = strategy.decide_any(&mut entry.state, now, rate, cost);
            entry.expires_at = expires_at;
            return decision;
        }
        let mut state = S::State::default();
        let (decision, expires_at) = decide(&mut state);
        match Packed::pack(at.id, &state, expires_at) {
            Some(packed) => {
                map.packed.insert_unique(at.hash, packed, packed_hash);
            }
            None => map.insert_boxed(at, Box::new(state), expires_at),
        }
        map.inserts_since_sweep += 1;
        decision
    }
}

/// Writes a packed key's new state in place; the state back when it no longer packs
/// (then it moves to the boxed table: [`ShardMap::move_to_boxed`]).
fn repack<P: Pair>(entry: &mut Packed, at: Located, state: P, expires_at: u64) -> Result<(), P> {
    match Packed::pack(at.id, &state, expires_at) {
        Some(packed) => {
            *entry = packed;
            Ok(())
        }
        None => Err(state),
    }
}

/// One stat on a packed strategy.
struct PackedStat<'m> {
    map: &'m ShardMap,
    at: Located,
    rate: Rate,
    now: u64,
}

impl PackedOp for PackedStat<'_> {
    type Output = Snapshot;

    fn run<S: Strategy>(self, strategy: &S) -> Snapshot
    where
        S::State: Pair,
    {
        let PackedStat { map, at, rate, now } = self;
        if let Some(entry) = map.packed.find(at.hash, |e| e.id == at.id) {
            return strategy.stat(&entry.state::<S::State>().unwrap_or_default(), now, rate);
        }
        strategy.stat_any(map.boxed.find(at.hash, |e| e.id == at.id).map(|e| &e.state), now, rate)
    }
}

/// What a refund gives back, and of which hits.
#[derive(Clone, Copy)]
struct Refund {
    rate: Rate,
    cost: u64,
    now: u64,
    since_ms: u64,
}

/// One refund on a packed strategy.
struct PackedRefund<'m> {
    map: &'m mut ShardMap,
    at: Located,
    refund: Refund,
}

impl PackedOp for PackedRefund<'_> {
    type Output = bool;

    fn run<S: Strategy>(self, strategy: &S) -> bool
    where
        S::State: Pair,
    {
        let PackedRefund { map, at, refund: Refund { rate, cost, now, since_ms } } = self;
        if let Some(entry) = map.packed.find_mut(at.hash, |e| e.id == at.id) {
            let Some(mut state) = entry.state::<S::State>() else { return false };
            if !strategy.refund(&mut state, now, rate, cost, since_ms) {
                return false;
            }
            let expires_at = strategy.expires_at(&state, rate);
            if let Err(state) = repack(entry, at, state, expires_at) {
                map.move_to_boxed(at, Box::new(state), expires_at);
            }
            return true;
        }
        map.refund_boxed(at, strategy, Refund { rate, cost, now, since_ms })
    }
}

/// The table hash of an entry: the first half of its digest.
fn packed_hash(entry: &Packed) -> u64 {
    digest_hash(&entry.id)
}

fn boxed_hash(entry: &Boxed) -> u64 {
    digest_hash(&entry.id)
}

fn digest_hash(id: &Digest) -> u64 {
    u64::from(id[0]) | u64::from(id[1]) << 32
}

impl ShardMap {
    fn len(&self) -> usize {
        self.packed.len() + self.boxed.len()
    }

    fn capacity(&self) -> usize {
        self.packed.capacity() + self.boxed.capacity()
    }

    /// One hit on one key; a new key is inserted with its decided state. Never sweeps,
    /// so a multi-hit can roll its keys back.
    #[inline]
    fn hit(&mut self, at: Located, strategy: &dyn DynStrategy, rate: Rate, cost: u64, now: u64) -> Decision {
        if let Some(builtin) = strategy.builtin() {
            return packed::apply(builtin, PackedHit { map: self, at, rate, cost, now });
        }
        if let Some(entry) = self.boxed.find_mut(at.hash, |e| e.id == at.id) {
            let (decision, expires_at) = strategy.decide_any(&mut entry.state, now, rate, cost);
            entry.expires_at = expires_at;
            return decision;
        }
        // A packed state here is another strategy's: it reads as fresh, and is replaced.
        self.remove_packed(at);
        let mut state = strategy.new_state();
        let (decision, expires_at) = strategy.decide_any(&mut state, now, rate, cost);
        self.insert_boxed(at, state, expires_at);
        self.inserts_since_sweep += 1;
        decision
    }

    fn stat(&self, at: Located, strategy: &dyn DynStrategy, rate: Rate, now: u64) -> Snapshot {
        if let Some(builtin) = strategy.builtin() {
            return packed::apply(builtin, PackedStat { map: self, at, rate, now });
        }
        strategy.stat_any(self.boxed.find(at.hash, |e| e.id == at.id).map(|e| &e.state), now, rate)
    }

    /// Gives back a refunded hit's cost; `false` when nothing was given back.
    fn refund(&mut self, at: Located, strategy: &dyn DynStrategy, refund: Refund) -> bool {
        match strategy.builtin() {
            Some(builtin) => packed::apply(builtin, PackedRefund { map: self, at, refund }),
            None => self.refund_boxed(at, strategy, refund),
        }
    }

    fn refund_boxed(&mut self, at: Located, strategy: &dyn DynStrategy, refund: Refund) -> bool {
        let Refund { rate, cost, now, since_ms } = refund;
        let Some(entry) = self.boxed.find_mut(at.hash, |e| e.id == at.id) else { return false };
        match strategy.refund_any(&mut entry.state, now, rate, cost, since_ms) {
            Some(expires_at) => {
                entry.expires_at = expires_at;
                true
            }
            None => false,
        }
    }

    fn insert_boxed(&mut self, at: Located, state: AnyState, expires_at: u64) {
        self.boxed.insert_unique(at.hash, Boxed { id: at.id, state, expires_at }, boxed_hash);
    }

    /// A packed key whose state no longer packs: boxed from now on.
    fn move_to_boxed(&mut self, at: Located, state: AnyState, expires_at: u64) {
        self.remove_packed(at);
        self.insert_boxed(at, state, expires_at);
    }

    fn remove_packed(&mut self, at: Located) {
        if let Ok(entry) = self.packed.find_entry(at.hash, |e| e.id == at.id) {
            entry.remove();
        }
    }

    fn remove_boxed(&mut self, at: Located) {
        if let Ok(entry) = self.boxed.find_entry(at.hash, |e| e.id == at.id) {
            entry.remove();
        }
    }

    fn remove(&mut self, at: Located) {
        self.remove_packed(at);
        self.remove_boxed(at);
    }

    /// What the key holds now, to put back with [`restore`](Self::restore).
    fn save(&self, at: Located, strategy: &dyn DynStrategy) -> Saved {
        if let Some(entry) = self.packed.find(at.hash, |e| e.id == at.id) {
            return Saved::Packed(*entry);
        }
        match self.boxed.find(at.hash, |e| e.id == at.id) {
            Some(entry) => Saved::Boxed(strategy.clone_state(&entry.state).map(|state| (state, entry.expires_at))),
            None => Saved::Absent,
        }
    }

    /// Puts back what a key held before a multi-hit (removes it if it was new, or if
    /// its old state was another strategy's, which reads as new).
    fn restore(&mut self, at: Located, before: Saved) {
        self.remove(at);
        match before {
            Saved::Packed(entry) => {
                self.packed.insert_unique(at.hash, entry, packed_hash);
            }
            Saved::Boxed(Some((state, expires_at))) => self.insert_boxed(at, state, expires_at),
            Saved::Boxed(None) | Saved::Absent => {}
        }
    }

    /// Sweeps once inserts since the last sweep reach half the map: amortised O(1) per
    /// insert, and the map never holds more than ~1.5x its live keys.
    #[inline]
    fn sweep_if_crowded(&mut self, now: u64) {
        if self.inserts_since_sweep >= (self.len() / 2).max(64) {
            self.sweep(now);
        }
    }

    /// Drops expired keys, and shrinks a table left less than a quarter full to twice
    /// its keys (so it does not shrink and grow back on every sweep).
    fn sweep(&mut self, now: u64) {
        self.packed.retain(|entry| entry.expires_at() > now);
        self.boxed.retain(|entry| entry.expires_at > now);
        self.inserts_since_sweep = 0;
        let len = self.packed.len();
        if len < self.packed.capacity() / 4 {
            self.packed.shrink_to(len * 2, packed_hash);
        }
        let len = self.boxed.len();
        if len < self.boxed.capacity() / 4 {
            self.boxed.shrink_to(len * 2, boxed_hash);
        }
    }
}

/// Every answer is ready at once: throttles on this backend box no future and arm no
/// timer.
impl Backend for MemoryBackend {
    fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    fn hit<'a>(&'a self, hit: Hit<'a>) -> Reply<'a, Decision> {
        Reply::ready(Ok(self.hit_now(hit.key, hit.strategy, hit.rate, hit.cost)))
    }

    fn answers_at_once(&self) -> bool {
        true
    }

    fn stat<'a>(&'a self, key: Key<'a>, strategy: &'a dyn DynStrategy, rate: Rate) -> Reply<'a, Snapshot> {
        Reply::ready(Ok(self.stat_now(key, strategy, rate)))
    }

    fn reset<'a>(&'a self, key: Key<'a>) -> Reply<'a, ()> {
        self.reset_now(key);
        Reply::ready(Ok(()))
    }

    fn hit_all<'a>(&'a self, hits: &'a [Hit<'a>]) -> Option<Reply<'a, Vec<Decision>>> {
        Some(Reply::ready(Ok(self.hit_all_now(hits))))
    }

    /// Clones share their store.
    fn shares_store_with(&self, other: &dyn Backend) -> bool {
        other.downcast_ref::<MemoryBackend>().is_some_and(|other| Arc::ptr_eq(&self.inner, &other.inner))
    }

    fn since_now(&self) -> Since {
        Since::Ms(self.inner.clock.now_ms())
    }

    fn refund<'a>(&'a self, hit: Hit<'a>, since: Since, _route: Route) -> Reply<'a, bool> {
        let since_ms = since.as_ms_before(self.inner.clock.now_ms());
        Reply::ready(Ok(self.refund_now(hit.key, hit.strategy, hit.rate, hit.cost, since_ms)))
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

    /// The clock decisions use; tests pass a [`ManualClock`](crate::backend::ManualClock).
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
    use crate::clock::ManualClock;
    use crate::strategy::FixedWindow;
    use std::time::Duration;

    /// A throttle's IPv4 keys are named exactly, every other key by its digest: the two
    /// never share an id, and addresses a client picks in a row spread over shards.
    #[test]
    fn exact_keys_and_digests_never_meet_and_addresses_spread() {
        let backend = MemoryBackend::new();
        let exact = backend.locate(Key::from("ns:u:ip=10.0.0.1:default"));
        let digested = backend.locate(Key::from("ns:u:ip=010.0.0.1:default"));
        assert_eq!(exact.id[3] >> 31, 1);
        assert_eq!(digested.id[3] >> 31, 0);
        let shards = backend.inner.shards.len();
        let mut per_shard = vec![0usize; shards];
        let clients = 64 * shards;
        for n in 0..clients as u32 {
            let key = format!("ns:u:ip={}:default", std::net::Ipv4Addr::from(0x0a00_0000 + n));
            per_shard[backend.locate(Key::from(key.as_str())).shard] += 1;
        }
        let busiest = per_shard.iter().max().copied().unwrap_or_default();
        assert!(busiest <= 2 * clients / shards, "{busiest} of {clients} keys in one of {shards} shards");
        // The same text, whoever made the key, is the same bucket.
        for _ in 0..3 {
            assert!(backend.hit_now("ns:u:ip=10.0.0.1:default", &FixedWindow, Rate::per_minute(1), 1).allowed);
            assert!(!backend.hit_now("ns:u:ip=10.0.0.1:default", &FixedWindow, Rate::per_minute(1), 1).allowed);
            backend.reset_now(Key::from("ns:u:ip=10.0.0.1:default"));
        }
    }

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
    fn a_state_too_large_to_pack_is_boxed_and_decides_the_same() {
        let clock = ManualClock::new(0);
        let backend = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
        let rate = Rate::per_second(1 << 40);
        let big = 1 << 33; // more than the 32 bits a packed count holds
        assert_eq!(backend.hit_now("k", &FixedWindow, rate, 1).remaining, (1 << 40) - 1);
        assert_eq!(backend.hit_now("k", &FixedWindow, rate, big).remaining, (1 << 40) - 1 - big);
        assert_eq!(backend.hit_now("k", &FixedWindow, rate, 1).remaining, (1 << 40) - 2 - big);
        assert_eq!(backend.stat_now("k", &FixedWindow, rate).remaining, (1 << 40) - 2 - big);
        assert_eq!(backend.len(), 1, "one key, boxed");
        // The window ends: the boxed state expires and is swept like a packed one.
        clock.advance(Duration::from_secs(1));
        backend.sweep();
        assert_eq!(backend.len(), 0);
    }

    #[test]
    fn digests_are_keyed_per_backend() {
        let (a, b) = (MemoryBackend::new(), MemoryBackend::new());
        let id = |backend: &MemoryBackend, key: &str| backend.locate(Key::from(key)).id;
        // An exact key's id, and a digested one's.
        for (key, next) in
            [("ns:u:ip=1.2.3.4:default", "ns:u:ip=1.2.3.5:default"), ("ns:u:k1:default", "ns:u:k2:default")]
        {
            assert_eq!(id(&a, key), id(&a, key));
            assert_ne!(id(&a, key), id(&b, key));
            assert_ne!(id(&a, key), id(&a, next));
        }
        assert!(!format!("{a:?}").contains(&a.inner.digester.keys().0.to_string()), "the key is never shown");
    }

    #[test]
    fn a_packed_key_taken_by_a_boxed_strategy_reads_as_fresh_and_back() {
        let backend = MemoryBackend::builder().clock(ManualClock::new(0)).build().unwrap();
        let rate = Rate::per_minute(3);
        let log = crate::strategy::SlidingWindowLog;
        assert_eq!(backend.hit_now("k", &FixedWindow, rate, 2).remaining, 1);
        assert_eq!(backend.stat_now("k", &log, rate).remaining, 3);
        assert_eq!(backend.hit_now("k", &log, rate, 1).remaining, 2);
        assert_eq!(backend.len(), 1, "the packed state was replaced");
        assert_eq!(backend.stat_now("k", &FixedWindow, rate).remaining, 3);
        assert_eq!(backend.hit_now("k", &FixedWindow, rate, 1).remaining, 2);
        assert_eq!(backend.len(), 1);
        assert_eq!(backend.stat_now("k", &log, rate).remaining, 3);
    }

    /// Admits up to the limit, for good: a boxed state with no codec.
    #[derive(Debug)]
    struct Spent;

    impl Strategy for Spent {
        type State = Vec<u64>;
        fn name(&self) -> &'static str {
            "spent"
        }
        fn decide(&self, costs: &mut Vec<u64>, _: u64, rate: Rate, cost: u64) -> Decision {
            let spent: u64 = costs.iter().sum();
            let allowed = spent + cost <= rate.limit();
            if allowed {
                costs.push(cost);
            }
            let remaining = rate.limit() - costs.iter().sum::<u64>();
            Decision { allowed, remaining, wait_ms: if allowed { 0 } else { crate::strategy::NEVER }, reset_ms: 0 }
        }
        fn stat(&self, costs: &Vec<u64>, _: u64, rate: Rate) -> Snapshot {
            let remaining = rate.limit() - costs.iter().sum::<u64>();
            Snapshot { remaining, wait_ms: 0, reset_ms: 0, metadata: crate::strategy::Metadata::None }
        }
        fn expires_at(&self, _: &Vec<u64>, _: Rate) -> u64 {
            u64::MAX
        }
    }

    #[test]
    fn a_rejected_multi_hit_puts_back_every_key_whatever_the_strategy() {
        let backend = MemoryBackend::builder().clock(ManualClock::new(0)).build().unwrap();
        let (wide, narrow) = (Rate::per_minute(10), Rate::per_minute(2));
        // Keys of every kind: boxed with state, packed with state, new.
        assert!(backend.hit_now("boxed", &Spent, wide, 3).allowed);
        assert!(backend.hit_now("packed", &FixedWindow, wide, 4).allowed);
        let hits = [
            Hit::new("boxed", &Spent, wide, 1),
            Hit::new("packed", &FixedWindow, wide, 1),
            Hit::new("new", &Spent, wide, 1),
            Hit::new("narrow", &Spent, narrow, 3),
        ];
        let decisions = backend.hit_all_now(&hits);
        assert_eq!(decisions.iter().map(|d| d.allowed).collect::<Vec<_>>(), [true, true, true, false]);
        assert_eq!(backend.stat_now("boxed", &Spent, wide).remaining, 7, "the boxed state is as it was");
        assert_eq!(backend.stat_now("packed", &FixedWindow, wide).remaining, 6);
        assert_eq!(backend.len(), 2, "the new keys are gone");
        // The same hits admitted change every key.
        let decisions = backend.hit_all_now(&hits[..3]);
        assert!(decisions.iter().all(|d| d.allowed));
        assert_eq!(backend.stat_now("boxed", &Spent, wide).remaining, 6);
        assert_eq!(backend.stat_now("new", &Spent, wide).remaining, 9);
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
