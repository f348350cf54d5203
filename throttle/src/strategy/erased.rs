//! [`DynStrategy`]: any [`Strategy`] behind a trait object, with its state as `dyn Any`.

use super::{Decision, Snapshot, Strategy};
use crate::Rate;
use core::any::Any;
use core::fmt::Debug;

/// Per-key state as a backend stores it, whatever the strategy.
pub type AnyState = Box<dyn Any + Send>;

/// A [`Strategy`] with its state type erased, so throttles and backends can hold any
/// strategy. Implemented for every `Strategy`; you never implement it yourself.
pub trait DynStrategy: Debug + Send + Sync + 'static {
    /// See [`Strategy::name`].
    fn name(&self) -> &'static str;
    /// See [`Strategy::capacity`].
    fn capacity(&self, rate: Rate) -> u64;
    /// A fresh state.
    fn new_state(&self) -> AnyState;
    /// Runs [`Strategy::decide`]; a state of the wrong type is replaced by a fresh one.
    /// Returns the decision and the time from which the state may be forgotten.
    fn decide_any(&self, state: &mut AnyState, now_ms: u64, rate: Rate, cost: u64) -> (Decision, u64);
    /// Runs [`Strategy::stat`]; `None` or a state of the wrong type reads as fresh.
    fn stat_any(&self, state: Option<&AnyState>, now_ms: u64, rate: Rate) -> Snapshot;
}

impl<S: Strategy> DynStrategy for S {
    fn name(&self) -> &'static str {
        Strategy::name(self)
    }

    fn capacity(&self, rate: Rate) -> u64 {
        Strategy::capacity(self, rate)
    }

    fn new_state(&self) -> AnyState {
        Box::new(S::State::default())
    }

    fn decide_any(&self, state: &mut AnyState, now_ms: u64, rate: Rate, cost: u64) -> (Decision, u64) {
        if let Some(typed) = state.downcast_mut::<S::State>() {
            let decision = self.decide(typed, now_ms, rate, cost);
            return (decision, self.expires_at(typed, rate));
        }
        let mut fresh = S::State::default();
        let decision = self.decide(&mut fresh, now_ms, rate, cost);
        let expires_at = self.expires_at(&fresh, rate);
        *state = Box::new(fresh);
        (decision, expires_at)
    }

    fn stat_any(&self, state: Option<&AnyState>, now_ms: u64, rate: Rate) -> Snapshot {
        match state.and_then(|s| s.downcast_ref::<S::State>()) {
            Some(typed) => self.stat(typed, now_ms, rate),
            None => self.stat(&S::State::default(), now_ms, rate),
        }
    }
}
