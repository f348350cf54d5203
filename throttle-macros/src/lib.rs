//! Implementation detail of the `throttle` crate: the `#[throttle]` attribute and the
//! `rate!` macro. Use them through `throttle` (`throttle::throttle`, `throttle::rate!`),
//! which documents them (with examples, tested there).
//!
//! The pipeline is `args` (syntax) → `validate` (every check, errors gathered) →
//! `expand` (code generation, infallible). Every rule shared with the runtime lives in
//! `throttle-grammar`.

mod args;
mod error;
mod expand;
mod item;
mod stacked;
mod validate;

use proc_macro::TokenStream;

/// The `throttle` macro; documented, with examples, at its re-export `throttle::throttle`.
#[proc_macro_attribute]
pub fn throttle(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::throttle(args.into(), item.into()).into()
}

/// The `rate` macro; documented, with examples, at its re-export `throttle::rate`.
#[proc_macro]
pub fn rate(input: TokenStream) -> TokenStream {
    expand::rate(input.into()).into()
}
