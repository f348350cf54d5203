//! [`RedisBackend`]: state in Redis (standalone, Cluster or Sentinel) for throttles
//! shared by many processes. One round trip per decision, or per batch of concurrent
//! decisions (`batch.rs`); see the type's documentation.

mod batch;
mod inflight;
mod scripts;
mod sentinel;

pub use batch::Batching;

use super::{Backend, BackendError, BoxFuture, HitRequest, Route, Since};
use crate::strategy::{Decision, DynStrategy, Metadata, NEVER, Snapshot, codec};
use crate::{Clock, ConfigError, Rate};
use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use ::redis::{FromRedisValue, ScriptInvocation, Value};
use batch::{Batcher, ScriptHit};
use scripts::Plan;
use std::sync::Arc;
use std::time::Duration;

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
    connection: Connection,
    /// `None`: Redis server time.
    clock: Option<Clock>,
    /// Shared by clones: they talk to one store, so stacked limits may be decided together.
    store: Arc<()>,
    /// Shared by clones: their concurrent decisions travel together.
    batcher: Arc<Batcher>,
}

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(sentinel::SentinelConnection),
}

/// Attempts of one compare-and-set decision before giving up.
const CAS_ATTEMPTS: usize = 1_000;

/// How long past its expiry a key is kept when decisions use a caller's clock
/// (which Redis's expiry clock may not agree with). Keeping a key longer is always
/// safe: a state past its expiry reads as a fresh one.
const CLOCK_GRACE_MS: u64 = 60_000;

/// Stored integers must stay below 2^53 for a script to read them exactly.
const EXACT: u64 = 1 << 53;

/// SCAN batch size for [`RedisBackend::reset_namespace`].
const SCAN_COUNT: usize = 1_000;

