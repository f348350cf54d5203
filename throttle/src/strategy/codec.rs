//! Strategy state as integers, for backends that keep it outside the process.
//!
//! A backend with a compare-and-set primitive runs any strategy that implements
//! [`Strategy::encode`](super::Strategy::encode) and
//! [`Strategy::decode`](super::Strategy::decode): read the stored fields, call
//! [`DynStrategy::decide_encoded`](super::DynStrategy::decide_encoded), and write the
//! new fields back only if the stored value is still the one read (retrying
//! otherwise). Stored text that does not parse, or fields a strategy does not
//! recognise, read as a fresh state, never as an error.
//!
//! Every field is an integer below 2^53, so a Lua script reads it exactly. The
//! canonical text form is the fields in decimal joined by `,` ([`to_text`],
//! [`from_text`]).
//!
//! # Layouts of the built-in strategies
//!
//! The first field is a tag naming the layout, so state written by one strategy is
//! never read as another's. `P` is the rate's period in ms and `L` its limit; bucket
//! levels are in units of `1 / P` of a hit (one hit of cost `c` adds `c × P`, and `L`
//! units drain per millisecond), which keeps every step exact in integers.
//!
//! | strategy | fields |
//! |---|---|
//! | `fixed_window` | `1, window_start_ms, count` |
//! | `sliding_window_counter` | `2, window_start_ms, current_count, previous_count` |
//! | `sliding_window_log` | `3, ms₁, cost₁, ms₂, cost₂, …` (oldest first) |
//! | `token_bucket` | `4, last_ms, missing` (missing tokens × `P`; 0 = full) |
//! | `token_bucket_debt` | `5, last_ms, missing` (may exceed the burst × `P` by the debt) |
//! | `leaky_bucket` | `6, last_ms, level` (level × `P`) |
//! | `leaky_bucket_queue` | `7, last_ms, head_leaked, cost₁, cost₂, …` (head first; `head_leaked` in units) |
//! | `gcra` | `8, tat_ms, tat_rem` (TAT = `tat_ms + tat_rem / L`, `tat_rem < L`) |
//!
//! The Redis backend's scripts store these layouts too, except for the two whose
//! state grows with the limit: there the state key holds a header of 7 integers
//! (tag 9 for `sliding_window_log`, 10 for `leaky_bucket_queue`) and the entries sit in
//! a list beside it, so no call reads them all (see "Keys" in the documentation of
//! `RedisBackend`, `redis` feature). The codec layouts above remain the ones of
//! compare-and-set, which runs these two strategies when wrapped in a strategy of
//! your own, or at rates too large for the scripts. Each side reads the other's
//! layout as a fresh state.
//!
//! ```
//! use throttle::Rate;
//! use throttle::strategy::{DynStrategy, TokenBucket, codec};
//!
//! let strategy = TokenBucket::new();
//! let rate = Rate::per_second(10);
//! // Nothing stored yet: a fresh state.
//! let first = strategy.decide_encoded(None, 5_000, rate, 4).expect("built-ins have a codec");
//! assert!(first.decision.allowed);
//! assert_eq!(codec::to_text(&first.state), "4,5000,4000");
//! // Garbage reads as fresh state.
//! let fields = codec::from_text("not,a,state").unwrap_or_default();
//! let again = strategy.decide_encoded(Some(&fields), 5_000, rate, 10).unwrap();
//! assert!(again.decision.allowed);
//! ```

use super::Decision;

/// The tag of each layout above, and of the Redis backend's own two headers: written
/// here only. The strategies encode and decode with it, and the Redis backend hands
/// it to their Lua twins (as `TAG` and `HEADER_TAG`), which never spell a tag out.
pub(crate) mod tags {
    pub(crate) const FIXED_WINDOW: i64 = 1;
    pub(crate) const SLIDING_WINDOW_COUNTER: i64 = 2;
    pub(crate) const SLIDING_WINDOW_LOG: i64 = 3;
    pub(crate) const TOKEN_BUCKET: i64 = 4;
    pub(crate) const TOKEN_BUCKET_DEBT: i64 = 5;
    pub(crate) const LEAKY_BUCKET: i64 = 6;
    pub(crate) const LEAKY_BUCKET_QUEUE: i64 = 7;
    pub(crate) const GCRA: i64 = 8;
    /// The Redis sliding log's header (its entries in a list beside it).
    #[cfg(feature = "redis")]
    pub(crate) const SLIDING_WINDOW_LOG_HEADER: i64 = 9;
    /// The Redis queue's header (its entries in a list beside it).
    #[cfg(feature = "redis")]
    pub(crate) const LEAKY_BUCKET_QUEUE_HEADER: i64 = 10;
}

/// The outcome of [`DynStrategy::decide_encoded`](super::DynStrategy::decide_encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct EncodedDecision {
    /// The decision.
    pub decision: Decision,
    /// The state to store. When the hit was rejected it equals the stored state (or a
    /// fresh one's if that was unreadable), so the backend may skip the write.
    pub state: Vec<i64>,
    /// Time (ms since the epoch) from which the key may be forgotten.
    pub expires_at: u64,
}

/// Fields in their canonical text form: decimal integers joined by `,`.
///
/// ```
/// assert_eq!(throttle::strategy::codec::to_text(&[8, 1_700_000_000_000, 3]), "8,1700000000000,3");
/// ```
pub fn to_text(fields: &[i64]) -> String {
    let mut out = String::with_capacity(fields.len() * 8);
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&field.to_string());
    }
    out
}

/// Parses [`to_text`]'s form, leniently: whitespace around fields is ignored, and a
/// whole number a Lua script wrote in float notation (`1e+15`, `12.0`) is accepted.
/// `None` for anything else.
///
/// ```
/// use throttle::strategy::codec::from_text;
/// assert_eq!(from_text("4, 1e+15, 12.0"), Some(vec![4, 1_000_000_000_000_000, 12]));
/// assert_eq!(from_text("4,x"), None);
/// assert_eq!(from_text(""), Some(vec![]));
/// ```
pub fn from_text(text: &str) -> Option<Vec<i64>> {
    let text = text.trim();
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(parse_field).collect()
}

fn parse_field(field: &str) -> Option<i64> {
    let field = field.trim();
    if let Ok(v) = field.parse::<i64>() {
        return Some(v);
    }
    let v = field.parse::<f64>().ok()?;
    // Only whole numbers a double holds exactly.
    const LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    (v.is_finite() && v.fract() == 0.0 && v.abs() < LIMIT).then_some(v as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        for fields in [vec![], vec![0], vec![1, -2, 9_007_199_254_740_991]] {
            assert_eq!(from_text(&to_text(&fields)), Some(fields));
        }
    }

    #[test]
    fn text_refuses_what_is_not_a_whole_number() {
        for text in ["1,,2", "1.5", "nan", "inf", "1e400", "9007199254740993.0e3", "x", "1;2"] {
            assert_eq!(from_text(text), None, "{text:?}");
        }
    }
}
