//! Redis through Sentinel: the sentinels name the master, and are asked again when
//! they announce a new one, or when the master stops answering or turns out to be a
//! replica, so decisions follow a failover by themselves.

use super::{Connection, RedisBackend, failed};
use crate::backend::BackendError;
use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, Pipeline,
    RedisError, RedisFuture, Value,
};
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use parking_lot::Mutex;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How long one sentinel may take to name the master (the sentinel query, then the
/// master's `ROLE`, which a paused master never answers). Then the next one is asked.
const SENTINEL_TIMEOUT: Duration = Duration::from_millis(500);

/// Connecting to a master, as for a standalone server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// At most one discovery per interval on failed or abandoned calls: while the master
/// is down every decision fails, and each must not become a round of sentinel queries.
const DISCOVERY_INTERVAL: Duration = Duration::from_millis(100);

/// The pause before listening again to a sentinel that went away.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

impl RedisBackend {
    /// Connects to the master that Redis Sentinel names `master_name`, asking the
    /// given sentinels (`redis://host:26379`; a sentinel's password goes in its URL).
    ///
    /// When the master fails over, decisions follow. The backend asks the sentinels
    /// for the master again and connects to the new one:
    ///
    /// - when a sentinel announces it (`+switch-master`, listened to on every
    ///   sentinel), also when the old master still runs and would accept writes until
    ///   Sentinel demotes it;
    /// - on a connection error or a `READONLY` reply (the old master now a replica),
    ///   and the call is retried once on the new master;
    /// - in the background, when the throttle abandoned a call at its
    ///   [`timeout`](crate::ThrottleBuilder::timeout) (a paused master answers
    ///   nothing).
    ///
    /// Scripts are loaded on the new master at its first `NOSCRIPT`.
    ///
    /// Until the sentinels have promoted a replica, calls fail and follow the
    /// throttle's [`OnError`](crate::OnError) policy. Replication is asynchronous, so
    /// hits the old master had not yet passed on are forgotten by the new one; a
    /// retried call may count twice, which only rejects sooner.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use throttle::{HttpThrottle, backend::RedisBackend};
    ///
    /// let sentinels = ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379", "redis://10.0.0.3:26379"];
    /// let redis = RedisBackend::connect_sentinel("mymaster", sentinels).await?;
    /// let api = HttpThrottle::builder("api:data").rate("100/min").backend(redis).build()?;
    /// # let _ = api; Ok(()) }
    /// ```
    pub async fn connect_sentinel<I, S>(master_name: &str, sentinels: I) -> Result<Self, BackendError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::connect_sentinel_with(master_name, sentinels, SentinelNodeConnectionInfo::default()).await
    }

    /// [`connect_sentinel`](Self::connect_sentinel), with how to connect to the master
    /// once found: its database, username and password, and TLS.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use redis::RedisConnectionInfo;
    /// use redis::sentinel::SentinelNodeConnectionInfo;
    /// use throttle::backend::RedisBackend;
    ///
    /// let master = SentinelNodeConnectionInfo {
    ///     tls_mode: None,
    ///     redis_connection_info: Some(RedisConnectionInfo {
    ///         db: 2,
    ///         password: Some("secret".to_string()),
    ///         ..Default::default()
    ///     }),
    /// };
    /// let redis =
    ///     RedisBackend::connect_sentinel_with("mymaster", ["redis://:sentinel-pass@10.0.0.1:26379"], master).await?;
    /// # let _ = redis; Ok(()) }
    /// ```
    pub async fn connect_sentinel_with<I, S>(
        master_name: &str,
        sentinels: I,
        master: SentinelNodeConnectionInfo,
    ) -> Result<Self, BackendError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let connection = SentinelConnection::connect(master_name, sentinels, master).await?;
        Ok(Self::with_connection(Connection::Sentinel(connection)))
    }
}

/// A connection to the current master, shared by clones.
#[derive(Clone)]
pub(super) struct SentinelConnection {
    shared: Arc<Shared>,
}

