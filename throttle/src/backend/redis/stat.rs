//! Reading a key's state without changing it: one read-only script call.

use super::compare_and_set::parse_fields;
use super::keys::{entries_key, stored_key};
use super::scripts::{self, Plan};
use super::{RedisBackend, failed, no_codec};
use crate::Rate;
use crate::backend::{BackendError, Key};
use crate::strategy::codec::tags;
use crate::strategy::{DynStrategy, Metadata, Snapshot, degenerate_stat};

impl RedisBackend {
    pub(super) async fn read(
        &self,
        key: Key<'_>,
        strategy: &dyn DynStrategy,
        rate: Rate,
    ) -> Result<Snapshot, BackendError> {
        let scripted = match scripts::plan(strategy, rate) {
            Plan::Script(..) if degenerate_stat(rate).is_some() => return Ok(strategy.stat_any(None, 0, rate)),
            Plan::Script(scripted) if scripted.has_entries() => {
                return self.read_with_entries(&stored_key(key), scripted.tag, rate).await;
            }
            Plan::Script(..) => true,
            Plan::CompareAndSet if !strategy.has_codec() => return Err(no_codec(strategy)),
            Plan::CompareAndSet => false,
        };
        let (now, stored) = self.read_raw(&stored_key(key)).await?;
        Ok(strategy.stat_encoded(parse_fields(&stored, scripted).as_deref(), now, rate))
    }

    /// The stat of a strategy with an entries key, computed by the script from the
    /// header and a few entries.
    async fn read_with_entries(&self, stored_key: &str, tag: i64, rate: Rate) -> Result<Snapshot, BackendError> {
        let mut invocation = scripts::ENTRIES_STAT.prepare_invoke();
        invocation.key(stored_key).key(entries_key(stored_key));
        invocation.arg(self.now_arg()).arg(tag).arg(rate.limit()).arg(rate.period_ms());
        let reply: Vec<i64> = self.invoke(&invocation).await?;
        snapshot_from(tag, &reply)
    }
}

/// The stat script's `{remaining, wait, reset, four metadata integers, the queue's
/// exact level}` for the strategy with codec tag `tag`.
fn snapshot_from(tag: i64, reply: &[i64]) -> Result<Snapshot, BackendError> {
    let &[remaining, wait_ms, reset_ms, a, b, c, d, level] = reply else {
        return Err(failed(format!("unexpected stat reply {reply:?}")));
    };
    let n = |v: i64| v.max(0) as u64;
    let metadata = match tag {
        tags::SLIDING_WINDOW_LOG => Metadata::SlidingWindowLog {
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
