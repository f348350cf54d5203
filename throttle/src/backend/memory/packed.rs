//! The built-in two-integer states, packed with their key's digest into 28 bytes.
//!
//! Fixed window, token buckets, leaky bucket and GCRA each keep a time `t` (ms since
//! the epoch) and a value `v`. A table entry holds the key's 128-bit digest, `t` in 44
//! bits (until the year 2527), `v` in 32 bits, which state type they belong to, and an
//! upper bound of the state's expiry as `t` plus a 16-bit float (10-bit mantissa,
//! rounded up: sweeps may keep a dead state up to 0.2 % of its lifetime longer, never
//! drop a live one). A state that does not fit is kept boxed instead (see `Boxed`).

use crate::strategy::{Builtin, FixedWindowState, GcraState, LeakyBucketState, Strategy, TokenBucketState};

/// A key's 128-bit keyed digest, as four words so an entry packs to 28 bytes.
pub(super) type Digest = [u32; 4];

/// One key with a packed state: 28 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Packed {
    pub(super) id: Digest,
    /// `t` (bits 0..44), the expiry code (44..60), the state's tag (60..64).
    head: [u32; 2],
    value: u32,
}

const T_BITS: u32 = 44;
const CODE_BITS: u32 = 16;
const T_MASK: u64 = (1 << T_BITS) - 1;
/// The expiry code of a state that never expires.
const NEVER: u64 = (1 << CODE_BITS) - 1;
const MANTISSA_BITS: u32 = 10;

/// A state the table can pack: a time and a value, and a tag naming its type, so the
/// state of one type never reads as another's.
pub(super) trait Pair: Default {
    const TAG: u64;
    fn to_pair(&self) -> (u64, u64);
    fn from_pair(t: u64, v: u64) -> Self;
}

impl Pair for FixedWindowState {
    const TAG: u64 = 1;
    fn to_pair(&self) -> (u64, u64) {
        (self.window_start_ms, self.count)
    }
    fn from_pair(window_start_ms: u64, count: u64) -> Self {
        FixedWindowState { window_start_ms, count }
    }
}

impl Pair for TokenBucketState {
    const TAG: u64 = 2;
    fn to_pair(&self) -> (u64, u64) {
        (self.last_ms, self.missing)
    }
    fn from_pair(last_ms: u64, missing: u64) -> Self {
        TokenBucketState { last_ms, missing }
    }
}

impl Pair for LeakyBucketState {
    const TAG: u64 = 3;
    fn to_pair(&self) -> (u64, u64) {
        (self.last_ms, self.level)
    }
    fn from_pair(last_ms: u64, level: u64) -> Self {
        LeakyBucketState { last_ms, level }
    }
}

impl Pair for GcraState {
    const TAG: u64 = 4;
    fn to_pair(&self) -> (u64, u64) {
        (self.tat_ms, self.tat_rem)
    }
    fn from_pair(tat_ms: u64, tat_rem: u64) -> Self {
        GcraState { tat_ms, tat_rem }
    }
}

impl Packed {
    /// `state` under `id`, or `None` when it does not fit.
    #[inline]
    pub(super) fn pack<P: Pair>(id: Digest, state: &P, expires_at: u64) -> Option<Packed> {
        let (t, v) = state.to_pair();
        if t > T_MASK {
            return None;
        }
        let value = u32::try_from(v).ok()?;
        let code = if expires_at == u64::MAX { NEVER } else { encode_up(expires_at.saturating_sub(t)) };
        let head = t | code << T_BITS | P::TAG << (T_BITS + CODE_BITS);
        Some(Packed { id, head: [head as u32, (head >> 32) as u32], value })
    }

    #[inline]
    fn head(&self) -> u64 {
        u64::from(self.head[0]) | u64::from(self.head[1]) << 32
    }

    /// The state, if it is of type `P`.
    #[inline]
    pub(super) fn state<P: Pair>(&self) -> Option<P> {
        let head = self.head();
        (head >> (T_BITS + CODE_BITS) == P::TAG).then(|| P::from_pair(head & T_MASK, u64::from(self.value)))
    }

