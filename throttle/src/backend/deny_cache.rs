//! [`DenyCache`]: a remote backend's rejections remembered in-process, so a client over
//! its limit is turned away without a round trip until its wait has passed.

use super::{Backend, Hit, InvalidBackendOption, Key, Reply, Route, Since};
use crate::strategy::{
    Decision, DynStrategy, FixedWindow, Gcra, LeakyBucket, LeakyBucketQueue, NEVER, SlidingWindowCounter,
    SlidingWindowLog, Snapshot, TokenBucket, TokenBucketDebt,
};
use crate::{Clock, Rate};
use core::fmt;
use core::hash::BuildHasher;
use hashbrown::HashTable;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

type Hasher = foldhash::fast::RandomState;

/// Keys held when no capacity is given.
const DEFAULT_CAPACITY: usize = 100_000;

/// Rejections remembered per key (one per rate and cost); a throttle has one rate and
/// usually one cost, so more than this only comes from rates or costs that vary.
const DENIALS_PER_KEY: usize = 4;

/// Remembers the rejections of another backend (typically a
/// `RedisBackend`) and repeats them in-process until
/// their wait has passed: a client over its limit costs no round trip.
///
/// Opt in per throttle by giving it the wrapped backend. Cloning is cheap and shares
/// the cache.
///
/// ```no_run
/// # #[cfg(feature = "redis")]
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use throttle::HttpThrottle;
/// use throttle::backend::{DenyCache, RedisBackend};
///
/// let redis = RedisBackend::connect("redis://127.0.0.1:6379").await?;
/// let cached = DenyCache::builder(redis).capacity(50_000).build()?;
/// let api = HttpThrottle::builder("api:data").rate("100/min").backend(cached).build()?;
/// # let _ = api; Ok(()) }
/// ```
///
/// # Exact
///
/// Only rejections are remembered, so the cache never admits a hit the backend would
/// reject. And it repeats a rejection only while the backend would still give it:
///
/// - After the backend rejects `cost` on `key` at `rate` with wait `W`, that same hit
///   (same key, rate and cost) is rejected locally until `W` has passed. Every
///   built-in strategy waits honestly (the hit is admitted at `W`, not before, absent
///   other traffic), rejections change no state, and other traffic only makes the
///   wait longer, so the backend would reject it too.
/// - The answer is the backend's own, counted down: `wait_ms` and `reset_ms` fall as
///   time passes and `remaining` is the backend's.
/// - Other costs and rates are misses, decided by the backend: on a bucket, a
///   smaller cost may fit long before `W`.
/// - A rejection is remembered only when nothing in it can change before `W`: its
///   `remaining` must be one below its cost (always so for cost 1: remaining 0). A
///   larger cost with more left over could see `remaining` grow as the bucket
///   refills, so the backend keeps answering it.
/// - Strategies of your own are never cached (their waits make no promise); their
///   hits go straight to the backend.
///
/// Time is measured here, on the cache's own monotonic [`Clock`], from the moment the
/// request was *sent*: the backend decided no earlier, so the local deadline never
/// outlives the backend's. With the system clock, one millisecond is given up to the
/// two clocks' rounding. A backend on a caller's clock
/// (`RedisBackend::with_clock`) needs the
/// cache on that same clock ([`DenyCacheBuilder::clock`]).
///
/// # Coherent
///
/// - [`reset`](Backend::reset) through the cache forgets the key's rejections, also
///   against a decision that was in flight meanwhile.
/// - [`stat`](Backend::stat) always asks the backend.
/// - Stacked limits ([`Backend::hit_all`]) are delegated; a first limit already
///   rejected locally answers at once. The cache decides in the inner backend's store
///   ([`shares_store_with`](Backend::shares_store_with)), so throttles on the cached
///   and the plain backend still decide together.
/// - A rejection the cache repeats is a ready [`Reply`]: the throttle waits for nothing.
/// - What the cache cannot see: a key reset *elsewhere* (another process, `redis-cli`)
///   is still rejected here until its cached wait ends, at most one window. When the
///   backend admits a hit the cache still rejects, the key's rejections are dropped.
///
/// # Bounded
///
/// At most [`capacity`](DenyCacheBuilder::capacity) keys (100 000 by default), each
/// with at most 4 remembered rejections. Expired rejections are dropped as they are
/// met; when a shard is full, its expired keys go first, then the quarter of it whose
/// rejections end soonest (amortised O(1) per insert).
pub struct DenyCache<B> {
    inner: B,
    shared: Arc<Shared>,
}

