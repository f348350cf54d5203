//! [`RedisBackend`] as an [`InFlightStore`]: one sorted set of lease id → expiry per
//! client, so in-flight limits hold across processes and a dead process's leases
//! expire.

use super::{Connection, RedisBackend, failed, redis_key};
use crate::backend::{BackendError, BoxFuture};
use crate::inflight::{Acquired, InFlightStore, Release};
use ::redis::Script;
use ::redis::aio::ConnectionLike;
use std::sync::LazyLock;
use std::time::Duration;

static INFLIGHT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/inflight.lua")));

/// Lease TTLs in whole milliseconds, kept where the script's doubles are exact.
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).clamp(1, 1 << 50)
}

impl RedisBackend {
    async fn inflight_acquire(
        &self,
        key: &str,
        lease: &str,
        max: u64,
        ttl: Duration,
    ) -> Result<Acquired, BackendError> {
        let mut invocation = INFLIGHT.prepare_invoke();
        invocation
            .key(redis_key(key))
            .arg("acquire")
            .arg(self.now_arg())
            .arg(max.min(1 << 50))
            .arg(lease)
            .arg(ttl_ms(ttl))
            .arg(self.grace_ms());
        let (admitted, held): (i64, u64) = self.invoke(&invocation).await?;
        Ok(Acquired::new(admitted == 1, held))
    }

    async fn inflight_renew(&self, key: &str, lease: &str, ttl: Duration) -> Result<bool, BackendError> {
        let mut invocation = INFLIGHT.prepare_invoke();
        invocation
            .key(redis_key(key))
            .arg("renew")
            .arg(self.now_arg())
            .arg(lease)
            .arg(ttl_ms(ttl))
            .arg(self.grace_ms());
        let renewed: i64 = self.invoke(&invocation).await?;
        Ok(renewed == 1)
    }

    async fn inflight_count(&self, key: &str) -> Result<u64, BackendError> {
        let mut invocation = INFLIGHT.prepare_invoke();
        invocation.key(redis_key(key)).arg("count").arg(self.now_arg());
        self.invoke(&invocation).await
    }

    /// `ZREM`: the lease's unit is free at once (a gone lease is no error).
    async fn inflight_release(&self, redis_key: String, lease: String) -> Result<(), BackendError> {
        let mut cmd = ::redis::cmd("ZREM");
        cmd.arg(redis_key).arg(lease);
        match &self.connection {
            Connection::Single(manager) => manager.clone().req_packed_command(&cmd).await,
            Connection::Cluster(cluster) => cluster.clone().req_packed_command(&cmd).await,
            Connection::Sentinel(sentinel) => sentinel.clone().req_packed_command(&cmd).await,
        }
        .map(drop)
        .map_err(failed)
    }
}

/// In-flight leases in Redis (see [`crate::inflight`]): at
/// `{namespace}:{uid}:{{client}}:#inflight`, each call one atomic script on Redis
/// server time (or the backend's clock, see [`RedisBackend::with_clock`]).
impl InFlightStore for RedisBackend {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn acquire<'a>(
        &'a self,
        key: &'a str,
        lease: &'a str,
        max: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Acquired, BackendError>> {
        Box::pin(self.inflight_acquire(key, lease, max, ttl))
    }

    fn release(&self, key: &str, lease: &str) -> Release {
        let backend = self.clone();
        let (key, lease) = (redis_key(key), lease.to_string());
        Release::Pending(Box::pin(async move { backend.inflight_release(key, lease).await }))
    }

    fn leases_expire(&self) -> bool {
        true
    }

    fn renew(&self, key: &str, lease: &str, ttl: Duration) -> BoxFuture<'static, Result<bool, BackendError>> {
        let backend = self.clone();
        let (key, lease) = (key.to_string(), lease.to_string());
        Box::pin(async move { backend.inflight_renew(&key, &lease, ttl).await })
    }

    fn in_flight<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, BackendError>> {
        Box::pin(self.inflight_count(key))
    }
}
