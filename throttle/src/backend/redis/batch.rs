//! Batched decisions: concurrent decisions on one [`RedisBackend`] travel together, as
//! one call of the [`BATCH`](super::scripts::BATCH) script, decided in order inside
//! Redis. No timer: a decision goes out at once, alone, when no call is in flight.
//! Otherwise it queues, and a dispatcher (one task per call slot, at most
//! [`Batching::max_calls_in_flight`]) yields once, so that every caller woken in the
//! same moment queues too, then sends the queue as one call.

use super::decide::decision_from;
use super::keys::{entries_key, hash_tag};
use super::scripts::{self, Scripted};
use super::{RedisBackend, failed};
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
/// A decision is sent at once, alone, when no call is waiting for Redis. Otherwise it
/// queues, and a dispatcher (one per call slot, at most `max_calls_in_flight`) sends
/// up to `max_decisions` queued decisions as one script call, after letting the
/// callers woken in the same moment queue too (one pass of the scheduler, no timer).
/// So a lone decision never waits, a queued one waits for no round trip while a slot
/// is free, and under load the per-call cost (a round trip, a script invocation) is
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
    /// assert_eq!(throttle::backend::Batching::default().max_decisions(), 32);
    /// ```
    pub fn max_decisions(&self) -> usize {
        self.max_decisions
    }

    /// The most calls on the wire at once before decisions queue.
    ///
    /// ```
    /// assert_eq!(throttle::backend::Batching::default().max_calls_in_flight(), 8);
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
    /// On: up to 32 decisions per call and 8 calls in flight. Several moderate batches
    /// keep Redis busy while the client reads the answers of one and gathers the next
    /// (one batch of everything would leave Redis idle meanwhile); `BENCHMARKS.md`
    /// compares shapes.
    fn default() -> Self {
        Batching { max_decisions: 32, max_calls_in_flight: 8 }
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
    /// Calls on the wire, and slots reserved by dispatchers about to send one.
    in_flight: usize,
    /// A dispatcher is scheduled and has not taken the queue yet: arrivals only queue.
    dispatching: bool,
    waiting: VecDeque<Waiting>,
}

impl Queue {
    /// Whether a dispatcher must be started for the waiting decisions (none is
    /// scheduled, and a call slot is free); if so, its slot is reserved.
    fn wants_dispatcher(&mut self, max_in_flight: usize) -> bool {
        if self.waiting.is_empty() || self.dispatching || self.in_flight >= max_in_flight {
            return false;
        }
        self.dispatching = true;
        self.in_flight += 1;
        true
    }
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

/// Decides `hit` on `backend`: at once when no call is in flight, else in the next
/// batch.
pub(super) async fn decide(backend: &RedisBackend, hit: ScriptHit) -> Result<Decision, BackendError> {
    let batcher = &*backend.batcher;
    if !batcher.batching.is_on() {
        return backend.decide_one(&hit).await;
    }
    let (arrival, dispatch) = {
        let mut queue = batcher.queue.lock();
        if queue.in_flight == 0 && queue.waiting.is_empty() {
            queue.in_flight = 1;
            (Arrival::Direct(hit), false)
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
            (Arrival::Queued(receiver), queue.wants_dispatcher(batcher.batching.max_calls_in_flight))
        }
    };
    if dispatch {
        Dispatcher::start(backend);
    }
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
        let batcher = &self.0.batcher;
        let dispatch = {
            let mut queue = batcher.queue.lock();
            queue.in_flight -= 1;
            queue.wants_dispatcher(batcher.batching.max_calls_in_flight)
        };
        if dispatch {
            Dispatcher::start(self.0);
        }
    }
}