struct Shared {
    clock: Clock,
    /// Milliseconds taken off each deadline: 1 on the system clock, whose millisecond
    /// ticks need not line up with the backend's; 0 on a manual clock, which the
    /// backend reads too.
    slack_ms: u64,
    capacity: usize,
    hasher: Hasher,
    shards: Box<[Shard]>,
}

#[repr(align(64))] // one cache line per shard lock, so shards do not false-share
struct Shard {
    map: Mutex<ShardMap>,
    /// Bumped (under the lock) by every reset, so a decision sent before it is not
    /// cached after it.
    resets: AtomicU64,
}

struct ShardMap {
    entries: HashTable<(Box<str>, Vec<Denial>)>,
    capacity: usize,
}

/// One remembered rejection: of `cost` at `limit / period_ms`, until `until_ms`.
#[derive(Debug, Clone, Copy)]
struct Denial {
    limit: u64,
    period_ms: u64,
    cost: u64,
    remaining: u64,
    until_ms: u64,
    reset_until_ms: u64,
}

impl Denial {
    fn matches(&self, rate: Rate, cost: u64) -> bool {
        self.limit == rate.limit() && self.period_ms == rate.period_ms() && self.cost == cost
    }

    fn decision_at(&self, now_ms: u64) -> Decision {
        Decision {
            allowed: false,
            remaining: self.remaining,
            wait_ms: self.until_ms - now_ms,
            reset_ms: self.reset_until_ms.saturating_sub(now_ms),
        }
    }
}

/// The latest deadline among a key's rejections.
fn ends(denials: &[Denial]) -> u64 {
    denials.iter().map(|d| d.until_ms).max().unwrap_or(0)
}

/// Whether `strategy` is one of the built-ins, whose waits are honest (recognised by
/// type, never by name).
fn is_built_in(strategy: &dyn DynStrategy) -> bool {
    let any = strategy.as_any();
    any.is::<FixedWindow>()
        || any.is::<SlidingWindowCounter>()
        || any.is::<SlidingWindowLog>()
        || any.is::<TokenBucket>()
        || any.is::<TokenBucketDebt>()
        || any.is::<LeakyBucket>()
        || any.is::<LeakyBucketQueue>()
        || any.is::<Gcra>()
}

/// Where a key lives: its hash and shard.
#[derive(Clone, Copy)]
struct Slot {
    hash: u64,
    shard: usize,
}

impl<B: Backend> DenyCache<B> {
    /// Caches `inner`'s rejections, for up to 100 000 keys, on the system clock.
    ///
    /// ```
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::DenyCache;
    ///
    /// let cached = DenyCache::new(MemoryBackend::new());
    /// assert_eq!(cached.capacity(), 100_000);
    /// ```
    pub fn new(inner: B) -> Self {
        Self::from_parts(inner, DEFAULT_CAPACITY, Clock::System)
    }

    /// Options: capacity and clock.
    ///
    /// ```
    /// use throttle::backend::{ManualClock, MemoryBackend};
    /// use throttle::backend::DenyCache;
    ///
    /// let cached = DenyCache::builder(MemoryBackend::new()).capacity(1_000).clock(ManualClock::new(0)).build()?;
    /// assert_eq!(cached.capacity(), 1_000);
    /// # Ok::<(), throttle::backend::InvalidBackendOption>(())
    /// ```
    pub fn builder(inner: B) -> DenyCacheBuilder<B> {
        DenyCacheBuilder { inner, capacity: DEFAULT_CAPACITY, clock: Clock::System }
    }

    fn from_parts(inner: B, capacity: usize, clock: Clock) -> Self {
        let wanted = std::thread::available_parallelism().map_or(4, |n| n.get()) * 8;
        let wanted = wanted.next_power_of_two().max(16);
        // Never more shards than keys, so every shard holds at least one.
        let count = wanted.min(1 << capacity.ilog2());
        // Shard capacities add up to `capacity` exactly.
        let shards = (0..count)
            .map(|i| {
                let capacity = capacity / count + usize::from(i < capacity % count);
                let map = ShardMap { entries: HashTable::new(), capacity };
                Shard { map: Mutex::new(map), resets: AtomicU64::new(0) }
            })
            .collect();
        let slack_ms = if matches!(clock, Clock::Manual(_)) { 0 } else { 1 };
        let shared = Shared { clock, slack_ms, capacity, hasher: Hasher::default(), shards };
        DenyCache { inner, shared: Arc::new(shared) }
    }

