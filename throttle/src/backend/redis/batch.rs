//! Batched decisions: concurrent decisions on one [`RedisBackend`] travel together, as
//! one call of the [`BATCH`](super::scripts::BATCH) script, decided in order inside
//! Redis. No timer: a decision goes out at once while fewer than
//! [`Batching::max_calls_in_flight`] calls are on the wire; otherwise it waits in a
//! queue, and whoever's call returns first takes what has queued as the next batch.

use super::scripts::{self, Scripted};
use super::{RedisBackend, decision_from, entries_key, failed, hash_tag};
use crate::backend::{BackendError, InvalidBackendOption};
use crate::strategy::Decision;
use ::redis::Value;
use core::future::poll_fn;
use core::pin::pin;
use core::task::Poll;
use futures_util::future::{Either, join_all, select};
use parking_lot::Mutex;
use std::collections::VecDeque;
use tokio::sync::oneshot;

/// Decisions one script call may carry, at most: a call holds Redis for its whole
/// length, so a batch is kept to a few milliseconds of work.
const MAX_DECISIONS: usize = 1_024;

/// Decisions that may wait for a call, per backend; past this, a decision fails at once
/// (and its throttle's error policy answers) rather than queue without bound while
/// Redis does not answer.
const MAX_WAITING: usize = 65_536;

/// How a [`RedisBackend`] merges concurrent decisions into script calls (see
/// [`RedisBackend::with_batching`]).
///
/// A decision is sent at once, alone, while fewer than `max_calls_in_flight` calls
/// are waiting for Redis; otherwise it queues, and the next call to return sends up
/// to `max_decisions` queued decisions as one script call. So a lone decision never
/// waits, and under load the per-call cost (a round trip, a script invocation) is
/// paid once per batch.
///
/// ```
/// use throttle::backend::Batching;
///
/// let batching = Batching::new(64, 4)?;
/// assert_eq!((batching.max_decisions(), batching.max_calls_in_flight()), (64, 4));
/// assert!(Batching::default().is_on());
/// assert!(!Batching::OFF.is_on());
/// assert_eq!(Batching::new(0, 1).unwrap_err().option, "max_decisions");
/// # Ok::<(), throttle::backend::InvalidBackendOption>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    max_decisions: usize,
    max_calls_in_flight: usize,
}

impl Batching {
    /// Every decision is its own script call, sent at once.
    pub const OFF: Batching = Batching { max_decisions: 1, max_calls_in_flight: usize::MAX };

    /// Up to `max_decisions` decisions per call (1 to 1 024; 1 is [`OFF`](Self::OFF))
    /// and at most `max_calls_in_flight` batches waiting for Redis at once (at least 1).
    ///
    /// ```
    /// use throttle::backend::Batching;
    ///
    /// assert_eq!(Batching::new(1, 8)?, Batching::OFF);
    /// assert_eq!(Batching::new(2_000, 1).unwrap_err().option, "max_decisions");
    /// assert_eq!(Batching::new(32, 0).unwrap_err().option, "max_calls_in_flight");
    /// # Ok::<(), throttle::backend::InvalidBackendOption>(())
    /// ```
    pub fn new(max_decisions: usize, max_calls_in_flight: usize) -> Result<Self, InvalidBackendOption> {
        if !(1..=MAX_DECISIONS).contains(&max_decisions) {
            return Err(InvalidBackendOption::new(
                "max_decisions",
                format!("must be 1 to {MAX_DECISIONS}, got {max_decisions}"),
            ));
        }
        if max_calls_in_flight == 0 {
            return Err(InvalidBackendOption::new("max_calls_in_flight", "must be at least 1, got 0"));
        }
        if max_decisions == 1 {
            return Ok(Self::OFF);
        }
        Ok(Batching { max_decisions, max_calls_in_flight })
    }

    /// The most decisions one script call carries.
    ///
    /// ```
    /// assert_eq!(throttle::backend::Batching::default().max_decisions(), 128);
    /// ```
    pub fn max_decisions(&self) -> usize {
        self.max_decisions
    }

