//! Compile-time tests of `#[throttle]` and `rate!` (see `tests/ui.rs` and `README.md`).
//! This crate has no code of its own; its dependencies are what the cases compile
//! against.