struct Shared {
    master: Mutex<Master>,
    /// One discovery at a time; the others wait for its outcome.
    discovery: tokio::sync::Mutex<Discovery>,
    /// A background discovery has been spawned and has not finished.
    spawned: AtomicBool,
    /// Dropped with the last clone, which stops the listeners.
    listeners: tokio::sync::watch::Sender<()>,
}

/// Why the master is looked up again.
#[derive(Clone, Copy)]
enum Reason {
    /// A call on the connection of this generation failed as if the master were gone
    /// or demoted: reconnect, even to the same address (the socket is broken).
    Failed(u64),
    /// A call on the connection of this generation was abandoned: connect only if the
    /// master moved.
    Abandoned(u64),
    /// A sentinel announced a new master: ask at once.
    Switched,
}

#[derive(Clone)]
struct Master {
    /// Bumped on each new connection, so a failed call knows whether another call has
    /// already moved on.
    generation: u64,
    address: ConnectionAddr,
    connection: MultiplexedConnection,
}

struct Discovery {
    /// One client per sentinel, so a sentinel that hangs is given up on after
    /// [`SENTINEL_TIMEOUT`] and the next is asked.
    sentinels: Vec<SentinelClient>,
    /// The sentinel that answered last, asked first.
    preferred: usize,
    last_attempt: Option<Instant>,
}

