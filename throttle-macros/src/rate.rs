//! The rate grammar, compiled from the runtime crate's own source file so the macro and
//! `Rate::from_str` can never disagree.

// Formatted (and linted) as part of the `throttle` crate, which owns it.
#[path = "../../throttle/src/rate/grammar.rs"]
#[allow(dead_code, unreachable_pub, clippy::all)]
#[rustfmt::skip]
mod grammar;

pub(crate) use grammar::{MAX_VALUE, ParsedRate, edit_distance, parse};

#[cfg(test)]
#[path = "../../throttle/src/rate/vectors.rs"]
#[rustfmt::skip]
mod vectors;

#[cfg(test)]
mod tests {
    use super::vectors;
    use super::{ParsedRate, parse};

    #[test]
    fn accepts_every_valid_vector() {
        for (input, limit, period_ms) in vectors::VALID {
            let expected = match (limit, period_ms) {
                (0, 0) => ParsedRate::Unlimited,
                (limit, period_ms) => ParsedRate::Limited { limit: *limit, period_ms: *period_ms },
            };
            assert_eq!(parse(input), Ok(expected), "{input:?}");
        }
    }

    #[test]
    fn refuses_every_invalid_vector_with_its_message() {
        for (input, fragment) in vectors::INVALID {
            let message = parse(input).expect_err(input).to_string();
            assert!(message.contains(fragment), "{input:?}: {message:?} lacks {fragment:?}");
        }
    }
}