impl RedisBackend {
    /// Connects to one Redis server (`redis://`, `redis+unix://`, or `rediss://` with a
    /// TLS feature of the redis crate: see [Connections and
    /// failures](Self#connections-and-failures)) through a multiplexed connection
    /// that reconnects by itself.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), throttle::backend::BackendError> {
    /// let redis = throttle::backend::RedisBackend::connect("redis://127.0.0.1:6379/0").await?;
    /// # let _ = redis; Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        Self::from_client(::redis::Client::open(url).map_err(failed)?).await
    }

    /// Connects through an existing client, with a connection timeout of 2 s and
    /// quick reconnection attempts (a throttle's own timeout bounds every call).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let redis = throttle::backend::RedisBackend::from_client(client).await?;
    /// # let _ = redis; Ok(()) }
    /// ```
    pub async fn from_client(client: ::redis::Client) -> Result<Self, BackendError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_number_of_retries(2)
            .set_max_delay(500);
        let manager = ConnectionManager::new_with_config(client, config).await.map_err(failed)?;
        Ok(Self::from_connection_manager(manager))
    }

    /// Uses an existing connection manager (a multiplexed connection that reconnects).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let manager = redis::aio::ConnectionManager::new(client).await?;
    /// let redis = throttle::backend::RedisBackend::from_connection_manager(manager);
    /// # let _ = redis; Ok(()) }
    /// ```
    pub fn from_connection_manager(manager: ConnectionManager) -> Self {
        Self::with_connection(Connection::Single(manager))
    }

    /// Connects to a Redis Cluster through any of its nodes.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), throttle::backend::BackendError> {
    /// use throttle::backend::RedisBackend;
    /// let redis = RedisBackend::connect_cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]).await?;
    /// # let _ = redis; Ok(()) }
    /// ```
    pub async fn connect_cluster<I, S>(nodes: I) -> Result<Self, BackendError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nodes: Vec<String> = nodes.into_iter().map(|node| node.as_ref().to_string()).collect();
        let client = ::redis::cluster::ClusterClient::builder(nodes)
            .connection_timeout(Duration::from_secs(2))
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(500)
            .build()
            .map_err(failed)?;
        let connection = client.get_async_connection().await.map_err(failed)?;
        Ok(Self::from_cluster_connection(connection))
    }

    /// Uses an existing Cluster connection.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::cluster::ClusterClient::new(vec!["redis://127.0.0.1:7000"])?;
    /// let connection = client.get_async_connection().await?;
    /// let redis = throttle::backend::RedisBackend::from_cluster_connection(connection);
    /// # let _ = redis; Ok(()) }
    /// ```
    pub fn from_cluster_connection(connection: ClusterConnection) -> Self {
        Self::with_connection(Connection::Cluster(connection))
    }

    fn with_connection(connection: Connection) -> Self {
        RedisBackend {
            namespace: "throttle".to_string(),
            connection,
            clock: None,
            store: Arc::new(()),
            batcher: Arc::new(Batcher::new(Batching::default())),
        }
    }

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
    /// ([`Backend::hit_all`]) are not batched.
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

    /// Forgets every key of this backend's namespace (`{namespace}:*`), on every
    /// master of a Cluster, and returns how many were deleted. Keys are found with
    /// `SCAN` (never `KEYS`, which would block Redis) and removed with `UNLINK`, in
    /// batches; keys written meanwhile may survive.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), throttle::backend::BackendError> {
    /// let redis = throttle::backend::RedisBackend::connect("redis://127.0.0.1:6379").await?;
    /// let deleted = redis.reset_namespace().await?;
    /// println!("forgot {deleted} keys");
    /// # Ok(()) }
    /// ```
    pub async fn reset_namespace(&self) -> Result<u64, BackendError> {
        let pattern = format!("{}:*", escape_glob(&self.namespace));
        match &self.connection {
            Connection::Single(manager) => scan_and_unlink(&mut manager.clone(), &pattern).await,
            Connection::Sentinel(sentinel) => scan_and_unlink(&mut sentinel.clone(), &pattern).await,
            Connection::Cluster(cluster) => {
                let mut cluster = cluster.clone();
                let mut deleted = 0;
                for (host, port) in cluster_masters(&mut cluster).await? {
                    deleted += scan_and_unlink_node(&mut cluster, &pattern, host, port).await?;
                }
                Ok(deleted)
            }
        }
    }

    /// `ARGV[1]` of every script: the caller's time, or "" for Redis server time.
    fn now_arg(&self) -> String {
        self.clock.as_ref().map(|clock| clock.now_ms().to_string()).unwrap_or_default()
    }

    fn grace_ms(&self) -> u64 {
        if self.clock.is_some() { CLOCK_GRACE_MS } else { 0 }
    }

    async fn invoke<T: FromRedisValue>(&self, invocation: &ScriptInvocation<'_>) -> Result<T, BackendError> {
        match &self.connection {
            Connection::Single(manager) => invocation.invoke_async(&mut manager.clone()).await,
            Connection::Cluster(cluster) => invocation.invoke_async(&mut cluster.clone()).await,
            Connection::Sentinel(sentinel) => invocation.invoke_async(&mut sentinel.clone()).await,
        }
        .map_err(failed)
    }

    async fn decide(
        &self,
        key: &str,
        strategy: &dyn DynStrategy,
        rate: Rate,
        cost: u64,
    ) -> Result<Decision, BackendError> {
        match scripts::plan(strategy, rate) {
            Plan::Script(..) if is_degenerate(rate) => {
                // Unlimited or closed: no state to read, the same answer everywhere.
                Ok(strategy.decide_any(&mut strategy.new_state(), 0, rate, cost).0)
            }
            Plan::Script(scripted) => {
                let hit =
                    ScriptHit { key: redis_key(key), scripted, limit: rate.limit(), period_ms: rate.period_ms(), cost };
                batch::decide(self, hit).await
            }
            Plan::CompareAndSet => self.compare_and_set(key, strategy, rate, cost).await,
        }
    }

    /// One decision as one call of its strategy's script.
    async fn decide_one(&self, hit: &ScriptHit) -> Result<Decision, BackendError> {
        let mut invocation = hit.scripted.script.prepare_invoke();
        invocation.key(&hit.key);
        if hit.scripted.has_entries() {
            invocation.key(entries_key(&hit.key));
        }
        invocation.arg(self.now_arg()).arg(hit.limit).arg(hit.period_ms).arg(hit.cost).arg(self.grace_ms());
        if let Some(param) = hit.scripted.param {
            invocation.arg(param);
        }
        let reply: Vec<i64> = self.invoke(&invocation).await?;
        decision_from(&reply)
    }

    fn is_cluster(&self) -> bool {
        matches!(self.connection, Connection::Cluster(_))
    }

    /// Several hits as one [`MULTI`](scripts::MULTI) call; `None` when a hit has no
    /// script (user strategies, huge or degenerate rates), when one key comes twice
    /// (the script reads every state before it writes any), or, on a Cluster, when the
    /// keys belong to different clients (different slots).
    fn decide_all<'a>(
        &'a self,
        hits: &'a [HitRequest<'a>],
    ) -> Option<BoxFuture<'a, Result<Vec<Decision>, BackendError>>> {
        let mut invocation = scripts::MULTI.prepare_invoke();
        invocation.arg(self.now_arg()).arg(hits.len());
        let mut keys: Vec<String> = Vec::with_capacity(hits.len());
        for (key, strategy, rate, cost) in hits {
            let Plan::Script(scripted) = scripts::plan(*strategy, *rate) else { return None };
            if is_degenerate(*rate) {
                return None;
            }
            let key = redis_key(key);
            if keys.contains(&key) {
                return None;
            }
            invocation.key(&key).key(entries_key(&key));
            invocation.arg(scripted.tag).arg(rate.limit()).arg(rate.period_ms()).arg(*cost).arg(self.grace_ms());
            invocation.arg(scripted.param.map(|p| p.to_string()).unwrap_or_default());
            keys.push(key);
        }
        let cluster = matches!(self.connection, Connection::Cluster(_));
        if cluster && keys.windows(2).any(|pair| hash_tag(&pair[0]) != hash_tag(&pair[1])) {
            return None;
        }
        Some(Box::pin(async move {
            let replies: Vec<Vec<i64>> = self.invoke(&invocation).await?;
            replies.iter().map(|reply| decision_from(reply)).collect()
        }))
    }

    /// Read, decide in Rust, write back if unchanged; on a conflict the script answers
    /// with the current state, and the decision is made again.
    async fn compare_and_set(
        &self,
        key: &str,
        strategy: &dyn DynStrategy,
        rate: Rate,
        cost: u64,
    ) -> Result<Decision, BackendError> {
        if !strategy.has_codec() {
            return Err(no_codec(strategy));
        }
        let key = redis_key(key);
        let (mut now, mut stored) = self.read_raw(&key).await?;
        for _ in 0..CAS_ATTEMPTS {
            let fields = parse_fields(&stored, false);
            let outcome =
                strategy.decide_encoded(fields.as_deref(), now, rate, cost).ok_or_else(|| no_codec(strategy))?;
            if !outcome.decision.allowed {
                return Ok(outcome.decision); // a rejection changes nothing
            }
            let mut invocation = scripts::STATE.prepare_invoke();
            invocation
                .key(&key)
                .arg("cas")
                .arg(self.now_arg())
                .arg(&stored)
                .arg(codec::to_text(&outcome.state))
                .arg(self.ttl_arg(outcome.expires_at, now));
            let (written, current_now, current): (i64, u64, String) = self.invoke(&invocation).await?;
            if written == 1 {
                return Ok(outcome.decision);
            }
            (now, stored) = (current_now, current);
        }
        Err(failed(format!("compare-and-set on `{key}` conflicted {CAS_ATTEMPTS} times in a row")))
    }

    /// A refund through compare-and-set: read, let the strategy give back what the hit
    /// still holds, write back if unchanged. The sliding log and the queue (header and
    /// entries list) are refunded by one script call instead.
    async fn give_back(
        &self,
        key: &str,
        strategy: &dyn DynStrategy,
        rate: Rate,
        cost: u64,
        since: Since,
    ) -> Result<bool, BackendError> {
        let scripted = match scripts::plan(strategy, rate) {
            Plan::Script(..) if is_degenerate(rate) => return Ok(false),
            Plan::Script(scripted) if scripted.has_entries() => {
                return self.give_back_entries(&redis_key(key), scripted.tag, rate, cost, since).await;
            }
            Plan::Script(..) => true,
            Plan::CompareAndSet if !strategy.has_codec() => return Err(no_codec(strategy)),
            Plan::CompareAndSet => false,
        };
        let key = redis_key(key);
        let (mut now, mut stored) = self.read_raw(&key).await?;
        for _ in 0..CAS_ATTEMPTS {
            // Measured after each read: the hit is at least this long before `now`.
            let since_ms = since.as_ms_before(now);
            let fields = parse_fields(&stored, scripted);
            let Some((state, expires_at)) = strategy.refund_encoded(fields.as_deref(), now, rate, cost, since_ms)
            else {
                return Ok(false);
            };
            let mut invocation = scripts::STATE.prepare_invoke();
            invocation
                .key(&key)
                .arg("cas")
                .arg(self.now_arg())
                .arg(&stored)
                .arg(codec::to_text(&state))
                .arg(self.ttl_arg(expires_at, now));
            let (written, current_now, current): (i64, u64, String) = self.invoke(&invocation).await?;
            if written == 1 {
                return Ok(true);
            }
            (now, stored) = (current_now, current);
        }
        Err(failed(format!("compare-and-set on `{key}` conflicted {CAS_ATTEMPTS} times in a row")))
    }

    /// A refund of the sliding log or the queue: one call of their refund script.
    async fn give_back_entries(
        &self,
        redis_key: &str,
        tag: u8,
        rate: Rate,
        cost: u64,
        since: Since,
    ) -> Result<bool, BackendError> {
        let mut invocation = scripts::ENTRIES_REFUND.prepare_invoke();
        invocation.key(redis_key).key(entries_key(redis_key));
        invocation.arg(self.now_arg()).arg(tag).arg(rate.limit()).arg(rate.period_ms()).arg(cost).arg(self.grace_ms());
        match since.on_clock_or_elapsed() {
            Ok(since_ms) => invocation.arg(since_ms).arg(0),
            Err(elapsed_ms) => invocation.arg("").arg(elapsed_ms),
        };
        let given: i64 = self.invoke(&invocation).await?;
        Ok(given == 1)
    }

    /// Milliseconds to keep a state expiring at `expires_at`: "" for never (beyond
    /// what Redis can hold), 0 or less to delete it.
    fn ttl_arg(&self, expires_at: u64, now: u64) -> String {
        let ttl = i128::from(expires_at) - i128::from(now) + i128::from(self.grace_ms());
        if ttl >= i128::from(EXACT) { String::new() } else { ttl.max(0).to_string() }
    }

    /// The time (server or clock) and the stored text ("" when absent).
    async fn read_raw(&self, redis_key: &str) -> Result<(u64, String), BackendError> {
        let mut invocation = scripts::STATE.prepare_invoke();
        invocation.key(redis_key).arg("read").arg(self.now_arg());
        self.invoke(&invocation).await
    }

    async fn read(&self, key: &str, strategy: &dyn DynStrategy, rate: Rate) -> Result<Snapshot, BackendError> {
        let scripted = match scripts::plan(strategy, rate) {
            Plan::Script(..) if is_degenerate(rate) => return Ok(strategy.stat_any(None, 0, rate)),
            Plan::Script(scripted) if scripted.has_entries() => {
                return self.read_with_entries(&redis_key(key), scripted.tag, rate).await;
            }
            Plan::Script(..) => true,
            Plan::CompareAndSet if !strategy.has_codec() => return Err(no_codec(strategy)),
            Plan::CompareAndSet => false,
        };
        let (now, stored) = self.read_raw(&redis_key(key)).await?;
        Ok(strategy.stat_encoded(parse_fields(&stored, scripted).as_deref(), now, rate))
    }

    /// The stat of a strategy with an entries key, computed by the script from the
    /// header and a few entries.
    async fn read_with_entries(&self, redis_key: &str, tag: u8, rate: Rate) -> Result<Snapshot, BackendError> {
        let mut invocation = scripts::ENTRIES_STAT.prepare_invoke();
        invocation.key(redis_key).key(entries_key(redis_key));
        invocation.arg(self.now_arg()).arg(tag).arg(rate.limit()).arg(rate.period_ms());
        let reply: Vec<i64> = self.invoke(&invocation).await?;
        snapshot_from(tag, &reply)
    }

    /// Forgets the state key and the entries key beside it (if the strategy has one).
    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        let key = redis_key(key);
        let mut cmd = ::redis::cmd("DEL");
        cmd.arg(entries_key(&key)).arg(key);
        match &self.connection {
            Connection::Single(manager) => manager.clone().req_packed_command(&cmd).await,
            Connection::Cluster(cluster) => cluster.clone().req_packed_command(&cmd).await,
            Connection::Sentinel(sentinel) => sentinel.clone().req_packed_command(&cmd).await,
        }
        .map(drop)
        .map_err(failed)
    }
}

