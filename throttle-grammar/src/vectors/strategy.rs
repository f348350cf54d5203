//! Test vectors for the strategy-spec grammar, run by the runtime crate's tests (which
//! also build each valid spec) and the macro crate's tests (which accept each valid spec
//! as `strategy = "..."` and refuse each invalid one).

/// A valid spec: (input, strategy name, parameters).
pub type Valid = (&'static str, &'static str, &'static [(&'static str, u64)]);

/// Valid specs.
pub const VALID: &[Valid] = &[
    ("fixed_window", "fixed_window", &[]),
    ("  gcra( ) ", "gcra", &[]),
    ("gcra()", "gcra", &[]),
    ("token_bucket(burst=15)", "token_bucket", &[("burst", 15)]),
    ("token_bucket(burst = 1_000,)", "token_bucket", &[("burst", 1_000)]),
    (" token_bucket_debt(burst = 2, max_debt = 0,) ", "token_bucket_debt", &[("burst", 2), ("max_debt", 0)]),
    ("token_bucket_debt(max_debt = 5)", "token_bucket_debt", &[("max_debt", 5)]),
    ("gcra(burst = 9007199254740991)", "gcra", &[("burst", 9_007_199_254_740_991)]),
    ("leaky_bucket_queue", "leaky_bucket_queue", &[]),
];

/// Invalid specs: (input, a fragment the error message must contain).
pub const INVALID: &[(&str, &str)] = &[
    ("", "missing the strategy name"),
    ("(burst = 1)", "missing the strategy name"),
    ("sliding_window", "(did you mean `sliding_window_counter`?)"),
    ("token-bucket", "(did you mean `token_bucket`?)"),
    ("Leaky-Bucket-With-Queue", "(did you mean `leaky_bucket_queue`?)"),
    ("gcra(tolerance = 5)", "has no parameter `tolerance`; expected `burst`"),
    ("gcra(brust = 5)", "(did you mean `burst`?)"),
    ("leaky_bucket(burst = 5)", "it takes no parameters"),
    ("gcra(burst = 1, burst = 2)", "given twice"),
    ("gcra(burst = -1)", "expected a whole number"),
    ("gcra(burst = many)", "expected a whole number"),
    ("token_bucket(burst = 0)", "`burst` must be at least 1"),
    ("gcra(burst = 9007199254740992)", "above the maximum"),
    ("gcra(burst = 99999999999999999999999)", "above the maximum"),
    ("gcra(burst = 5", "missing the closing `)`"),
    ("gcra(burst)", "expected `param = value`"),
    ("gcra(,)", "expected `param = value`"),
    ("gcra( = 5)", "expected `param = value`"),
];
