//! Leaky bucket with a queue: admitted hits wait in a FIFO that drains at the rate.

use super::bucket;
use super::codec::tags;
use super::math::{ceil_div, field, sat, to_field};
use super::{Decision, Metadata, Snapshot, Strategy, degenerate, degenerate_stat};
use crate::Rate;
use std::collections::VecDeque;

/// A FIFO queue of admitted hits, holding at most `limit` cost, that drains from the
/// head at the rate ("10/s": one unit of cost every 100 ms; a hit leaves the queue
/// once all its cost has drained). A hit that would overflow the queue is rejected
/// and told exactly when enough will have drained.
///
/// It admits exactly what a [`LeakyBucket`](super::LeakyBucket) admits (the queue's
/// undrained cost is the bucket's level) and also knows which hits are still
/// queued, which its stat reports. Memory is one integer per queued hit, at most
/// `limit` per key. Unlike the reference library, there is no minimum wait and a
/// first hit above the limit is never admitted.
///
/// A refund gives back what the leaky bucket would (the hit's cost less what has
/// drained since the hit, at most what is queued), drained from the head: the hits
/// are not told apart, and the queue's total then stays the bucket's level.
///
/// State per key, worst case: in memory 56 bytes plus 8 per queued hit (the deque may
/// keep as much again in spare capacity); on Redis a string of 7 integers (at most
/// 119 bytes) plus a list of the queued hits' running totals beside it, 2 to 10 bytes
/// each. The queue's total, kept beside it, decides every hit in O(1) on both; an
/// admission drops the hits that have drained (each once, so O(1) amortised), and on
/// Redis reads O(log d) of them to find the new head (d: how many drained).
///
/// ```
/// use throttle::Rate;
/// use throttle::strategy::{LeakyBucketQueue, LeakyBucketQueueState, Metadata, Strategy};
///
/// let rate = Rate::per_second(10);
/// let mut state = LeakyBucketQueueState::default();
/// for cost in [2, 3, 5] {
///     assert!(LeakyBucketQueue.decide(&mut state, 0, rate, cost).allowed);
/// }
/// // 250 ms later 2.5 units have drained: the first hit has left the queue.
/// let stat = LeakyBucketQueue.stat(&state, 250, rate);
/// assert_eq!(
///     stat.metadata,
///     Metadata::LeakyBucketQueue { queue_len: 2, queue_cost: 8, capacity: 10, last_leak_ms: 0, level_units: 7_500 },
/// );
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeakyBucketQueue;

/// [`LeakyBucketQueue`]'s per-key state. The default is an empty queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeakyBucketQueueState {
    last_ms: u64,
    head_leaked: u64,
    queue: VecDeque<u64>,
    /// The cost of every queued hit, so admission never walks the queue.
    total: u64,
}

impl LeakyBucketQueueState {
    /// When the queue was last drained, ms since the epoch.
    pub fn last_ms(&self) -> u64 {
        self.last_ms
    }

    /// How much of the head hit had drained at [`last_ms`](Self::last_ms), in units
    /// of `1 / period_ms` of cost.
    pub fn head_leaked(&self) -> u64 {
        self.head_leaked
    }

    /// The cost of each queued hit at [`last_ms`](Self::last_ms), oldest (head) first.
    pub fn queue(&self) -> &VecDeque<u64> {
        &self.queue
    }

    /// How much of the head has drained, in units, never more than the head's cost
    /// (state written under another rate may say otherwise).
    fn head_drained(&self, unit: u128) -> u128 {
        let head = self.queue.front().map_or(0, |&c| u128::from(c) * unit);
        u128::from(self.head_leaked).min(head)
    }

    /// Undrained cost at `last_ms`, in units.
    fn level(&self, unit: u128) -> u128 {
        u128::from(self.total) * unit - self.head_drained(unit)
    }

    /// Drains `budget` units from the head, whole hits first.
    fn drain(&mut self, mut budget: u128, unit: u128) {
        while let Some(&head) = self.queue.front() {
            let drained = self.head_drained(unit);
            let left = u128::from(head) * unit - drained;
            if budget < left {
                self.head_leaked = sat(drained + budget);
                return;
            }
            budget -= left;
            self.queue.pop_front();
            self.total -= head;
            self.head_leaked = 0;
        }
        self.head_leaked = 0;
    }

    /// `(queue_len, undrained units)` at `now`, without draining.
    fn peek(&self, now_eff: u64, rate: Rate) -> (usize, u128) {
        let unit = bucket::unit(rate);
        let mut budget = u128::from(now_eff.saturating_sub(self.last_ms)) * u128::from(rate.limit());
        let mut head_leaked = self.head_drained(unit);
        let mut remaining_len = self.queue.len();
        let mut level = self.level(unit);
        for &cost in &self.queue {
            let left = u128::from(cost) * unit - head_leaked;
            if budget < left {
                level -= budget;
                return (remaining_len, level);
            }
            budget -= left;
            level -= left;
            remaining_len -= 1;
            head_leaked = 0;
        }
        (0, 0)
    }
}

