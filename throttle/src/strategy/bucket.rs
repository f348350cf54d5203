//! The meter shared by the token and leaky buckets: a level that drains at a
//! constant rate, in integer units.
//!
//! One unit is `1 / period_ms` of a hit: a hit of cost `c` adds `c × P` units and the
//! level drains `L` units per millisecond, so "`L` per `P` ms" needs no fractions.
//! A token bucket's "missing tokens" and a leaky bucket's level are the same number;
//! the bucket admits a hit while the level after it stays within `admit` units.

use super::math::{ceil_div, div, sat};
use super::{Decision, never};
use crate::Rate;

/// A meter read at some `now`.
pub(super) struct Reading {
    /// The level at `now_eff`, in units.
    pub(super) level: u128,
    /// `max(now, last_ms)`: a clock behind the state reads the state as of `last_ms`.
    pub(super) now_eff: u64,
    /// `now_eff - now`, added to every wait so it is measured from the caller's `now`.
    pub(super) shift: u64,
}

/// Reads the level stored as `level` at `last_ms` at time `now`.
///
/// The drain is computed as `elapsed × L` only while `elapsed` is shorter than the
/// time to empty, so the product stays below `level + L` (exact in Lua doubles).
pub(super) fn read(last_ms: u64, level: u64, now_ms: u64, rate: Rate) -> Reading {
    let limit = u128::from(rate.limit());
    let now_eff = now_ms.max(last_ms);
    let elapsed = u128::from(now_eff - last_ms);
    let level = u128::from(level);
    let empty_after = ceil_div(level, limit);
    let level = if elapsed >= empty_after { 0 } else { level - elapsed * limit };
    Reading { level, now_eff, shift: now_eff - now_ms }
}

/// Units per hit of cost 1.
pub(super) fn unit(rate: Rate) -> u128 {
    u128::from(rate.period_ms())
}

/// Hits of cost 1 that fit between `level` and `admit_units`, at most the limit. GCRA
/// is the same meter (its level is how far the TAT runs ahead), so it uses this too.
pub(super) fn remaining(level: u128, admit_units: u128, rate: Rate) -> u64 {
    sat(div(admit_units.saturating_sub(level), unit(rate)).min(u128::from(rate.limit())))
}

/// Decides a hit of `cost` against a meter that admits while the level stays within
/// `admit_units`. On admission `last_ms` and `level` move to the new reading; on
/// rejection they are untouched.
pub(super) fn decide(
    last_ms: &mut u64,
    level: &mut u64,
    now_ms: u64,
    rate: Rate,
    cost: u64,
    admit_units: u128,
) -> Decision {
    let r = read(*last_ms, *level, now_ms, rate);
    let limit = u128::from(rate.limit());
    let unit = unit(rate);
    let remaining = |level: u128| remaining(level, admit_units, rate);
    let cost_units = u128::from(cost) * unit;
    if cost_units > admit_units {
        return never(remaining(r.level), r.shift.saturating_add(sat(ceil_div(r.level, limit))));
    }
    let after = r.level + cost_units;
    if after > admit_units {
        return Decision {
            allowed: false,
            remaining: remaining(r.level),
            wait_ms: r.shift.saturating_add(sat(ceil_div(after - admit_units, limit))),
            reset_ms: r.shift.saturating_add(sat(ceil_div(r.level, limit))),
        };
    }
    *last_ms = r.now_eff;
    *level = sat(after);
    Decision {
        allowed: true,
        remaining: remaining(after),
        wait_ms: 0,
        reset_ms: r.shift.saturating_add(sat(ceil_div(after, limit))),
    }
}

/// Gives back a hit of `cost` admitted at some moment in `[since_ms, now_ms]`: its
/// units less what has drained since `since_ms`, at most the level. Removing a hit
/// from a meter lowers every later level by its units at most, and by less only where
/// the meter would have run empty without it, which takes at least the drain since
/// the hit: so this never gives back more than the hit still holds.
pub(super) fn refund(last_ms: &mut u64, level: &mut u64, now_ms: u64, rate: Rate, cost: u64, since_ms: u64) -> bool {
    let r = read(*last_ms, *level, now_ms, rate);
    let drained = u128::from(now_ms.saturating_sub(since_ms)) * u128::from(rate.limit());
    let give = (u128::from(cost) * unit(rate)).saturating_sub(drained).min(r.level);
    if give == 0 {
        return false;
    }
    *last_ms = r.now_eff;
    *level = sat(r.level - give);
    true
}

/// A meter seen at `now` without consuming anything.
pub(super) struct View {
    /// The level now.
    pub(super) reading: Reading,
    /// Hits of cost 1 admitted now, at most the limit.
    pub(super) remaining: u64,
    /// Wait for a hit of cost 1.
    pub(super) wait_ms: u64,
    /// Time until the meter is empty.
    pub(super) reset_ms: u64,
}

/// Reads a meter at `now`, consuming nothing.
pub(super) fn view(last_ms: u64, level: u64, now_ms: u64, rate: Rate, admit_units: u128) -> View {
    let r = read(last_ms, level, now_ms, rate);
    let limit = u128::from(rate.limit());
    let unit = unit(rate);
    let remaining = remaining(r.level, admit_units, rate);
    let after = r.level + unit;
    let wait_ms =
        if after <= admit_units { 0 } else { r.shift.saturating_add(sat(ceil_div(after - admit_units, limit))) };
    let reset_ms = r.shift.saturating_add(sat(ceil_div(r.level, limit)));
    View { reading: r, remaining, wait_ms, reset_ms }
}

/// Time from which a meter stored at `last_ms` with `level` is empty.
pub(super) fn empty_at(last_ms: u64, level: u64, rate: Rate) -> u64 {
    match rate.limit() {
        0 => last_ms,
        limit => last_ms.saturating_add(sat(ceil_div(u128::from(level), u128::from(limit)))),
    }
}
