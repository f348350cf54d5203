//! Connecting to Redis (standalone or Cluster; Sentinel in `sentinel.rs`), and the
//! connection every call goes through.

use super::batch::Batcher;
use super::{Batching, RedisBackend, failed, sentinel};
use crate::backend::BackendError;
use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, FromRedisValue, ScriptInvocation, Value};
use std::sync::Arc;
use std::time::Duration;

/// One multiplexed connection, whichever kind; every clone of a backend holds it.
#[derive(Clone)]
pub(super) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(sentinel::SentinelConnection),
}

impl Connection {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Connection::Single(_) => "single",
            Connection::Cluster(_) => "cluster",
            Connection::Sentinel(_) => "sentinel",
        }
    }

    /// Runs a script (loaded on first use, reloaded after NOSCRIPT).
    pub(super) async fn invoke<T: FromRedisValue>(&self, invocation: &ScriptInvocation<'_>) -> Result<T, BackendError> {
        match self {
            Connection::Single(manager) => invocation.invoke_async(&mut manager.clone()).await,
            Connection::Cluster(cluster) => invocation.invoke_async(&mut cluster.clone()).await,
            Connection::Sentinel(sentinel) => invocation.invoke_async(&mut sentinel.clone()).await,
        }
        .map_err(failed)
    }

    /// Sends one command.
    pub(super) async fn query(&self, cmd: &Cmd) -> Result<Value, BackendError> {
        match self {
            Connection::Single(manager) => manager.clone().req_packed_command(cmd).await,
            Connection::Cluster(cluster) => cluster.clone().req_packed_command(cmd).await,
            Connection::Sentinel(sentinel) => sentinel.clone().req_packed_command(cmd).await,
        }
        .map_err(failed)
    }
}

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

    pub(super) fn with_connection(connection: Connection) -> Self {
        RedisBackend {
            namespace: "throttle".to_string(),
            connection: Arc::new(connection),
            clock: None,
            batcher: Arc::new(Batcher::new(Batching::default())),
        }
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(*self.connection, Connection::Cluster(_))
    }

    pub(super) async fn invoke<T: FromRedisValue>(&self, invocation: &ScriptInvocation<'_>) -> Result<T, BackendError> {
        self.connection.invoke(invocation).await
    }
}
