use crate::rate::{ParsedRate, parse};
use crate::{strategy, vectors};

#[test]
fn every_valid_rate_vector_parses() {
    for (input, limit, period_ms) in vectors::rate::VALID {
        let expected = match (limit, period_ms) {
            (0, 0) => ParsedRate::Unlimited,
            (limit, period_ms) => ParsedRate::Limited { limit: *limit, period_ms: *period_ms },
        };
        assert_eq!(parse(input), Ok(expected), "{input:?}");
    }
}

#[test]
fn every_invalid_rate_vector_is_refused_with_its_message() {
    for (input, fragment) in vectors::rate::INVALID {
        let message = parse(input).expect_err(input).to_string();
        assert!(message.contains(fragment), "{input:?}: {message:?} lacks {fragment:?}");
    }
}

#[test]
fn every_valid_strategy_vector_parses() {
    for (input, name, params) in vectors::strategy::VALID {
        let spec = strategy::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!((spec.strategy().name, spec.params.as_slice()), (*name, *params), "{input:?}");
    }
}

#[test]
fn every_invalid_strategy_vector_is_refused_with_its_message() {
    for (input, fragment) in vectors::strategy::INVALID {
        let message = strategy::parse(input).expect_err(input).to_string();
        assert!(message.contains(fragment), "{input:?}: {message:?} lacks {fragment:?}");
    }
}
