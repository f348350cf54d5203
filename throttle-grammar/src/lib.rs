//! The rules `throttle` and `throttle-macros` share, written once: the rate grammar,
//! the strategy-spec grammar with each strategy's parameters, uid and namespace rules,
//! the policy names, and the one "did you mean" rule. The macro checks input at compile
//! time with exactly the code the runtime uses, so nothing the macro accepts can fail
//! when a throttle is built.
//!
//! **Not public API**: use it through `throttle`. Versions are pinned exactly.
//!
//! ```
//! use throttle_grammar::rate::{ParsedRate, parse};
//!
//! assert_eq!(parse("100/min"), Ok(ParsedRate::Limited { limit: 100, period_ms: 60_000 }));
//! ```

pub mod names;
pub mod policy;
pub mod rate;
pub mod strategy;
pub mod suggest;

/// Tables of test vectors that the tests of both crates run, one per grammar.
#[doc(hidden)]
pub mod vectors {
    pub mod rate;
    pub mod strategy;
}

#[cfg(test)]
mod tests;
