//! [`RedisBackend`]: state in Redis (standalone, Cluster or Sentinel) for throttles
//! shared by many processes. One round trip per decision, or per batch of concurrent
//! decisions.
//!
//! - `connect.rs`: connecting, and the connection every call goes through;
//! - `options.rs`: namespace, clock, batching;
//! - `keys.rs`: where a throttle's keys live in Redis (the client as hash tag);
//! - `decide.rs`: a decision by a strategy's script, and stacked hits in one call;
//! - `batch.rs`: concurrent decisions carried together;
//! - `compare_and_set.rs`: strategies decided in Rust (user strategies, huge rates),
//!   and refunds;
//! - `stat.rs`: reading a key's state;
//! - `reset.rs`: forgetting a key, or a whole namespace;
//! - `scripts.rs` and `lua/`: the Lua twins of the built-in strategies;
//! - `inflight.rs`: in-flight leases; `sentinel.rs`: following a Sentinel failover.

mod batch;
mod compare_and_set;
mod connect;
mod decide;
mod inflight;
mod keys;
mod options;
mod reset;
mod scripts;
mod sentinel;
mod stat;

pub use batch::Batching;

use super::{Backend, BackendError, Hit, Key, Reply, Route, Since};
use crate::Clock;
use crate::Rate;
use crate::strategy::{Decision, DynStrategy, Snapshot};
use batch::Batcher;
use connect::Connection;
use std::sync::Arc;

/// Throttle state in Redis (standalone, Cluster, or through Sentinel), shared by every
/// process that uses the same Redis. Cloning is cheap and shares the connection. Needs
/// the `redis` feature.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use throttle::{HttpThrottle, backend::RedisBackend};
///
/// let redis = RedisBackend::connect("redis://127.0.0.1:6379").await?;
/// let api = HttpThrottle::builder("api:data").rate("100/min").backend(redis.clone()).build()?;
/// let search = HttpThrottle::builder("api:search")
///     .rate("10/s")
///     .strategy_name("gcra(burst = 20)")
///     .backend(redis)
///     .build()?;
/// # let _ = (api, search); Ok(()) }
/// ```
///
/// # How a decision runs
///
/// Each built-in strategy runs as a Lua script, called with EVALSHA. The script is
/// loaded on first use and reloaded when Redis answers NOSCRIPT, for example after a
/// restart or `SCRIPT FLUSH`. A decision is:
///
/// - one round trip, shared with the other decisions in flight at the same moment
///   when [batching](Self::with_batching) (on by default) carries them together;
/// - atomic;
/// - computed in integer milliseconds;
/// - on Redis server time (`TIME`), so the clocks of the app instances cannot skew a
///   limit.
///
/// The scripts reproduce the Rust strategies step for step, so a key makes the same
/// decisions here as on the [`MemoryBackend`](crate::backend::MemoryBackend).
///
/// The scripts compute with doubles, which are exact below 2^53. Rates large enough to
/// leave that range (`limit × period_ms` or `burst × period_ms` of 2^50 or more, e.g.
/// a billion hits a day) run through compare-and-set (below) instead, where Rust
/// decides exactly as in memory (see the strategies'
/// [note on large rates](crate::strategy#exactness-with-large-rates)).
///
/// A strategy of your own runs through a generic **compare-and-set** path. It must
/// implement [`Strategy::encode`](crate::strategy::Strategy::encode) and
/// [`Strategy::decode`](crate::strategy::Strategy::decode):
///
/// 1. One script call reads the stored state and the time.
/// 2. Rust decides.
/// 3. A second call writes the new state only if the stored text is still the one
///    read. Otherwise it answers with the current state, and the decision is made
///    again.
///
/// That costs **two round trips** per admitted hit (one per rejected hit), plus one per
/// conflict. A strategy without a codec fails with an error that says so.
///
/// Refunds ([`Backend::refund`]) run through compare-and-set too, for every strategy
/// stored as one string: two round trips. The sliding log and the queue, whose entries
/// sit in a list beside the state, are refunded by one script call that takes the
/// refunded cost out of the entries (the log's entries logged since the hit, earliest
/// first; the queue's head, as the leaky bucket drains), atomically with the hits of
/// other callers. With Redis server time, the moment a refund measures from is the
/// server's reading less the time elapsed here since the hit was sent, which is never
/// later than the hit.
///
/// Stats and checks are one read-only script call; Rust computes the stat from the
/// stored state.
///
/// # Keys
///
/// State is stored as the strategy codec's text (see
/// [`codec`](crate::strategy::codec)), one key per client and scope:
/// `{namespace}:{uid}:{{client}}:{scope}`.
///
/// - The client segment is the Redis Cluster hash tag, so every key of one client lands
///   in one slot. It is never empty (an empty client id is `#`), so the tag is never
///   `{}`, which Redis would ignore.
/// - A key is at most [`MAX_KEY_LEN`](crate::key::MAX_KEY_LEN) bytes, braces included:
///   long client ids and scopes are stored as a SHA-256 digest (see [`key`](crate::key)).
/// - Each key expires at the moment its state becomes equivalent to a fresh one, so
///   idle keys disappear by themselves.
/// - Stored text that does not parse reads as a fresh state, never as an error.
///
/// The sliding log and the queue, whose state grows with the limit, keep it in two
/// keys: the state key holds a header of 7 integers (the running total of cost, the
/// count, the oldest entry), and `{state key}:entries`, a list beside it in the same
/// slot, holds the entries oldest first: `ms, running total` pairs for the log,
/// running totals for the queue. Both keys are written, and expire, together; reset
/// deletes both; entries out of step with their header read as a fresh state.
///
/// # Cost per decision
///
/// No decision makes Redis work in proportion to the limit, rejections included. Every
/// built-in strategy but those two reads and writes one short string. The log and
/// the queue decide a rejection of cost 1 on a full bucket from their header alone;
/// other calls read O(log d) entries near the old end of the list (a galloping
/// search; d is how far in the answer lies, at most the cost of the hit on a full
/// bucket); admissions trim what has aged out or drained, each entry once.
/// `BENCHMARKS.md` gives the server CPU per decision.
/// The exceptions are the compare-and-set paths, which move the whole codec text:
/// strategies of your own, and `leaky_bucket_queue` at rates where
/// `limit × period_ms` reaches 2^50 (e.g. 13 million a day).
///
/// # Connections and failures
///
/// [`connect`](Self::connect) takes the following URLs:
///
/// - `redis://host:port/db`;
/// - `redis+unix:///path/to/redis.sock`;
/// - `rediss://` (TLS), once one of the redis crate's TLS features is enabled.
///
/// To enable TLS, add the redis crate to your own manifest with that feature. Cargo
/// unifies the features, so this backend picks it up:
///
/// ```toml
/// redis = { version = "0.32", features = ["tokio-rustls-comp", "tls-rustls-webpki-roots"] }
/// ```
///
/// The connection is multiplexed: one socket carries every concurrent call. It
/// reconnects by itself.
///
/// A throttle protects every request against Redis failures:
///
/// - it applies its [`timeout`](crate::ThrottleBuilder::timeout) to every backend
///   call;
/// - it applies its [`OnError`](crate::OnError) policy to failures.
///
/// So a dead or paused Redis never hangs a request.
///
/// # Cluster
///
/// [`connect_cluster`](Self::connect_cluster) takes any nodes of the cluster. Every
/// decision touches one key, routed to its slot's master.
/// [`reset_namespace`](Self::reset_namespace) scans every master.
///
/// # Sentinel
///
/// [`connect_sentinel`](Self::connect_sentinel) takes the master's name and the
/// sentinels' addresses, and follows a failover to the promoted replica by itself.
#[derive(Clone)]
pub struct RedisBackend {
    namespace: String,
    /// Shared by clones: one connection, so one store (see `shares_store_with`).
    connection: Arc<Connection>,
    /// `None`: Redis server time.
    clock: Option<Clock>,
    /// Shared by clones: their concurrent decisions travel together.
    batcher: Arc<Batcher>,
}