    /// The backend whose rejections are cached.
    ///
    /// ```
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::{Backend, DenyCache};
    ///
    /// let cached = DenyCache::new(MemoryBackend::builder().namespace("shop").build()?);
    /// assert_eq!(cached.inner().namespace(), "shop");
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The most keys the cache holds.
    ///
    /// ```
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::DenyCache;
    /// assert_eq!(DenyCache::builder(MemoryBackend::new()).capacity(64).build()?.capacity(), 64);
    /// # Ok::<(), throttle::backend::InvalidBackendOption>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Keys held now (some rejections may have ended and not been dropped yet).
    ///
    /// ```
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::DenyCache;
    /// assert_eq!(DenyCache::new(MemoryBackend::new()).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.shared.shards.iter().map(|s| s.map.lock().entries.len()).sum()
    }

    /// `true` when no key is held.
    ///
    /// ```
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::DenyCache;
    /// assert!(DenyCache::new(MemoryBackend::new()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every rejection, for example after resetting keys elsewhere (such as
    /// `RedisBackend::reset_namespace`).
    ///
    /// ```
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::DenyCache;
    ///
    /// let cached = DenyCache::new(MemoryBackend::new());
    /// cached.clear();
    /// assert!(cached.is_empty());
    /// ```
    pub fn clear(&self) {
        for shard in self.shared.shards.iter() {
            let mut map = shard.map.lock();
            shard.resets.fetch_add(1, Ordering::AcqRel);
            map.entries.clear();
        }
    }

    fn slot(&self, key: &str) -> Slot {
        let hash = self.shared.hasher.hash_one(key);
        // High bits pick the shard; the table inside uses the low bits and the top 7.
        Slot { hash, shard: (hash >> 40) as usize & (self.shared.shards.len() - 1) }
    }

    fn now(&self) -> u64 {
        self.shared.clock.now_ms()
    }

    /// The remembered rejection of this hit, counted down to now; drops it once ended.
    fn lookup(&self, slot: Slot, key: &str, rate: Rate, cost: u64) -> Option<Decision> {
        let now = self.now();
        let mut map = self.shared.shards[slot.shard].map.lock();
        let Ok(mut entry) = map.entries.find_entry(slot.hash, |(k, _)| **k == *key) else { return None };
        let denials = &mut entry.get_mut().1;
        let denial = denials.iter().find(|d| d.matches(rate, cost))?;
        if denial.until_ms > now {
            return Some(denial.decision_at(now));
        }
        denials.retain(|d| d.until_ms > now);
        if denials.is_empty() {
            entry.remove();
        }
        None
    }

    /// What a decision about to be sent must carry to be cached afterwards.
    fn ticket(&self, slot: Slot) -> Ticket {
        let resets = self.shared.shards[slot.shard].resets.load(Ordering::Acquire);
        Ticket { slot, resets, sent_ms: self.now() }
    }

    /// Learns from the backend's decision on a hit sent with `ticket`.
    fn learn(&self, ticket: Ticket, key: &str, rate: Rate, cost: u64, decision: &Decision) {
        let shard = &self.shared.shards[ticket.slot.shard];
        if decision.allowed {
            // The backend admits what the cache might still reject (a reset elsewhere):
            // the key's rejections are stale.
            let mut map = shard.map.lock();
            if let Ok(entry) = map.entries.find_entry(ticket.slot.hash, |(k, _)| **k == *key) {
                entry.remove();
            }
            return;
        }
        // Only a rejection whose every field stays true until its wait ends.
        if decision.wait_ms == 0 || decision.wait_ms == NEVER || decision.remaining.saturating_add(1) != cost {
            return;
        }
        let until_ms = ticket.sent_ms.saturating_add(decision.wait_ms).saturating_sub(self.shared.slack_ms);
        let now = self.now();
        if until_ms <= now {
            return;
        }
        let denial = Denial {
            limit: rate.limit(),
            period_ms: rate.period_ms(),
            cost,
            remaining: decision.remaining,
            until_ms,
            reset_until_ms: ticket.sent_ms.saturating_add(decision.reset_ms).saturating_sub(self.shared.slack_ms),
        };
        let mut map = shard.map.lock();
        if shard.resets.load(Ordering::Acquire) != ticket.resets {
            return; // reset while in flight: this rejection may predate it
        }
        map.remember(ticket.slot.hash, key, denial, now, &self.shared.hasher);
    }

    /// Decisions stop at the first rejection: a first hit rejected here is the answer.
    fn lookup_first(&self, hits: &[Hit<'_>]) -> Option<Decision> {
        let first = hits.first().filter(|hit| is_built_in(hit.strategy));
        first.and_then(|hit| {
            let key = hit.key.as_str();
            self.lookup(self.slot(key), key, hit.rate, hit.cost)
        })
    }

    fn tickets(&self, hits: &[Hit<'_>]) -> Vec<Ticket> {
        hits.iter().map(|hit| self.ticket(self.slot(hit.key.as_str()))).collect()
    }

    /// Learns from the decisions of a joint call.
    fn learn_all(&self, tickets: &[Ticket], hits: &[Hit<'_>], decisions: &[Decision]) {
        for (i, (hit, decision)) in hits.iter().zip(decisions).enumerate() {
            // A key hit twice in one call was decided after its own earlier hit,
            // which a rejection rolls back: not a fact about the key alone.
            let key = hit.key.as_str();
            let repeated = hits[..i].iter().any(|earlier| earlier.key.as_str() == key);
            if is_built_in(hit.strategy) && (decision.allowed || !repeated) {
                self.learn(tickets[i], key, hit.rate, hit.cost, decision);
            }
        }
    }

    fn forget(&self, key: &str) {
        let slot = self.slot(key);
        let shard = &self.shared.shards[slot.shard];
        let mut map = shard.map.lock();
        shard.resets.fetch_add(1, Ordering::AcqRel);
        if let Ok(entry) = map.entries.find_entry(slot.hash, |(k, _)| **k == *key) {
            entry.remove();
        }
    }
}

/// Taken before a decision is sent: where the key lives, the shard's reset count, and
/// the send time the deadline is measured from.
#[derive(Clone, Copy)]
struct Ticket {
    slot: Slot,
    resets: u64,
    sent_ms: u64,
}

impl ShardMap {
    fn remember(&mut self, hash: u64, key: &str, denial: Denial, now: u64, hasher: &Hasher) {
        let same = |d: &Denial| d.limit == denial.limit && d.period_ms == denial.period_ms && d.cost == denial.cost;
        if let Some((_, denials)) = self.entries.find_mut(hash, |(k, _)| **k == *key) {
            denials.retain(|d| d.until_ms > now && !same(d));
            if denials.len() == DENIALS_PER_KEY {
                // Full: the rejection that ends first makes room.
                let first = (0..denials.len()).min_by_key(|&i| denials[i].until_ms).unwrap_or(0);
                denials.swap_remove(first);
            }
            denials.push(denial);
            return;
        }
        if self.entries.len() >= self.capacity {
            self.make_room(now);
        }
        self.entries.insert_unique(hash, (key.into(), vec![denial]), |(k, _)| hasher.hash_one(&**k));
    }

    /// Drops ended rejections, then, if still full, the quarter of keys (at least one)
    /// whose rejections end soonest: O(n) once per n/4 inserts.
    fn make_room(&mut self, now: u64) {
        self.entries.retain(|(_, denials)| {
            denials.retain(|d| d.until_ms > now);
            !denials.is_empty()
        });
        if self.entries.len() < self.capacity {
            return;
        }
        let evict = (self.capacity / 4).max(1);
        let mut deadlines: Vec<u64> = self.entries.iter().map(|(_, denials)| ends(denials)).collect();
        let (_, &mut cutoff, _) = deadlines.select_nth_unstable(evict - 1);
        let mut evicted = 0;
        self.entries.retain(|(_, denials)| {
            let goes = evicted < evict && ends(denials) <= cutoff;
            evicted += usize::from(goes);
            !goes
        });
    }
}

impl<B: Backend> Backend for DenyCache<B> {
    fn namespace(&self) -> &str {
        self.inner.namespace()
    }

    fn hit<'a>(&'a self, hit: Hit<'a>) -> Reply<'a, Decision> {
        if !is_built_in(hit.strategy) {
            return self.inner.hit(hit);
        }
        let key = hit.key.as_str();
        let slot = self.slot(key);
        if let Some(decision) = self.lookup(slot, key, hit.rate, hit.cost) {
            return Reply::ready(Ok(decision));
        }
        let ticket = self.ticket(slot);
        self.inner.hit(hit).inspect(move |decision| {
            if let Ok(decision) = decision {
                self.learn(ticket, key, hit.rate, hit.cost, decision);
            }
        })
    }

    fn hit_routed<'a>(&'a self, hit: Hit<'a>) -> Reply<'a, (Decision, Route)> {
        if !is_built_in(hit.strategy) {
            return self.inner.hit_routed(hit);
        }
        let key = hit.key.as_str();
        let slot = self.slot(key);
        if let Some(decision) = self.lookup(slot, key, hit.rate, hit.cost) {
            // A rejection: nothing to give back, so no route to remember.
            return Reply::ready(Ok((decision, Route::default())));
        }
        let ticket = self.ticket(slot);
        self.inner.hit_routed(hit).inspect(move |answer| {
            if let Ok((decision, _)) = answer {
                self.learn(ticket, key, hit.rate, hit.cost, decision);
            }
        })
    }

    fn stat<'a>(&'a self, key: Key<'a>, strategy: &'a dyn DynStrategy, rate: Rate) -> Reply<'a, Snapshot> {
        self.inner.stat(key, strategy, rate)
    }

    fn reset<'a>(&'a self, key: Key<'a>) -> Reply<'a, ()> {
        // Forgotten even if the backend failed: dropping a rejection is always safe.
        self.inner.reset(key).inspect(move |_| self.forget(key.as_str()))
    }

    fn hit_all<'a>(&'a self, hits: &'a [Hit<'a>]) -> Option<Reply<'a, Vec<Decision>>> {
        if let Some(decision) = self.lookup_first(hits) {
            return Some(Reply::ready(Ok(vec![decision])));
        }
        let tickets = self.tickets(hits);
        let reply = self.inner.hit_all(hits)?;
        Some(reply.inspect(move |decisions| {
            if let Ok(decisions) = decisions {
                self.learn_all(&tickets, hits, decisions);
            }
        }))
    }

    fn hit_all_routed<'a>(&'a self, hits: &'a [Hit<'a>]) -> Option<Reply<'a, (Vec<Decision>, Route)>> {
        if let Some(decision) = self.lookup_first(hits) {
            return Some(Reply::ready(Ok((vec![decision], Route::default()))));
        }
        let tickets = self.tickets(hits);
        let reply = self.inner.hit_all_routed(hits)?;
        Some(reply.inspect(move |answer| {
            if let Ok((decisions, _)) = answer {
                self.learn_all(&tickets, hits, decisions);
            }
        }))
    }

    /// The inner backend's store: the cache decides nowhere else.
    fn shares_store_with(&self, other: &dyn Backend) -> bool {
        self.inner.shares_store_with(other)
            || other.downcast_ref::<Self>().is_some_and(|other| self.inner.shares_store_with(&other.inner))
    }

    fn since_now(&self) -> Since {
        self.inner.since_now()
    }

    fn refund<'a>(&'a self, hit: Hit<'a>, since: Since, route: Route) -> Reply<'a, bool> {
        // After the refund lands: a rejection cached (or in flight) from before it may
        // no longer hold. Forgotten even on failure, as dropping one is safe.
        self.inner.refund(hit, since, route).inspect(move |_| self.forget(hit.key.as_str()))
    }
}

