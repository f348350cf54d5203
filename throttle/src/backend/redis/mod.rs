//! [`RedisBackend`]: state in Redis (standalone or Cluster) for throttles shared by
//! many processes. One round trip per decision.
//!
//! Each built-in strategy runs as a Lua script (EVALSHA; loaded on first use and
//! reloaded when Redis answers NOSCRIPT), atomically, in integer milliseconds, on Redis
//! server time unless a test fixes the time. State is the strategy codec's text (see
//! [`codec`](crate::strategy::codec)) under one key per client and scope, with an
//! expiry at the moment the state becomes fresh again, so idle keys disappear.
//!
//! Keys are `{namespace}:{uid}:{{client}}:{scope}`: the client id is the Redis
//! Cluster hash tag, so every key of one client lands in one slot.

mod scripts;

use super::{Backend, BackendError, BoxFuture};
use crate::strategy::{Decision, DynStrategy, Snapshot, codec};
use crate::{ConfigError, Rate};
use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster_async::ClusterConnection;
use std::time::Duration;

/// Throttle state in Redis.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use throttle::{HttpThrottle, backend::RedisBackend};
///
/// let redis = RedisBackend::connect("redis://127.0.0.1:6379").await?;
/// let api = HttpThrottle::builder("api:data").rate("100/min").backend(redis).build()?;
/// # let _ = api; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisBackend {
    namespace: String,
    connection: Connection,
    fixed_now_ms: Option<u64>,
}

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisBackend {
    /// Connects to one Redis server (`redis://`, `redis+unix://`; `rediss://` needs
    /// the redis crate's TLS features) through a multiplexed connection that
    /// reconnects by itself.
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        let client = ::redis::Client::open(url).map_err(failed)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_number_of_retries(2)
            .set_max_delay(500);
        let manager = ConnectionManager::new_with_config(client, config).await.map_err(failed)?;
        Ok(Self::from_connection_manager(manager))
    }

    /// Uses an existing connection manager.
    pub fn from_connection_manager(manager: ConnectionManager) -> Self {
        RedisBackend { namespace: "throttle".to_string(), connection: Connection::Single(manager), fixed_now_ms: None }
    }

    /// Connects to a Redis Cluster through any of its nodes.
    pub async fn connect_cluster(nodes: &[&str]) -> Result<Self, BackendError> {
        let client = ::redis::cluster::ClusterClient::builder(nodes.iter().copied())
            .connection_timeout(Duration::from_secs(2))
            .retries(2)
            .build()
            .map_err(failed)?;
        let connection = client.get_async_connection().await.map_err(failed)?;
        Ok(RedisBackend { namespace: "throttle".to_string(), connection: Connection::Cluster(connection), fixed_now_ms: None })
    }

    /// The key prefix (default `"throttle"`).
    pub fn with_namespace(mut self, namespace: &str) -> Result<Self, ConfigError> {
        crate::key::validate_namespace(namespace)?;
        self.namespace = namespace.to_string();
        Ok(self)
    }

    /// Decides at this fixed time instead of Redis server time: for tests that
    /// compare backends step by step.
    #[doc(hidden)]
    pub fn with_fixed_time(mut self, now_ms: u64) -> Self {
        self.fixed_now_ms = Some(now_ms);
        self
    }

    async fn run(&self, invocation: &::redis::ScriptInvocation<'_>) -> ::redis::RedisResult<::redis::Value> {
        match &self.connection {
            Connection::Single(manager) => invocation.invoke_async(&mut manager.clone()).await,
            Connection::Cluster(cluster) => invocation.invoke_async(&mut cluster.clone()).await,
        }
    }

    fn now_arg(&self) -> String {
        self.fixed_now_ms.map(|ms| ms.to_string()).unwrap_or_default()
    }

    async fn decide(&self, key: &str, strategy: &dyn DynStrategy, rate: Rate, cost: u64) -> Result<Decision, BackendError> {
        let script = scripts::for_strategy(strategy).ok_or_else(|| unsupported(strategy))?;
        let mut invocation = script.prepare_invoke();
        invocation.key(redis_key(key)).arg("hit").arg(self.now_arg()).arg(rate.limit()).arg(rate.period_ms()).arg(cost);
        for param in scripts::params(strategy, rate) {
            invocation.arg(param);
        }
        let reply: Vec<u64> = ::redis::from_redis_value(&self.run(&invocation).await.map_err(failed)?).map_err(failed)?;
        match reply[..] {
            [allowed, remaining, wait_ms, reset_ms] => {
                Ok(Decision { allowed: allowed == 1, remaining, wait_ms, reset_ms })
            }
            _ => Err(failed(format!("unexpected script reply {reply:?}"))),
        }
    }

    async fn read(&self, key: &str, strategy: &dyn DynStrategy, rate: Rate) -> Result<Snapshot, BackendError> {
        let script = scripts::for_strategy(strategy).ok_or_else(|| unsupported(strategy))?;
        let mut invocation = script.prepare_invoke();
        invocation.key(redis_key(key)).arg("read").arg(self.now_arg()).arg(rate.limit()).arg(rate.period_ms()).arg(0);
        let (now, raw): (u64, String) =
            ::redis::from_redis_value(&self.run(&invocation).await.map_err(failed)?).map_err(failed)?;
        let fields = codec::from_text(&raw).filter(|f| !f.is_empty());
        Ok(strategy.stat_encoded(fields.as_deref(), now, rate))
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        let mut cmd = ::redis::cmd("DEL");
        cmd.arg(redis_key(key));
        match &self.connection {
            Connection::Single(manager) => manager.clone().req_packed_command(&cmd).await,
            Connection::Cluster(cluster) => cluster.clone().req_packed_command(&cmd).await,
        }
        .map(drop)
        .map_err(failed)
    }
}

/// `ns:uid:client:scope` → `ns:uid:{client}:scope`. Client and scope are escaped (no
/// `:`, `{`, `}`), so the last two segments are exactly them.
fn redis_key(key: &str) -> String {
    let Some((head, scope)) = key.rsplit_once(':') else { return key.to_string() };
    let Some((prefix, client)) = head.rsplit_once(':') else { return key.to_string() };
    format!("{prefix}:{{{client}}}:{scope}")
}

fn failed(error: impl std::fmt::Display) -> BackendError {
    BackendError::Failed(error.to_string().into())
}

fn unsupported(strategy: &dyn DynStrategy) -> BackendError {
    failed(format!("the Redis backend has no script for strategy `{}`", strategy.name()))
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

    fn reset<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(self.delete(key))
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.connection {
            Connection::Single(_) => "single",
            Connection::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisBackend").field("namespace", &self.namespace).field("connection", &kind).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_client_is_the_hash_tag() {
        assert_eq!(super::redis_key("throttle:api:data:1.2.3.4:default"), "throttle:api:data:{1.2.3.4}:default");
        assert_eq!(super::redis_key("ns:u:a%3Ab:s"), "ns:u:{a%3Ab}:s");
    }
}