    /// The most calls on the wire at once before decisions queue.
    ///
    /// ```
    /// assert_eq!(throttle::backend::Batching::default().max_calls_in_flight(), 2);
    /// ```
    pub fn max_calls_in_flight(&self) -> usize {
        self.max_calls_in_flight
    }

    /// Whether decisions may share a call.
    ///
    /// ```
    /// assert!(!throttle::backend::Batching::OFF.is_on());
    /// ```
    pub fn is_on(&self) -> bool {
        self.max_decisions > 1
    }
}

impl Default for Batching {
    /// On: up to 128 decisions per call, 2 calls in flight (one being decided by Redis
    /// while the other's answers are read and the next batch gathers).
    fn default() -> Self {
        Batching { max_decisions: 128, max_calls_in_flight: 2 }
    }
}

/// One decision by a built-in strategy's script, owned so that it can wait in a queue.
pub(super) struct ScriptHit {
    /// The state key, as stored (client as hash tag).
    pub(super) key: String,
    pub(super) scripted: Scripted,
    pub(super) limit: u64,
    pub(super) period_ms: u64,
    pub(super) cost: u64,
}

/// A decision waiting for a call, and where its answer goes.
struct Waiting {
    hit: ScriptHit,
    reply: oneshot::Sender<Result<Decision, BackendError>>,
}

/// The queue of one backend (shared by its clones).
pub(super) struct Batcher {
    batching: Batching,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    /// Calls on the wire: each holder dispatches the queue when it returns, so while
    /// `waiting` is not empty, this is at least 1.
    in_flight: usize,
    waiting: VecDeque<Waiting>,
}

impl Batcher {
    pub(super) fn new(batching: Batching) -> Self {
        Batcher { batching, queue: Mutex::new(Queue::default()) }
    }

    pub(super) fn batching(&self) -> Batching {
        self.batching
    }

    /// Up to `max_decisions` queued decisions whose callers still wait (the others,
    /// given up on by a timeout, are never sent).
    fn take_batch(&self, queue: &mut Queue) -> Vec<Waiting> {
        let mut batch = Vec::new();
        while batch.len() < self.batching.max_decisions {
            let Some(waiting) = queue.waiting.pop_front() else { break };
            if !waiting.reply.is_closed() {
                batch.push(waiting);
            }
        }
        batch
    }
}

/// What a decision does on arrival.
enum Arrival {
    /// Sent at once, holding a slot.
    Direct(ScriptHit),
    /// Waits for a batch.
    Queued(oneshot::Receiver<Result<Decision, BackendError>>),
}

/// Decides `hit` on `backend`: at once while a call slot is free, else in the next batch.
pub(super) async fn decide(backend: &RedisBackend, hit: ScriptHit) -> Result<Decision, BackendError> {
    let batcher = &*backend.batcher;
    if !batcher.batching.is_on() {
        return backend.decide_one(&hit).await;
    }
    let arrival = {
        let mut queue = batcher.queue.lock();
        if queue.in_flight < batcher.batching.max_calls_in_flight && queue.waiting.is_empty() {
            queue.in_flight += 1;
            Arrival::Direct(hit)
        } else {
            if queue.waiting.len() >= MAX_WAITING {
                queue.waiting.retain(|waiting| !waiting.reply.is_closed());
                if queue.waiting.len() >= MAX_WAITING {
                    return Err(failed(format!(
                        "{MAX_WAITING} decisions are already waiting for Redis on this connection"
                    )));
                }
            }
            let (reply, receiver) = oneshot::channel();
            queue.waiting.push_back(Waiting { hit, reply });
            Arrival::Queued(receiver)
        }
    };
    match arrival {
        Arrival::Direct(hit) => {
            let _slot = Slot(backend);
            backend.decide_one(&hit).await
        }
        Arrival::Queued(receiver) => receiver
            .await
            .unwrap_or_else(|_| Err(failed("the call carrying this decision was dropped (runtime shut down)"))),
    }
}

/// The call slot of a decision sent at once, released when its call returns or is
/// dropped (a caller's timeout).
struct Slot<'a>(&'a RedisBackend);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        release(self.0);
    }
}