/// Every answer is pending: each goes to Redis (see [`RedisBackend`]).
impl Backend for RedisBackend {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn hit<'a>(&'a self, hit: Hit<'a>) -> Reply<'a, Decision> {
        Reply::pending(self.decide(hit))
    }

    fn stat<'a>(&'a self, key: Key<'a>, strategy: &'a dyn DynStrategy, rate: Rate) -> Reply<'a, Snapshot> {
        Reply::pending(self.read(key, strategy, rate))
    }

    fn reset<'a>(&'a self, key: Key<'a>) -> Reply<'a, ()> {
        Reply::pending(self.delete(key))
    }

    fn hit_all<'a>(&'a self, hits: &'a [Hit<'a>]) -> Option<Reply<'a, Vec<Decision>>> {
        self.decide_all(hits)
    }

    /// Clones share their connection, and so their store, whatever their namespace,
    /// clock or batching. Two connections to one server do not: their stacked limits
    /// are decided one after the other.
    fn shares_store_with(&self, other: &dyn Backend) -> bool {
        other.downcast_ref::<Self>().is_some_and(|other| Arc::ptr_eq(&self.connection, &other.connection))
    }

    fn since_now(&self) -> Since {
        match &self.clock {
            Some(clock) => Since::Ms(clock.now_ms()),
            None => Since::Instant(std::time::Instant::now()),
        }
    }

    fn refund<'a>(&'a self, hit: Hit<'a>, since: Since, _route: Route) -> Reply<'a, bool> {
        Reply::pending(self.give_back(hit, since))
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let time = if self.clock.is_some() { "clock" } else { "server" };
        f.debug_struct("RedisBackend")
            .field("namespace", &self.namespace)
            .field("connection", &self.connection.kind())
            .field("time", &time)
            .field("batching", &self.batching())
            .finish_non_exhaustive()
    }
}

fn failed(error: impl std::fmt::Display) -> BackendError {
    BackendError::Failed(error.to_string().into())
}

fn no_codec(strategy: &dyn DynStrategy) -> BackendError {
    failed(format!(
        "strategy `{}` has no codec, so the Redis backend cannot store its state; implement \
         `Strategy::encode` and `Strategy::decode` (see `throttle::strategy::codec`) or use the in-memory backend",
        strategy.name()
    ))
}