impl SentinelConnection {
    async fn connect<I, S>(
        master_name: &str,
        sentinels: I,
        master: SentinelNodeConnectionInfo,
    ) -> Result<Self, BackendError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let addresses = sentinels
            .into_iter()
            .map(|url| {
                let url = url.as_ref();
                url.into_connection_info().map_err(|error| failed(format!("sentinel `{url}`: {error}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if addresses.is_empty() {
            return Err(failed("no sentinel address given"));
        }
        let clients = addresses
            .iter()
            .map(|address| {
                let name = master_name.to_string();
                SentinelClient::build(vec![address.clone()], name, Some(master.clone()), SentinelServerType::Master)
                    .map_err(failed)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut discovery = Discovery { sentinels: clients, preferred: 0, last_attempt: None };
        let (address, connection) = discovery.find_master().await.map_err(failed)?;
        let (alive, _) = tokio::sync::watch::channel(());
        let shared = Arc::new(Shared {
            master: Mutex::new(Master { generation: 0, address, connection }),
            discovery: tokio::sync::Mutex::new(discovery),
            spawned: AtomicBool::new(false),
            listeners: alive,
        });
        for sentinel in addresses {
            let alive = shared.listeners.subscribe();
            tokio::spawn(listen_for_switches(Arc::downgrade(&shared), sentinel, master_name.to_string(), alive));
        }
        Ok(SentinelConnection { shared })
    }

    /// Sends on the current master; on an error that says the master is gone or
    /// demoted, asks the sentinels again and, if that found a new connection, sends
    /// once more there.
    async fn send<'a, T, F, Fut>(&'a self, mut send: F) -> Result<T, RedisError>
    where
        F: FnMut(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>> + 'a,
    {
        let master = self.shared.master.lock().clone();
        let mut in_flight = InFlight { shared: &self.shared, generation: master.generation, done: false };
        let result = send(master.connection).await;
        in_flight.done = true;
        match result {
            Err(error) if master_lost(&error) => {
                self.shared.rediscover(Reason::Failed(master.generation)).await;
                let current = self.shared.master.lock().clone();
                if current.generation == master.generation {
                    return Err(error);
                }
                send(current.connection).await
            }
            result => result,
        }
    }
}

impl Shared {
    /// Asks the sentinels for the master and connects to it if it moved (or, after a
    /// failed call, in any case). After a failed or abandoned call, nothing is done if
    /// another call already replaced that connection, or a discovery ran less than
    /// [`DISCOVERY_INTERVAL`] ago.
    async fn rediscover(&self, reason: Reason) {
        let mut discovery = self.discovery.lock().await;
        let settled = match reason {
            Reason::Failed(generation) | Reason::Abandoned(generation) => {
                self.master.lock().generation != generation
                    || discovery.last_attempt.is_some_and(|at| at.elapsed() < DISCOVERY_INTERVAL)
            }
            Reason::Switched => false,
        };
        if settled {
            return;
        }
        discovery.last_attempt = Some(Instant::now());
        let Ok((address, connection)) = discovery.find_master().await else { return };
        let mut master = self.master.lock();
        if matches!(reason, Reason::Failed(_)) || master.address != address {
            crate::log::event!(info, "throttle: Redis Sentinel named master {address}; switching to it");
            *master = Master { generation: master.generation + 1, address, connection };
        }
    }

    /// A discovery that outlives the call that asked for it (a dropped call cannot
    /// wait); at most one is pending.
    fn rediscover_in_background(self: &Arc<Self>, generation: u64) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if self.spawned.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = Arc::clone(self);
        runtime.spawn(async move {
            shared.rediscover(Reason::Abandoned(generation)).await;
            shared.spawned.store(false, Ordering::Release);
        });
    }
}

impl Discovery {
    /// The master's address and a new connection to it, from the first sentinel that
    /// names one that confirms it is a master (`ROLE`).
    async fn find_master(&mut self) -> Result<(ConnectionAddr, MultiplexedConnection), RedisError> {
        let count = self.sentinels.len();
        let mut last_error = None;
        for index in (0..count).map(|i| (self.preferred + i) % count) {
            let asked = tokio::time::timeout(SENTINEL_TIMEOUT, self.sentinels[index].async_get_client()).await;
            let client = match asked {
                Ok(Ok(client)) => client,
                Ok(Err(error)) => {
                    last_error = Some(error);
                    continue;
                }
                Err(_) => {
                    last_error = Some(RedisError::from((ErrorKind::IoError, "a sentinel did not answer in time")));
                    continue;
                }
            };
            let config = AsyncConnectionConfig::new().set_connection_timeout(CONNECT_TIMEOUT);
            match client.get_multiplexed_async_connection_with_config(&config).await {
                Ok(connection) => {
                    self.preferred = index;
                    return Ok((client.get_connection_info().addr.clone(), connection));
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| RedisError::from((ErrorKind::ClientError, "no sentinel"))))
    }
}

/// Listens to one sentinel's `+switch-master` announcements ("name old-ip old-port
/// new-ip new-port") until the backend is dropped, listening again after a pause
/// whenever the sentinel goes away.
async fn listen_for_switches(
    shared: Weak<Shared>,
    sentinel: ConnectionInfo,
    master_name: String,
    mut alive: tokio::sync::watch::Receiver<()>,
) {
    loop {
        let listening = listen(&shared, &sentinel, &master_name);
        if let Either::Right(_) = select(pin!(listening), pin!(alive.changed())).await {
            return;
        }
        if let Either::Right(_) = select(pin!(tokio::time::sleep(LISTEN_RETRY)), pin!(alive.changed())).await {
            return;
        }
    }
}

async fn listen(shared: &Weak<Shared>, sentinel: &ConnectionInfo, master_name: &str) -> Result<(), RedisError> {
    let mut pubsub = Client::open(sentinel.clone())?.get_async_pubsub().await?;
    pubsub.subscribe("+switch-master").await?;
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let announcement: String = message.get_payload()?;
        if announcement.split(' ').next() == Some(master_name) {
            let Some(shared) = shared.upgrade() else { return Ok(()) };
            shared.rediscover(Reason::Switched).await;
        }
    }
    Ok(())
}

/// Errors after which the master must be looked up again: the socket is gone, or the
/// server is a replica now.
fn master_lost(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_unrecoverable_error()
        || matches!(error.kind(), ErrorKind::ReadOnly | ErrorKind::MasterDown)
}

/// Marks a call in flight. Dropped unfinished, the throttle gave up waiting: the
/// master may be paused, so the sentinels are asked in the background.
struct InFlight<'a> {
    shared: &'a Arc<Shared>,
    generation: u64,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.rediscover_in_background(self.generation);
        }
    }
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.send(move |mut connection| async move { connection.req_packed_command(cmd).await }))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(
            self.send(
                move |mut connection| async move { connection.req_packed_commands(pipeline, offset, count).await },
            ),
        )
    }

    fn get_db(&self) -> i64 {
        self.shared.master.lock().connection.get_db()
    }
}