/// Passes a freed slot on: to the next batch (sent from a task of its own) when
/// decisions wait, else back to the pool.
fn release(backend: &RedisBackend) {
    let waiting = {
        let mut queue = backend.batcher.queue.lock();
        let batch = backend.batcher.take_batch(&mut queue);
        if batch.is_empty() {
            queue.in_flight -= 1;
            return;
        }
        batch
    };
    let batch = Batch { backend: backend.clone(), waiting, started: false };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn(batch.send())),
        Err(_) => drop(batch), // never sent: see `Batch`'s drop
    }
}

/// A batch and the slot it holds. Dropped once sent (or given up on), it releases the
/// slot; dropped before it could be sent (no runtime, or one shutting down that refused
/// the task), nothing ever will be, so every waiting decision fails now (their
/// receivers see the senders go) and the slot is freed without sending anything.
struct Batch {
    backend: RedisBackend,
    waiting: Vec<Waiting>,
    started: bool,
}

impl Drop for Batch {
    fn drop(&mut self) {
        if self.started {
            release(&self.backend);
        } else {
            let mut queue = self.backend.batcher.queue.lock();
            queue.waiting.clear();
            queue.in_flight -= 1;
        }
    }
}

impl Batch {
    /// Sends the batch and answers each caller; gives up on the call once every caller
    /// has (so a Redis that never answers does not hold the slot forever).
    async fn send(mut self) {
        self.started = true;
        let (hits, mut replies): (Vec<ScriptHit>, Vec<_>) =
            std::mem::take(&mut self.waiting).into_iter().map(|w| (w.hit, w.reply)).unzip();
        let decided = {
            let call = pin!(self.backend.decide_batch(&hits));
            let abandoned = pin!(poll_fn(|cx| {
                let mut open = false;
                for reply in &mut replies {
                    open |= reply.poll_closed(cx).is_pending();
                }
                if open { Poll::Pending } else { Poll::Ready(()) }
            }));
            match select(call, abandoned).await {
                Either::Left((decided, _)) => decided,
                Either::Right(_) => return,
            }
        };
        for (reply, decision) in replies.into_iter().zip(decided) {
            let _ = reply.send(decision); // a caller that gave up meanwhile
        }
    }
}

impl RedisBackend {
    /// `hits`, each decided on its own, in order: one call per Cluster slot (one call
    /// in all on a standalone server), a lone hit by its strategy's own script.
    async fn decide_batch(&self, hits: &[ScriptHit]) -> Vec<Result<Decision, BackendError>> {
        if !self.is_cluster() {
            return self.decide_group(hits, &(0..hits.len()).collect::<Vec<_>>()).await;
        }
        let groups = by_slot(hits);
        let decided = join_all(groups.iter().map(|group| self.decide_group(hits, group))).await;
        let mut results: Vec<Option<Result<Decision, BackendError>>> = hits.iter().map(|_| None).collect();
        for (group, decisions) in groups.iter().zip(decided) {
            for (&index, decision) in group.iter().zip(decisions) {
                results[index] = Some(decision);
            }
        }
        results.into_iter().map(|r| r.unwrap_or_else(|| Err(failed("a batched decision got no answer")))).collect()
    }

    /// The hits at `indices` (one slot) as one call.
    async fn decide_group(&self, hits: &[ScriptHit], indices: &[usize]) -> Vec<Result<Decision, BackendError>> {
        if let [only] = indices {
            return vec![self.decide_one(&hits[*only]).await];
        }
        let mut invocation = scripts::BATCH.prepare_invoke();
        invocation.arg(self.now_arg()).arg(self.grace_ms()).arg(indices.len());
        for &index in indices {
            let hit = &hits[index];
            invocation.key(&hit.key);
            if hit.scripted.has_entries() {
                invocation.key(entries_key(&hit.key));
            }
            invocation.arg(hit.scripted.tag).arg(hit.limit).arg(hit.period_ms).arg(hit.cost);
            match hit.scripted.param {
                Some(param) => invocation.arg(param),
                None => invocation.arg(""),
            };
        }
        let answers = match self.invoke::<Value>(&invocation).await {
            Ok(reply) => batch_replies(reply, indices.len()),
            Err(error) => Err(error),
        };
        match answers {
            Ok(answers) => answers,
            // The whole call failed: every decision in it fails alike, and each caller's
            // throttle applies its error policy.
            Err(error) => {
                let message = match &error {
                    BackendError::Failed(cause) => cause.to_string(),
                    other => other.to_string(),
                };
                indices.iter().map(|_| Err(failed(&message))).collect()
            }
        }
    }
}

