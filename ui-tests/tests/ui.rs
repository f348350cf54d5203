//! Compile-time behaviour of `#[throttle]` and `rate!`: every `pass/` case compiles
//! (and runs), every `fail/` case fails with exactly its `.stderr`.
//!
//! Bless after a deliberate change: `TRYBUILD=overwrite cargo test -p throttle-ui-tests`,
//! then review the `.stderr` diff like code. Run one case: append `-- ui trybuild=name.rs`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("pass/*.rs");
    cases.compile_fail("fail/*/*.rs");
}