fn is_degenerate(rate: Rate) -> bool {
    rate.is_unlimited() || rate.limit() == 0
}

/// Stored text as codec fields; `None` (a fresh state) when absent or unreadable. For
/// a strategy run by a script (`scripted`), the script reads decimal digits joined by
/// `,` only, each number below 2^53 (all any writer stores), and so does a stat.
fn parse_fields(stored: &str, scripted: bool) -> Option<Vec<i64>> {
    if scripted && !stored.bytes().all(|b| b.is_ascii_digit() || b == b',') {
        return None;
    }
    codec::from_text(stored)
        .filter(|fields| !fields.is_empty() && (!scripted || fields.iter().all(|v| v.unsigned_abs() < EXACT)))
}

/// `ns:uid:client:scope` → `ns:uid:{client}:scope`. Client and scope are escaped (no
/// `:`, `{`, `}`), so the last two segments are exactly them. A throttle's client
/// segment is never empty (see [`crate::key`]); a hand-made key with an empty one gets
/// the tag `{}`, which Redis ignores, and [`hash_tag`] says so.
fn redis_key(key: &str) -> String {
    let Some((head, scope)) = key.rsplit_once(':') else { return key.to_string() };
    let Some((prefix, client)) = head.rsplit_once(':') else { return key.to_string() };
    format!("{prefix}:{{{client}}}:{scope}")
}