impl<B: Clone> Clone for DenyCache<B> {
    fn clone(&self) -> Self {
        DenyCache { inner: self.inner.clone(), shared: self.shared.clone() }
    }
}

impl<B: fmt::Debug> fmt::Debug for DenyCache<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DenyCache")
            .field("inner", &self.inner)
            .field("capacity", &self.shared.capacity)
            .field("clock", &self.shared.clock)
            .finish_non_exhaustive()
    }
}

/// Builds a [`DenyCache`].
///
/// ```
/// use throttle::backend::MemoryBackend;
/// use throttle::backend::DenyCache;
///
/// let cached = DenyCache::builder(MemoryBackend::new()).capacity(10_000).build()?;
/// # let _ = cached; Ok::<(), throttle::backend::InvalidBackendOption>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct DenyCacheBuilder<B> {
    inner: B,
    capacity: usize,
    clock: Clock,
}

impl<B: Backend> DenyCacheBuilder<B> {
    /// The most keys held (default 100 000; at least 1). Each holds its key and up to
    /// four rejections of 48 bytes.
    ///
    /// ```
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::DenyCache;
    /// assert!(DenyCache::builder(MemoryBackend::new()).capacity(0).build().is_err());
    /// ```
    pub fn capacity(mut self, keys: usize) -> Self {
        self.capacity = keys;
        self
    }

