//! Forgetting state: one key (and the entries beside it), or a whole namespace.

use super::connect::Connection;
use super::keys::{entries_key, stored_key};
use super::{RedisBackend, failed};
use crate::backend::{BackendError, Key};
use ::redis::aio::ConnectionLike;
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use ::redis::{FromRedisValue, Value};

/// SCAN batch size for [`RedisBackend::reset_namespace`].
const SCAN_COUNT: usize = 1_000;

impl RedisBackend {
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
        match &*self.connection {
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

    /// Forgets the state key and the entries key beside it (if the strategy has one).
    pub(super) async fn delete(&self, key: Key<'_>) -> Result<(), BackendError> {
        let key = stored_key(key);
        let mut cmd = ::redis::cmd("DEL");
        cmd.arg(entries_key(&key)).arg(key);
        self.connection.query(&cmd).await.map(drop)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
