//! [`RedisBackend`] as an [`InFlightStore`]: one sorted set of lease id → expiry per
//! client, so in-flight limits hold across processes and a dead process's leases
//! expire.
//!
//! Lua: `lua/inflight.lua`. Tests: `tests/tests/operating/inflight.rs`, on a real
//! redis-server.

use super::RedisBackend;
use super::keys::stored_key;
use crate::backend::{BackendError, BoxFuture, Key};
use crate::inflight::{Acquired, InFlightStore, Release};
use ::redis::Script;
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
        key: Key<'_>,
        lease: &str,
        max: u64,
        ttl: Duration,
    ) -> Result<Acquired, BackendError> {
        let mut invocation = INFLIGHT.prepare_invoke();
        invocation
            .key(stored_key(key))
            .arg("acquire")
            .arg(self.now_arg())
            .arg(max.min(1 << 50))
            .arg(lease)
            .arg(ttl_ms(ttl))
            .arg(self.grace_ms());
        let (admitted, held): (i64, u64) = self.invoke(&invocation).await?;
        Ok(Acquired::new(admitted == 1, held))
    }

    async fn inflight_renew(&self, stored_key: &str, lease: &str, ttl: Duration) -> Result<bool, BackendError> {
        let mut invocation = INFLIGHT.prepare_invoke();
        invocation.key(stored_key).arg("renew").arg(self.now_arg()).arg(lease).arg(ttl_ms(ttl)).arg(self.grace_ms());
        let renewed: i64 = self.invoke(&invocation).await?;
        Ok(renewed == 1)
    }

    async fn inflight_count(&self, key: Key<'_>) -> Result<u64, BackendError> {
        let mut invocation = INFLIGHT.prepare_invoke();
        invocation.key(stored_key(key)).arg("count").arg(self.now_arg());
        self.invoke(&invocation).await
    }

    /// `ZREM`: the lease's unit is free at once (a gone lease is no error).
    async fn inflight_release(&self, stored_key: String, lease: String) -> Result<(), BackendError> {
        let mut cmd = ::redis::cmd("ZREM");
        cmd.arg(stored_key).arg(lease);
        self.connection.query(&cmd).await.map(drop)
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
        key: Key<'a>,
        lease: &'a str,
        max: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Acquired, BackendError>> {
        Box::pin(self.inflight_acquire(key, lease, max, ttl))
    }

    fn release(&self, key: Key<'_>, lease: &str) -> Release {
        let backend = self.clone();
        let (key, lease) = (stored_key(key), lease.to_string());
        Release::Pending(Box::pin(async move { backend.inflight_release(key, lease).await }))
    }

    fn leases_expire(&self) -> bool {
        true
    }

    fn renew(&self, key: Key<'_>, lease: &str, ttl: Duration) -> BoxFuture<'static, Result<bool, BackendError>> {
        let backend = self.clone();
        let (key, lease) = (stored_key(key), lease.to_string());
        Box::pin(async move { backend.inflight_renew(&key, &lease, ttl).await })
    }

    fn in_flight<'a>(&'a self, key: Key<'a>) -> BoxFuture<'a, Result<u64, BackendError>> {
        Box::pin(self.inflight_count(key))
    }
}