/// A task that holds one call slot and sends the queue as batches: it yields once
/// first, so that callers woken a moment ago (by the answers of another batch) queue
/// and join, then takes the queue and sends it; while decisions queued meanwhile
/// and no other dispatcher is scheduled, it goes on with them.
struct Dispatcher {
    backend: RedisBackend,
    /// Whether its task ever ran.
    started: bool,
    /// Whether it is the scheduled dispatcher (`Queue::dispatching`).
    scheduled: bool,
}

impl Dispatcher {
    /// Starts a dispatcher in the slot `Queue::wants_dispatcher` reserved.
    fn start(backend: &RedisBackend) {
        let dispatcher = Dispatcher { backend: backend.clone(), started: false, scheduled: true };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(dispatcher.run())),
            Err(_) => drop(dispatcher), // never runs: see the drop
        }
    }

    async fn run(mut self) {
        self.started = true;
        loop {
            tokio::task::yield_now().await;
            let batch = {
                let batcher = &self.backend.batcher;
                let mut queue = batcher.queue.lock();
                let batch = batcher.take_batch(&mut queue);
                queue.dispatching = false;
                self.scheduled = false;
                // More than one batch waits: another slot takes the rest.
                if queue.wants_dispatcher(batcher.batching.max_calls_in_flight) {
                    drop(queue);
                    Dispatcher::start(&self.backend);
                }
                batch
            };
            if batch.is_empty() {
                return;
            }
            send(&self.backend, batch).await;
            let mut queue = self.backend.batcher.queue.lock();
            if queue.waiting.is_empty() || queue.dispatching {
                return;
            }
            queue.dispatching = true;
            self.scheduled = true;
        }
    }
}

impl Drop for Dispatcher {
    /// Frees the slot. A dispatcher that never ran (no runtime, or one shutting down
    /// that refused the task) means nothing will ever send the queue: every waiting
    /// decision fails now (their receivers see the senders go).
    fn drop(&mut self) {
        let batcher = &self.backend.batcher;
        let dispatch = {
            let mut queue = batcher.queue.lock();
            if self.scheduled {
                queue.dispatching = false;
            }
            queue.in_flight -= 1;
            if !self.started {
                queue.waiting.clear();
            }
            queue.wants_dispatcher(batcher.batching.max_calls_in_flight)
        };
        if dispatch {
            Dispatcher::start(&self.backend);
        }
    }
}

/// Sends one batch and answers each caller; gives up on the call once every caller
/// has (so a Redis that never answers does not hold the slot forever).
async fn send(backend: &RedisBackend, batch: Vec<Waiting>) {
    let (hits, mut replies): (Vec<ScriptHit>, Vec<_>) = batch.into_iter().map(|w| (w.hit, w.reply)).unzip();
    let decided = {
        let call = pin!(backend.decide_batch(&hits));
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
        // Each distinct strategy and rate ("plan") is sent once; a hit names its plan.
        let mut plans: Vec<(i64, u64, u64, Option<u64>)> = Vec::new();
        let mut plan_of = Vec::with_capacity(indices.len());
        for &index in indices {
            let hit = &hits[index];
            let plan = (hit.scripted.tag, hit.limit, hit.period_ms, hit.scripted.param);
            let position = plans.iter().position(|p| *p == plan).unwrap_or_else(|| {
                plans.push(plan);
                plans.len() - 1
            });
            plan_of.push(position + 1);
        }
        let mut invocation = scripts::BATCH.prepare_invoke();
        invocation.arg(self.now_arg()).arg(self.grace_ms()).arg(indices.len()).arg(plans.len());
        for &(tag, limit, period_ms, param) in &plans {
            invocation.arg(tag).arg(limit).arg(period_ms);
            match param {
                Some(param) => invocation.arg(param),
                None => invocation.arg(""),
            };
        }
        for (&index, plan) in indices.iter().zip(plan_of) {
            let hit = &hits[index];
            invocation.key(&hit.key);
            if hit.scripted.has_entries() {
                invocation.key(entries_key(&hit.key));
            }
            invocation.arg(plan).arg(hit.cost);
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