fn admit_units(rate: Rate) -> u128 {
    u128::from(rate.limit()) * bucket::unit(rate)
}

impl Strategy for LeakyBucketQueue {
    type State = LeakyBucketQueueState;

    fn name(&self) -> &'static str {
        "leaky_bucket_queue"
    }

    fn decide(&self, state: &mut LeakyBucketQueueState, now_ms: u64, rate: Rate, cost: u64) -> Decision {
        if let Some(decision) = degenerate(rate) {
            return decision;
        }
        let unit = bucket::unit(rate);
        // The meter decides on the queue's undrained cost; the queue itself changes
        // only on admission.
        let level = sat(state.level(unit));
        let (mut last_ms, mut after) = (state.last_ms, level);
        let decision = bucket::decide(&mut last_ms, &mut after, now_ms, rate, cost, admit_units(rate));
        if decision.allowed {
            let drained = bucket::read(state.last_ms, level, now_ms, rate);
            state.drain(u128::from(level) - drained.level, unit);
            state.last_ms = last_ms;
            state.queue.push_back(cost);
            state.total = state.total.saturating_add(cost);
        }
        decision
    }

    fn stat(&self, state: &LeakyBucketQueueState, now_ms: u64, rate: Rate) -> Snapshot {
        if let Some(snapshot) = degenerate_stat(rate) {
            return snapshot;
        }
        let unit = bucket::unit(rate);
        let view = bucket::view(state.last_ms, sat(state.level(unit)), now_ms, rate, admit_units(rate));
        let (queue_len, level) = state.peek(now_ms.max(state.last_ms), rate);
        Snapshot {
            remaining: view.remaining,
            wait_ms: view.wait_ms,
            reset_ms: view.reset_ms,
            metadata: Metadata::LeakyBucketQueue {
                queue_len: queue_len as u64,
                queue_cost: sat(ceil_div(level, unit)),
                capacity: rate.limit(),
                last_leak_ms: state.last_ms,
                level_units: sat(view.reading.level),
            },
        }
    }

    /// What the hit still holds, as the [`LeakyBucket`](super::LeakyBucket) gives back
    /// (its cost less what has drained since `since_ms`, at most the level), drained
    /// from the head: a queued hit cannot be told from the others, and the queue's
    /// undrained cost, which decides every hit, is then the bucket's.
    fn refund(&self, state: &mut LeakyBucketQueueState, now_ms: u64, rate: Rate, cost: u64, since_ms: u64) -> bool {
        if degenerate(rate).is_some() {
            return false;
        }
        let unit = bucket::unit(rate);
        let level = sat(state.level(unit));
        let (mut last_ms, mut after) = (state.last_ms, level);
        if !bucket::refund(&mut last_ms, &mut after, now_ms, rate, cost, since_ms) {
            return false;
        }
        state.drain(u128::from(level) - u128::from(after), unit);
        state.last_ms = last_ms;
        true
    }

    fn expires_at(&self, state: &LeakyBucketQueueState, rate: Rate) -> u64 {
        bucket::empty_at(state.last_ms, sat(state.level(bucket::unit(rate))), rate)
    }

    /// `[7, last_ms, head_leaked, cost₁, cost₂, …]`, head first.
    fn encode(&self, state: &LeakyBucketQueueState) -> Option<Vec<i64>> {
        let mut fields = Vec::with_capacity(3 + state.queue.len());
        fields.extend([tags::LEAKY_BUCKET_QUEUE, to_field(state.last_ms), to_field(state.head_leaked)]);
        fields.extend(state.queue.iter().map(|&c| to_field(c)));
        Some(fields)
    }

    fn decode(&self, fields: &[i64]) -> Option<LeakyBucketQueueState> {
        if fields.first() != Some(&tags::LEAKY_BUCKET_QUEUE) {
            return None;
        }
        let queue = (3..fields.len()).map(|i| field(fields, i)).collect::<Option<VecDeque<u64>>>()?;
        let total = queue.iter().try_fold(0u64, |sum, &c| sum.checked_add(c))?;
        Some(LeakyBucketQueueState { last_ms: field(fields, 1)?, head_leaked: field(fields, 2)?, queue, total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{LeakyBucket, LeakyBucketState, NEVER};

    const RATE: Rate = Rate::per_second(10);

    fn queue_meta(state: &LeakyBucketQueueState, now: u64) -> (u64, u64) {
        match LeakyBucketQueue.stat(state, now, RATE).metadata {
            Metadata::LeakyBucketQueue { queue_len, queue_cost, .. } => (queue_len, queue_cost),
            other => panic!("unexpected metadata {other:?}"),
        }
    }

    #[test]
    fn the_queue_fills_then_drains_in_order() {
        let mut state = LeakyBucketQueueState::default();
        for cost in [4, 4, 2] {
            assert!(LeakyBucketQueue.decide(&mut state, 1_000, RATE, cost).allowed);
        }
        let full = LeakyBucketQueue.decide(&mut state, 1_000, RATE, 1);
        assert_eq!((full.allowed, full.remaining, full.wait_ms), (false, 0, 100));
        assert_eq!(queue_meta(&state, 1_000), (3, 10));
        assert_eq!(queue_meta(&state, 1_399), (3, 7), "the head has 0.01 left");
        assert_eq!(queue_meta(&state, 1_400), (2, 6));
        assert_eq!(queue_meta(&state, 1_850), (1, 2));
        assert_eq!(queue_meta(&state, 2_000), (0, 0));
        // Admission at 1 450 drains for real: the head is gone, 0.5 of the next drained.
        assert!(LeakyBucketQueue.decide(&mut state, 1_450, RATE, 4).allowed);
        assert_eq!(state.queue, [4, 2, 4]);
        assert_eq!(state.head_leaked, 500);
        assert_eq!(queue_meta(&state, 1_450), (3, 10));
    }

    #[test]
    fn admits_exactly_what_the_leaky_bucket_admits() {
        let (mut queue, mut bucket) = (LeakyBucketQueueState::default(), LeakyBucketState::default());
        let hits = [(0, 3), (0, 7), (10, 1), (120, 2), (130, 1), (300, 5), (301, 1), (2_000, 10), (2_050, 1)];
        for (now, cost) in hits {
            assert_eq!(
                LeakyBucketQueue.decide(&mut queue, now, RATE, cost),
                LeakyBucket.decide(&mut bucket, now, RATE, cost),
                "at {now} ms, cost {cost}"
            );
        }
    }

    #[test]
    fn oversized_costs_are_refused_and_corrupt_fields_read_as_fresh() {
        let mut state = LeakyBucketQueueState::default();
        assert_eq!(LeakyBucketQueue.decide(&mut state, 0, RATE, 11).wait_ms, NEVER);
        assert!(state.queue.is_empty());
        let state = LeakyBucketQueueState { last_ms: 5, head_leaked: 1, queue: [3, 4].into(), total: 7 };
        let encoded = LeakyBucketQueue.encode(&state);
        assert_eq!(encoded, Some(vec![7, 5, 1, 3, 4]));
        assert_eq!(LeakyBucketQueue.decode(&[7, 5, 1, 3, 4]), Some(state));
        assert_eq!(LeakyBucketQueue.decode(&[7, 5, 1, -3]), None);
        assert_eq!(LeakyBucketQueue.decode(&[7, 5]), None);
        // A head said to have leaked more than its cost (another rate's state) is harmless.
        let mut odd = LeakyBucketQueueState { last_ms: 0, head_leaked: 1_000_000, queue: [1].into(), total: 1 };
        assert!(LeakyBucketQueue.decide(&mut odd, 0, RATE, 10).allowed);
    }

    #[test]
    fn a_refund_drains_the_head_as_the_bucket_gives_back() {
        let (mut queue, mut bucket) = (LeakyBucketQueueState::default(), LeakyBucketState::default());
        for cost in [4, 4, 2] {
            assert!(LeakyBucketQueue.decide(&mut queue, 1_000, RATE, cost).allowed);
            assert!(LeakyBucket.decide(&mut bucket, 1_000, RATE, cost).allowed);
        }
        // The hit of 2 given back 50 ms later: 0.5 of it may have drained, 1.5 is left.
        assert!(LeakyBucketQueue.refund(&mut queue, 1_050, RATE, 2, 1_000));
        assert!(LeakyBucket.refund(&mut bucket, 1_050, RATE, 2, 1_000));
        assert_eq!(queue.queue, [4, 4, 2], "2 units of the head have drained");
        assert_eq!((queue.last_ms, queue.head_leaked), (1_050, 2_000));
        for (now, cost) in [(1_050, 3), (1_050, 1), (1_100, 1), (1_300, 3)] {
            assert_eq!(
                LeakyBucketQueue.decide(&mut queue, now, RATE, cost),
                LeakyBucket.decide(&mut bucket, now, RATE, cost),
                "at {now} ms, cost {cost}"
            );
        }
        // Nothing is left to give back once the hit could have drained.
        assert!(!LeakyBucketQueue.refund(&mut queue, 5_000, RATE, 2, 1_300));
    }
}
