//! A decision by a built-in strategy's script (one call, or batched with others:
//! `batch.rs`), and stacked hits decided as one call of the `MULTI` script.

use super::batch::{self, ScriptHit};
use super::keys::{entries_key, hash_tag, stored_key};
use super::scripts::{self, Plan, Scripted};
use super::{RedisBackend, failed};
use crate::Rate;
use crate::backend::{BackendError, Hit, Reply};
use crate::strategy::{Decision, DynStrategy, NEVER, degenerate};

impl RedisBackend {
    pub(super) async fn decide(&self, hit: Hit<'_>) -> Result<Decision, BackendError> {
        let Hit { key, strategy, rate, cost } = hit;
        match scripts::plan(strategy, rate) {
            Plan::Script(scripted) => {
                // Unlimited or closed: no state to read, the same answer everywhere.
                if let Some(decision) = degenerate(rate) {
                    return Ok(decision);
                }
                let hit = ScriptHit {
                    key: stored_key(key),
                    scripted,
                    limit: rate.limit(),
                    period_ms: rate.period_ms(),
                    cost,
                };
                batch::decide(self, hit).await
            }
            Plan::CompareAndSet => self.compare_and_set(hit).await,
        }
    }

    /// One decision as one call of its strategy's script.
    pub(super) async fn decide_one(&self, hit: &ScriptHit) -> Result<Decision, BackendError> {
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

    /// Several hits as one [`MULTI`](scripts::MULTI) call; `None` when a hit has no
    /// script (user strategies, huge or degenerate rates), when one key comes twice
    /// (the script reads every state before it writes any), or, on a Cluster, when the
    /// keys belong to different clients (different slots).
    pub(super) fn decide_all<'a>(&'a self, hits: &'a [Hit<'a>]) -> Option<Reply<'a, Vec<Decision>>> {
        let mut invocation = scripts::MULTI.prepare_invoke();
        invocation.arg(self.now_arg()).arg(hits.len());
        let mut keys: Vec<String> = Vec::with_capacity(hits.len());
        for hit in hits {
            let scripted = stateful_script(hit.strategy, hit.rate)?;
            let key = stored_key(hit.key);
            if keys.contains(&key) {
                return None;
            }
            invocation.key(&key).key(entries_key(&key));
            invocation.arg(scripted.tag).arg(hit.rate.limit()).arg(hit.rate.period_ms()).arg(hit.cost);
            invocation.arg(self.grace_ms()).arg(scripted.param.map(|p| p.to_string()).unwrap_or_default());
            keys.push(key);
        }
        if self.is_cluster() && keys.windows(2).any(|pair| hash_tag(&pair[0]) != hash_tag(&pair[1])) {
            return None;
        }
        Some(Reply::pending(async move {
            let replies: Vec<Vec<i64>> = self.invoke(&invocation).await?;
            replies.iter().map(|reply| decision_from(reply)).collect()
        }))
    }
}

/// The script of a hit that reads and writes state: `None` for strategies decided in
/// Rust and for degenerate rates, which store nothing.
fn stateful_script(strategy: &dyn DynStrategy, rate: Rate) -> Option<Scripted> {
    match scripts::plan(strategy, rate) {
        Plan::Script(scripted) if degenerate(rate).is_none() => Some(scripted),
        _ => None,
    }
}

/// A script's `{allowed, remaining, wait, reset}`; a wait of -1 is [`NEVER`].
pub(super) fn decision_from(reply: &[i64]) -> Result<Decision, BackendError> {
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