    /// A time from which the state is surely equivalent to a fresh one.
    pub(super) fn expires_at(&self) -> u64 {
        let head = self.head();
        match (head >> T_BITS) & NEVER {
            NEVER => u64::MAX,
            code => (head & T_MASK).saturating_add(decode(code)),
        }
    }
}

/// `d` rounded up to `m × 2^e` with a 10-bit `m`, as `e << 10 | m`; never [`NEVER`].
#[inline]
fn encode_up(d: u64) -> u64 {
    let e = (u64::BITS - d.leading_zeros()).saturating_sub(MANTISSA_BITS);
    // `d / 2^e` rounded up, with shifts (this runs on every hit).
    let m = (d >> e) + u64::from(d & ((1 << e) - 1) != 0);
    // Rounding up can carry into an 11th bit: one more exponent step.
    let (e, m) = if m >> MANTISSA_BITS != 0 { (e + 1, m.div_ceil(2)) } else { (e, m) };
    u64::from(e) << MANTISSA_BITS | m
}

fn decode(code: u64) -> u64 {
    let (e, m) = (code >> MANTISSA_BITS, code & ((1 << MANTISSA_BITS) - 1));
    m.checked_shl(e as u32).filter(|x| x >> e == m).unwrap_or(u64::MAX)
}

/// What a table does with one packed strategy, written once for every state type.
pub(super) trait PackedOp {
    type Output;
    fn run<S: Strategy>(self, strategy: &S) -> Self::Output
    where
        S::State: Pair;
}

/// Runs `op` with the concrete strategy: its decision is a direct call.
pub(super) fn apply<O: PackedOp>(builtin: Builtin<'_>, op: O) -> O::Output {
    match builtin {
        Builtin::FixedWindow(s) => op.run(s),
        Builtin::TokenBucket(s) => op.run(s),
        Builtin::TokenBucketDebt(s) => op.run(s),
        Builtin::LeakyBucket(s) => op.run(s),
        Builtin::Gcra(s) => op.run(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entries_are_28_bytes() {
        assert_eq!(size_of::<Packed>(), 28);
    }

    #[test]
    fn states_round_trip_with_their_tag_only() {
        let state = FixedWindowState { window_start_ms: 1_700_000_040_000, count: 7 };
        let packed = Packed::pack([1, 2, 3, 4], &state, 1_700_000_100_000).unwrap();
        assert_eq!(packed.state::<FixedWindowState>(), Some(state));
        assert_eq!(packed.state::<GcraState>(), None);
        assert_eq!(packed.state::<TokenBucketState>(), None);
        // 60 000 ms rounds up to 938 × 64.
        assert_eq!(packed.expires_at(), 1_700_000_040_000 + 60_032);
    }

    #[test]
    fn what_does_not_fit_is_refused() {
        let big_count = FixedWindowState { window_start_ms: 0, count: 1 << 32 };
        assert_eq!(Packed::pack([0; 4], &big_count, 10), None);
        let far_future = FixedWindowState { window_start_ms: 1 << 44, count: 1 };
        assert_eq!(Packed::pack([0; 4], &far_future, u64::MAX), None);
        let never = Packed::pack([0; 4], &GcraState { tat_ms: 5, tat_rem: 0 }, u64::MAX).unwrap();
        assert_eq!(never.expires_at(), u64::MAX);
    }

    proptest! {
        /// The stored expiry is never before the real one, and at most 0.2 % later.
        #[test]
        fn expiry_is_a_tight_upper_bound(t in 0u64..(1 << 44), d in any::<u64>()) {
            let expires_at = t.saturating_add(d);
            prop_assume!(expires_at != u64::MAX);
            let packed = Packed::pack([0; 4], &FixedWindowState { window_start_ms: t, count: 0 }, expires_at).unwrap();
            let stored = packed.expires_at();
            prop_assert!(stored >= expires_at, "{stored} < {expires_at}");
            prop_assert!(stored - expires_at <= d / 512 + 1, "{stored} - {expires_at} for {d}");
        }
    }
}
