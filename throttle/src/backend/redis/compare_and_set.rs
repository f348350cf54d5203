//! Strategies decided in Rust on state stored in Redis: read, decide, write back only
//! if unchanged (retrying otherwise). User strategies with a codec, rates too large
//! for the scripts' doubles, and refunds of every strategy stored as one string.

use super::keys::{entries_key, stored_key};
use super::scripts::{self, Plan};
use super::{RedisBackend, failed, no_codec};
use crate::backend::{BackendError, Hit, Since};
use crate::strategy::{Decision, codec, degenerate};

/// Attempts of one compare-and-set before giving up.
const CAS_ATTEMPTS: usize = 1_000;

/// Stored integers must stay below 2^53 for a script to read them exactly.
pub(super) const EXACT: u64 = 1 << 53;

impl RedisBackend {
    /// Read, decide in Rust, write back if unchanged; on a conflict the script answers
    /// with the current state, and the decision is made again.
    pub(super) async fn compare_and_set(&self, hit: Hit<'_>) -> Result<Decision, BackendError> {
        let Hit { key, strategy, rate, cost } = hit;
        if !strategy.has_codec() {
            return Err(no_codec(strategy));
        }
        let key = stored_key(key);
        let (mut now, mut stored) = self.read_raw(&key).await?;
        for _ in 0..CAS_ATTEMPTS {
            let fields = parse_fields(&stored, false);
            let outcome =
                strategy.decide_encoded(fields.as_deref(), now, rate, cost).ok_or_else(|| no_codec(strategy))?;
            if !outcome.decision.allowed {
                return Ok(outcome.decision); // a rejection changes nothing
            }
            match self.write_if_unchanged(&key, &stored, &outcome.state, outcome.expires_at, now).await? {
                None => return Ok(outcome.decision),
                Some(current) => (now, stored) = current,
            }
        }
        Err(failed(format!("compare-and-set on `{key}` conflicted {CAS_ATTEMPTS} times in a row")))
    }

    /// A refund through compare-and-set: read, let the strategy give back what the hit
    /// still holds, write back if unchanged. The sliding log and the queue (header and
    /// entries list) are refunded by one script call instead.
    pub(super) async fn give_back(&self, hit: Hit<'_>, since: Since) -> Result<bool, BackendError> {
        let Hit { key, strategy, rate, cost } = hit;
        let scripted = match scripts::plan(strategy, rate) {
            Plan::Script(..) if degenerate(rate).is_some() => return Ok(false),
            Plan::Script(scripted) if scripted.has_entries() => {
                return self.give_back_entries(&stored_key(key), scripted.tag, hit, since).await;
            }
            Plan::Script(..) => true,
            Plan::CompareAndSet if !strategy.has_codec() => return Err(no_codec(strategy)),
            Plan::CompareAndSet => false,
        };
        let key = stored_key(key);
        let (mut now, mut stored) = self.read_raw(&key).await?;
        for _ in 0..CAS_ATTEMPTS {
            // Measured after each read: the hit is at least this long before `now`.
            let since_ms = since.as_ms_before(now);
            let fields = parse_fields(&stored, scripted);
            let Some((state, expires_at)) = strategy.refund_encoded(fields.as_deref(), now, rate, cost, since_ms)
            else {
                return Ok(false);
            };
            match self.write_if_unchanged(&key, &stored, &state, expires_at, now).await? {
                None => return Ok(true),
                Some(current) => (now, stored) = current,
            }
        }
        Err(failed(format!("compare-and-set on `{key}` conflicted {CAS_ATTEMPTS} times in a row")))
    }

    /// A refund of the sliding log or the queue: one call of their refund script.
    async fn give_back_entries(
        &self,
        stored_key: &str,
        tag: i64,
        hit: Hit<'_>,
        since: Since,
    ) -> Result<bool, BackendError> {
        let mut invocation = scripts::ENTRIES_REFUND.prepare_invoke();
        invocation.key(stored_key).key(entries_key(stored_key));
        invocation.arg(self.now_arg()).arg(tag).arg(hit.rate.limit()).arg(hit.rate.period_ms());
        invocation.arg(hit.cost).arg(self.grace_ms());
        match since.on_clock_or_elapsed() {
            Ok(since_ms) => invocation.arg(since_ms).arg(0),
            Err(elapsed_ms) => invocation.arg("").arg(elapsed_ms),
        };
        let given: i64 = self.invoke(&invocation).await?;
        Ok(given == 1)
    }

    /// Writes `state` over `read` (the text the decision read, "" for none); `None`
    /// when written, else the time and the text stored now, to decide again.
    async fn write_if_unchanged(
        &self,
        key: &str,
        read: &str,
        state: &[i64],
        expires_at: u64,
        now: u64,
    ) -> Result<Option<(u64, String)>, BackendError> {
        let mut invocation = scripts::STATE.prepare_invoke();
        invocation
            .key(key)
            .arg("cas")
            .arg(self.now_arg())
            .arg(read)
            .arg(codec::to_text(state))
            .arg(self.ttl_arg(expires_at, now));
        let (written, current_now, current): (i64, u64, String) = self.invoke(&invocation).await?;
        Ok((written != 1).then_some((current_now, current)))
    }

    /// Milliseconds to keep a state expiring at `expires_at`: "" for never (beyond
    /// what Redis can hold), 0 or less to delete it.
    fn ttl_arg(&self, expires_at: u64, now: u64) -> String {
        let ttl = i128::from(expires_at) - i128::from(now) + i128::from(self.grace_ms());
        if ttl >= i128::from(EXACT) { String::new() } else { ttl.max(0).to_string() }
    }

    /// The time (server or clock) and the stored text ("" when absent).
    pub(super) async fn read_raw(&self, stored_key: &str) -> Result<(u64, String), BackendError> {
        let mut invocation = scripts::STATE.prepare_invoke();
        invocation.key(stored_key).arg("read").arg(self.now_arg());
        self.invoke(&invocation).await
    }
}

/// Stored text as codec fields; `None` (a fresh state) when absent or unreadable. For
/// a strategy run by a script (`scripted`), the script reads decimal digits joined by
/// `,` only, each number below 2^53 (all any writer stores), and so does a stat.
pub(super) fn parse_fields(stored: &str, scripted: bool) -> Option<Vec<i64>> {
    if scripted && !stored.bytes().all(|b| b.is_ascii_digit() || b == b',') {
        return None;
    }
    codec::from_text(stored)
        .filter(|fields| !fields.is_empty() && (!scripted || fields.iter().all(|v| v.unsigned_abs() < EXACT)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
