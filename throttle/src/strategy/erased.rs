//! [`DynStrategy`]: any [`Strategy`] behind a trait object, with its state as `dyn Any`.

use super::{
    Decision, EncodedDecision, FixedWindow, Gcra, LeakyBucket, Snapshot, Strategy, TokenBucket, TokenBucketDebt,
};
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
    /// A copy of `state`, to put a key back as it was; `None` for a state of the
    /// wrong type.
    fn clone_state(&self, state: &AnyState) -> Option<AnyState>;
    /// Whether the strategy implements [`Strategy::encode`], so backends that store
    /// state outside the process can run it.
    fn has_codec(&self) -> bool;
    /// Runs [`Strategy::encode`]; `None` without a codec or for a state of the wrong type.
    fn encode_any(&self, state: &AnyState) -> Option<Vec<i64>>;
    /// Runs [`Strategy::decode`]; `None` without a codec or for unreadable fields.
    fn decode_any(&self, fields: &[i64]) -> Option<AnyState>;
    /// The compare-and-set step of an external backend: decodes `stored` (absent or
    /// unreadable fields read as fresh state), decides, and encodes the new state.
    /// `None` when the strategy has no codec. See [`codec`](super::codec).
    fn decide_encoded(&self, stored: Option<&[i64]>, now_ms: u64, rate: Rate, cost: u64) -> Option<EncodedDecision>;
    /// Runs [`Strategy::stat`] on stored fields (absent or unreadable ones read as fresh).
    fn stat_encoded(&self, stored: Option<&[i64]>, now_ms: u64, rate: Rate) -> Snapshot;
    /// Runs [`Strategy::refund`]; `Some(expires_at)` when something was given back
    /// (nothing is, for a state of the wrong type).
    fn refund_any(&self, state: &mut AnyState, now_ms: u64, rate: Rate, cost: u64, since_ms: u64) -> Option<u64>;
    /// The compare-and-set step of a refund on an external backend: decodes `stored`,
    /// runs [`Strategy::refund`] and encodes the new state with its expiry; `None` when
    /// nothing was given back (or there is no state, or no codec).
    fn refund_encoded(
        &self,
        stored: Option<&[i64]>,
        now_ms: u64,
        rate: Rate,
        cost: u64,
        since_ms: u64,
    ) -> Option<(Vec<i64>, u64)>;
    /// The strategy itself as [`Any`], so a backend can recognise a built-in strategy by
    /// its type (never by its name, which any strategy may share) and read its
    /// parameters through the type's accessors. The Redis backend runs the built-ins
    /// as Lua scripts this way, and any other strategy through its compare-and-set path.
    ///
    /// ```
    /// use throttle::strategy::{DynStrategy, Gcra, from_name};
    ///
    /// let strategy = from_name("gcra(burst = 5)")?;
    /// let gcra = strategy.as_any().downcast_ref::<Gcra>().expect("the built-in GCRA");
    /// assert_eq!(gcra.burst(), Some(5));
    /// # Ok::<(), throttle::strategy::ParseStrategyError>(())
    /// ```
    fn as_any(&self) -> &dyn Any;

    /// The built-in strategy this is, found by its type in one call: the in-memory
    /// backend packs their states. Not public API.
    #[doc(hidden)]
    fn builtin(&self) -> Option<Builtin<'_>> {
        None
    }
}

/// A built-in strategy whose state is two integers. Not public API.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Builtin<'s> {
    FixedWindow(&'s FixedWindow),
    TokenBucket(&'s TokenBucket),
    TokenBucketDebt(&'s TokenBucketDebt),
    LeakyBucket(&'s LeakyBucket),
    Gcra(&'s Gcra),
}

impl<'s> Builtin<'s> {
    /// Resolved when `S` is known, so it compiles to a constant per strategy type.
    fn of<S: 'static>(strategy: &'s S) -> Option<Self> {
        let any: &dyn Any = strategy;
        if let Some(s) = any.downcast_ref() {
            Some(Builtin::FixedWindow(s))
        } else if let Some(s) = any.downcast_ref() {
            Some(Builtin::TokenBucket(s))
        } else if let Some(s) = any.downcast_ref() {
            Some(Builtin::TokenBucketDebt(s))
        } else if let Some(s) = any.downcast_ref() {
            Some(Builtin::LeakyBucket(s))
        } else {
            any.downcast_ref().map(Builtin::Gcra)
        }
    }
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

    fn clone_state(&self, state: &AnyState) -> Option<AnyState> {
        state.downcast_ref::<S::State>().map(|typed| Box::new(typed.clone()) as AnyState)
    }

    fn has_codec(&self) -> bool {
        self.encode(&S::State::default()).is_some()
    }

    fn encode_any(&self, state: &AnyState) -> Option<Vec<i64>> {
        self.encode(state.downcast_ref::<S::State>()?)
    }

    fn decode_any(&self, fields: &[i64]) -> Option<AnyState> {
        self.decode(fields).map(|state| Box::new(state) as AnyState)
    }

    fn decide_encoded(&self, stored: Option<&[i64]>, now_ms: u64, rate: Rate, cost: u64) -> Option<EncodedDecision> {
        let mut state = stored.and_then(|fields| self.decode(fields)).unwrap_or_default();
        let decision = self.decide(&mut state, now_ms, rate, cost);
        let expires_at = self.expires_at(&state, rate);
        let state = self.encode(&state)?;
        Some(EncodedDecision { decision, state, expires_at })
    }

    fn stat_encoded(&self, stored: Option<&[i64]>, now_ms: u64, rate: Rate) -> Snapshot {
        let state = stored.and_then(|fields| self.decode(fields)).unwrap_or_default();
        self.stat(&state, now_ms, rate)
    }

    fn refund_any(&self, state: &mut AnyState, now_ms: u64, rate: Rate, cost: u64, since_ms: u64) -> Option<u64> {
        let typed = state.downcast_mut::<S::State>()?;
        self.refund(typed, now_ms, rate, cost, since_ms).then(|| self.expires_at(typed, rate))
    }

    fn refund_encoded(
        &self,
        stored: Option<&[i64]>,
        now_ms: u64,
        rate: Rate,
        cost: u64,
        since_ms: u64,
    ) -> Option<(Vec<i64>, u64)> {
        let mut state = self.decode(stored?)?;
        if !self.refund(&mut state, now_ms, rate, cost, since_ms) {
            return None;
        }
        Some((self.encode(&state)?, self.expires_at(&state, rate)))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn builtin(&self) -> Option<Builtin<'_>> {
        Builtin::of(self)
    }
}
