//! Support for the code `#[throttle]` and `rate!` generate.
//!
//! **Not public API.** Everything here may change in any release, in step with
//! `throttle-macros`, which `throttle` pins to its exact version. The items that
//! appear in user code live in [`crate::attribute`].

mod builder_steps;
mod guard;

pub use builder_steps::{
    CostArg, builder, cost, count_all, count_failures, count_successes, headers, headers_always, headers_throttled,
    rate, scope, strategy, unbuilt,
};
pub use guard::{Guard, Site, respond, settle, with_headers};