/// The key beside a state key that holds the entries of a sliding log or a queue
/// (a list): the same hash tag, so the same Cluster slot. No state key ends so: a
/// state key's last segment follows its `{client}` one. `key::MAX_SUFFIX_LEN` keeps it
/// within `key::MAX_KEY_LEN`.
fn entries_key(redis_key: &str) -> String {
    const SUFFIX: &str = ":entries";
    const _: () = assert!(SUFFIX.len() <= crate::key::MAX_SUFFIX_LEN);
    format!("{redis_key}{SUFFIX}")
}

/// `text` matched literally by a SCAN pattern.
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// SCAN + UNLINK on a standalone server (or Sentinel's master).
async fn scan_and_unlink(connection: &mut impl ConnectionLike, pattern: &str) -> Result<u64, BackendError> {
    let mut cursor = 0u64;
    let mut deleted = 0;
    loop {
        let scan = scan_cmd(cursor, pattern);
        let (next, keys): (u64, Vec<Vec<u8>>) =
            ::redis::from_redis_value(&connection.req_packed_command(&scan).await.map_err(failed)?).map_err(failed)?;
        if !keys.is_empty() {
            let mut unlink = ::redis::cmd("UNLINK");
            unlink.arg(&keys);
            let removed: u64 =
                ::redis::from_redis_value(&connection.req_packed_command(&unlink).await.map_err(failed)?)
                    .map_err(failed)?;
            deleted += removed;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// SCAN + UNLINK on one Cluster master: keys of one SCAN batch may sit in different
/// slots, so each is unlinked on its own, in one pipeline per batch.
async fn scan_and_unlink_node(
    cluster: &mut ClusterConnection,
    pattern: &str,
    host: String,
    port: u16,
) -> Result<u64, BackendError> {
    let route = SingleNodeRoutingInfo::ByAddress { host, port };
    let mut cursor = 0u64;
    let mut deleted = 0;
    loop {
        let reply = cluster
            .route_command(&scan_cmd(cursor, pattern), RoutingInfo::SingleNode(route.clone()))
            .await
            .map_err(failed)?;
        let (next, keys): (u64, Vec<Vec<u8>>) = ::redis::from_redis_value(&reply).map_err(failed)?;
        if !keys.is_empty() {
            let mut pipe = ::redis::pipe();
            for key in &keys {
                pipe.cmd("UNLINK").arg(key);
            }
            let replies = cluster.route_pipeline(&pipe, 0, keys.len(), route.clone()).await.map_err(failed)?;
            for reply in replies {
                deleted += u64::from_redis_value(&reply).map_err(failed)?;
            }
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

fn scan_cmd(cursor: u64, pattern: &str) -> ::redis::Cmd {
    let mut cmd = ::redis::cmd("SCAN");
    cmd.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(SCAN_COUNT);
    cmd
}

/// `(host, port)` of every master, from `CLUSTER SLOTS`.
async fn cluster_masters(cluster: &mut ClusterConnection) -> Result<Vec<(String, u16)>, BackendError> {
    let reply = cluster
        .route_command(
            &::redis::cmd("CLUSTER").arg("SLOTS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await
        .map_err(failed)?;
    let ranges: Vec<Vec<Value>> = ::redis::from_redis_value(&reply).map_err(failed)?;
    let mut masters: Vec<(String, u16)> = Vec::new();
    for range in ranges {
        // [start, end, [host, port, id, ...], replicas...]
        let Some(master) = range.get(2) else { continue };
        let node: Vec<Value> = ::redis::from_redis_value(master).map_err(failed)?;
        let (Some(host), Some(port)) = (node.first(), node.get(1)) else { continue };
        let host: String = ::redis::from_redis_value(host).map_err(failed)?;
        let port: u16 = ::redis::from_redis_value(port).map_err(failed)?;
        if !masters.iter().any(|(h, p)| *h == host && *p == port) {
            masters.push((host, port));
        }
    }
    Ok(masters)
}

/// A script's `{allowed, remaining, wait, reset}`; a wait of -1 is [`NEVER`].
fn decision_from(reply: &[i64]) -> Result<Decision, BackendError> {
    match *reply {
        [allowed, remaining, wait_ms, reset_ms] => Ok(Decision {
            allowed: allowed == 1,
            remaining: remaining.max(0) as u64,
            wait_ms: if wait_ms < 0 { NEVER } else { wait_ms as u64 },
            reset_ms: reset_ms.max(0) as u64,
        }),
        _ => Err(failed(format!("unexpected script reply {reply:?}"))),
    }
}

/// The stat script's `{remaining, wait, reset, four metadata integers, the queue's
/// exact level}` for the strategy with codec tag `tag`.
fn snapshot_from(tag: u8, reply: &[i64]) -> Result<Snapshot, BackendError> {
    let &[remaining, wait_ms, reset_ms, a, b, c, d, level] = reply else {
        return Err(failed(format!("unexpected stat reply {reply:?}")));
    };
    let n = |v: i64| v.max(0) as u64;
    let metadata = match tag {
        3 => Metadata::SlidingWindowLog {
            window_start_ms: n(a),
            entry_count: n(b),
            current_count: n(c),
            oldest_entry_ms: n(d),
        },
        _ => Metadata::LeakyBucketQueue {
            queue_len: n(a),
            queue_cost: n(b),
            capacity: n(c),
            last_leak_ms: n(d),
            level_units: n(level),
        },
    };
    Ok(Snapshot { remaining: n(remaining), wait_ms: n(wait_ms), reset_ms: n(reset_ms), metadata })
}

/// What Redis Cluster hashes to pick the slot, by Redis's own rule: the text between
/// the first `{` and the first `}` after it when that is not empty, else the whole key.
fn hash_tag(key: &str) -> &str {
    match key.split_once('{').and_then(|(_, rest)| rest.split_once('}')) {
        Some((tag, _)) if !tag.is_empty() => tag,
        _ => key,
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

impl Backend for RedisBackend {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn hit<'a>(
        &'a self,
        key: &'a str,
        strategy: &'a dyn DynStrategy,
        rate: Rate,
        cost: u64,
    ) -> BoxFuture<'a, Result<Decision, BackendError>> {
        Box::pin(self.decide(key, strategy, rate, cost))
    }

    fn stat<'a>(
        &'a self,
        key: &'a str,
        strategy: &'a dyn DynStrategy,
        rate: Rate,
    ) -> BoxFuture<'a, Result<Snapshot, BackendError>> {
        Box::pin(self.read(key, strategy, rate))
    }

    fn hit_all<'a>(&'a self, hits: &'a [HitRequest<'a>]) -> Option<BoxFuture<'a, Result<Vec<Decision>, BackendError>>> {
        self.decide_all(hits)
    }

    fn store_id(&self) -> usize {
        Arc::as_ptr(&self.store) as usize
    }

    fn reset<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(self.delete(key))
    }

    fn since_now(&self) -> Since {
        match &self.clock {
            Some(clock) => Since::Ms(clock.now_ms()),
            None => Since::Instant(std::time::Instant::now()),
        }
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
        Box::pin(self.give_back(key, strategy, rate, cost, since))
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.connection {
            Connection::Single(_) => "single",
            Connection::Cluster(_) => "cluster",
            Connection::Sentinel(_) => "sentinel",
        };
        let time = if self.clock.is_some() { "clock" } else { "server" };
        f.debug_struct("RedisBackend")
            .field("namespace", &self.namespace)
            .field("connection", &kind)
            .field("time", &time)
            .field("batching", &self.batching())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_hash_tag() {
        assert_eq!(redis_key("throttle:api:data:1.2.3.4:default"), "throttle:api:data:{1.2.3.4}:default");
        assert_eq!(redis_key("ns:u:a%3Ab:s"), "ns:u:{a%3Ab}:s");
        assert_eq!(redis_key("ns:u:#:s"), "ns:u:{#}:s");
    }

    #[test]
    fn hash_tags_follow_the_redis_rule() {
        assert_eq!(hash_tag("ns:u:{1.2.3.4}:s"), "1.2.3.4");
        assert_eq!(hash_tag("ns:u:{#}:s"), "#");
        // An empty tag is no tag: Redis hashes the whole key, so two such keys differ.
        assert_eq!(hash_tag("ns:a:{}:s"), "ns:a:{}:s");
        assert_ne!(hash_tag("ns:a:{}:s"), hash_tag("ns:b:{}:s"));
        assert_eq!(hash_tag("no-tag"), "no-tag");
        assert_eq!(hash_tag("a{b"), "a{b");
        assert_eq!(hash_tag("a}{b}"), "b", "the first opening brace, then the first closing one after it");
        assert_eq!(hash_tag("{}{b}"), "{}{b}", "only the first opening brace counts");
    }

    #[test]
    fn stored_text_a_script_cannot_read_exactly_is_fresh() {
        assert_eq!(parse_fields("4,1700000000000,3000", true), Some(vec![4, 1_700_000_000_000, 3_000]));
        assert_eq!(parse_fields("", true), None);
        assert_eq!(parse_fields("garbage", false), None);
        assert_eq!(parse_fields("1,9007199254740992,0", true), None);
        for text in ["4, 5,6", "4,5.0,6", "4,1e3,6", "4,-5,6", "4,,6", "4,5,"] {
            assert_eq!(parse_fields(text, true), None, "the scripts read {text:?} as fresh");
        }
        assert_eq!(parse_fields("1,9007199254740992,0", false), Some(vec![1, 1 << 53, 0]), "Rust reads it exactly");
        assert_eq!(parse_fields("9,-5", false), Some(vec![9, -5]), "user codecs may store negatives");
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