/// Indices of `hits` grouped by Cluster slot, in order within each group (the slot
/// Redis computes: CRC16 of the hash tag, modulo 16 384).
fn by_slot(hits: &[ScriptHit]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
    for (index, hit) in hits.iter().enumerate() {
        let slot = slot(&hit.key);
        match groups.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, group)) => group.push(index),
            None => groups.push((slot, vec![index])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

/// The Redis Cluster slot of a stored key.
fn slot(key: &str) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(hash_tag(key).as_bytes()) % 16_384
}

/// The BATCH script's flat reply: four integers per decision, or an error message
/// and three zeros for a decision whose script step raised an error.
fn batch_replies(reply: Value, count: usize) -> Result<Vec<Result<Decision, BackendError>>, BackendError> {
    let Value::Array(items) = reply else { return Err(failed(format!("unexpected batch reply {reply:?}"))) };
    if items.len() != 4 * count {
        return Err(failed(format!("a batch of {count} decisions got {} reply elements", items.len())));
    }
    items
        .chunks_exact(4)
        .map(|answer| match answer {
            [Value::Int(allowed), Value::Int(remaining), Value::Int(wait), Value::Int(reset)] => {
                Ok(decision_from(&[*allowed, *remaining, *wait, *reset]))
            }
            [Value::BulkString(message), ..] => Ok(Err(failed(String::from_utf8_lossy(message)))),
            other => Err(failed(format!("unexpected batch reply element {other:?}"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(key: &str) -> ScriptHit {
        ScriptHit {
            key: key.to_string(),
            scripted: match scripts::plan(&crate::strategy::FixedWindow, crate::Rate::per_minute(5)) {
                scripts::Plan::Script(scripted) => scripted,
                scripts::Plan::CompareAndSet => unreachable!("fixed_window has a script"),
            },
            limit: 5,
            period_ms: 60_000,
            cost: 1,
        }
    }

    #[test]
    fn slots_are_those_redis_computes() {
        // `CLUSTER KEYSLOT` on Redis 7: foo 12182, {user1000}.following 3443.
        assert_eq!(slot("foo"), 12_182);
        assert_eq!(slot("{user1000}.following"), 3_443);
        assert_eq!(slot("ns:a:{1.2.3.4}:x"), slot("ns:b:{1.2.3.4}:y"));
    }

    #[test]
    fn hits_group_by_slot_in_order() {
        let hits = [hit("ns:u:{a}:s"), hit("ns:u:{b}:s"), hit("ns:v:{a}:s"), hit("ns:u:{a}:t")];
        assert_eq!(by_slot(&hits), [vec![0, 2, 3], vec![1]]);
    }

    #[test]
    fn replies_decode_per_decision_and_errors_stay_apart() {
        let reply = Value::Array(vec![
            Value::Int(1),
            Value::Int(4),
            Value::Int(0),
            Value::Int(60_000),
            Value::BulkString(b"WRONGTYPE Operation against a key".to_vec()),
            Value::Int(0),
            Value::Int(0),
            Value::Int(0),
            Value::Int(0),
            Value::Int(0),
            Value::Int(-1),
            Value::Int(5),
        ]);
        let answers = batch_replies(reply, 3).unwrap();
        assert_eq!(
            answers[0].as_ref().unwrap(),
            &Decision { allowed: true, remaining: 4, wait_ms: 0, reset_ms: 60_000 }
        );
        assert!(answers[1].as_ref().unwrap_err().to_string().contains("WRONGTYPE"));
        assert_eq!(answers[2].as_ref().unwrap().wait_ms, crate::strategy::NEVER);
        assert!(batch_replies(Value::Array(vec![Value::Int(1)]), 1).is_err(), "short reply");
        assert!(batch_replies(Value::Nil, 1).is_err());
    }
}