    /// The clock deadlines are measured on (default: the system's monotonic clock).
    /// Give it the [`ManualClock`](crate::backend::ManualClock) the inner backend decides on, if
    /// it does.
    ///
    /// ```
    /// use throttle::backend::{ManualClock, MemoryBackend};
    /// use throttle::backend::DenyCache;
    ///
    /// let clock = ManualClock::new(0);
    /// let memory = MemoryBackend::builder().clock(clock.clone()).build()?;
    /// let cached = DenyCache::builder(memory).clock(clock).build()?;
    /// # let _ = cached; Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Checks the options and builds the cache.
    ///
    /// ```
    /// use throttle::backend::MemoryBackend;
    /// use throttle::backend::DenyCache;
    /// let cached = DenyCache::builder(MemoryBackend::new()).build()?;
    /// # let _ = cached; Ok::<(), throttle::backend::InvalidBackendOption>(())
    /// ```
    pub fn build(self) -> Result<DenyCache<B>, InvalidBackendOption> {
        if self.capacity == 0 {
            return Err(InvalidBackendOption::new("capacity", "a deny cache holds at least 1 key"));
        }
        Ok(DenyCache::from_parts(self.inner, self.capacity, self.clock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MemoryBackend;
    use crate::clock::ManualClock;
    use std::time::Duration;

    fn cached(capacity: usize) -> (DenyCache<MemoryBackend>, MemoryBackend, ManualClock) {
        let clock = ManualClock::new(1_000_000);
        let memory = MemoryBackend::builder().clock(clock.clone()).build().unwrap();
        let cache = DenyCache::builder(memory.clone()).capacity(capacity).clock(clock.clone()).build().unwrap();
        (cache, memory, clock)
    }

    fn block<T>(future: impl core::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }

    #[test]
    fn a_rejection_is_repeated_counted_down_then_forgotten() {
        let (cache, memory, clock) = cached(10);
        let rate = Rate::per_second(2);
        block(async {
            for _ in 0..2 {
                assert!(cache.hit(Hit::new("k", &TokenBucket::new(), rate, 1)).await.unwrap().allowed);
            }
            let first = cache.hit(Hit::new("k", &TokenBucket::new(), rate, 1)).await.unwrap();
            assert_eq!((first.allowed, first.remaining, first.wait_ms), (false, 0, 500));
            // The memory backend is not asked again: resetting it behind the cache's
            // back shows the answer is the cache's.
            memory.reset_now("k");
            clock.advance(Duration::from_millis(200));
            let cached = cache.hit(Hit::new("k", &TokenBucket::new(), rate, 1)).await.unwrap();
            assert_eq!((cached.allowed, cached.wait_ms, cached.reset_ms), (false, 300, first.reset_ms - 200));
            clock.advance(Duration::from_millis(300));
            assert!(cache.hit(Hit::new("k", &TokenBucket::new(), rate, 1)).await.unwrap().allowed);
        });
        assert!(cache.is_empty(), "the ended rejection was dropped");
    }

    #[test]
    fn the_capacity_bounds_the_keys() {
        let (cache, _, clock) = cached(37);
        let rate = Rate::per_minute(1);
        block(async {
            for client in 0..1_000 {
                let key = format!("k{client}");
                assert!(cache.hit(Hit::new(&key, &FixedWindow, rate, 1)).await.unwrap().allowed);
                assert!(!cache.hit(Hit::new(&key, &FixedWindow, rate, 1)).await.unwrap().allowed);
                assert!(cache.len() <= 37, "{} keys", cache.len());
                clock.advance(Duration::from_millis(1));
            }
        });
        assert!(cache.len() > 37 / 2, "the cache stays in use: {} keys", cache.len());
    }

    #[test]
    fn the_shards_share_the_capacity_exactly() {
        for capacity in [1, 2, 3, 17, 100, 1_000, 100_000] {
            let cache = DenyCache::builder(MemoryBackend::new()).capacity(capacity).build().unwrap();
            let total: usize = cache.shared.shards.iter().map(|s| s.map.lock().capacity).sum();
            assert_eq!(total, capacity);
            assert!(cache.shared.shards.iter().all(|s| s.map.lock().capacity >= 1));
        }
    }
}
