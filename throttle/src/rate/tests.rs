use super::*;
use core::time::Duration;
use proptest::prelude::*;

use throttle_grammar::vectors::rate as vectors;

#[test]
fn every_valid_vector_parses_to_its_limit_and_period() {
    for (input, limit, period_ms) in vectors::VALID {
        let rate: Rate = input.parse().unwrap_or_else(|e| panic!("{input:?} should parse: {e}"));
        assert_eq!((rate.limit(), rate.period_ms()), (*limit, *period_ms), "{input:?}");
    }
}

#[test]
fn every_invalid_vector_fails_with_its_message() {
    for (input, fragment) in vectors::INVALID {
        let err = input.parse::<Rate>().expect_err(input).to_string();
        assert!(err.contains(fragment), "{input:?}: {err:?} should contain {fragment:?}");
    }
}

#[test]
fn display_is_canonical_and_round_trips() {
    let cases = [
        ("100/min", "100/min"),
        ("10/10 seconds", "10/10s"),
        ("100/1h30m", "100/90min"),
        ("5/24h", "5/d"),
        ("3/50ms", "3/50ms"),
        ("1/1500ms", "1/1500ms"),
        ("unlimited", "unlimited"),
    ];
    for (input, canonical) in cases {
        let rate: Rate = input.parse().unwrap();
        assert_eq!(rate.to_string(), canonical);
        assert_eq!(canonical.parse::<Rate>().unwrap(), rate);
    }
}

#[test]
fn const_constructors() {
    const R: Rate = Rate::per_minute(100);
    assert_eq!(R, "100/min".parse().unwrap());
    assert_eq!(Rate::per_second(5).period_ms(), 1_000);
    assert_eq!(Rate::per_hour(1).period_ms(), 3_600_000);
    assert_eq!(Rate::per_day(1).period_ms(), 86_400_000);
    assert_eq!(Rate::per_millis(1, 0).period_ms(), 1);
    assert!(Rate::UNLIMITED.is_unlimited());
    assert!(Rate::per_millis(3, 50).is_subsecond());
    assert_eq!(Rate::new(1, Duration::from_micros(10)), Err(InvalidRate::ZeroPeriod));
    assert_eq!(Rate::new(u64::MAX, Duration::from_secs(1)), Err(InvalidRate::TooLarge));
    assert_eq!(
        Rate::new(u64::MAX, Duration::from_secs(1)).unwrap_err().to_string(),
        "rate limit and period (ms) must each be at most 2^53 - 1"
    );
}

proptest! {
    #[test]
    fn no_string_panics_the_parser(s in "\\PC{0,40}") {
        let _ = s.parse::<Rate>();
    }

    #[test]
    fn rate_shaped_strings_never_panic(s in "[ +\\-0-9_.]{0,12}(/| per |per)[ 0-9_.a-zA-Z]{0,16}") {
        let _ = s.parse::<Rate>();
    }

    #[test]
    fn display_round_trips(limit in 1u64..1_000_000, period in 1u64..10_000_000_000) {
        let rate = Rate::per_millis(limit, period);
        prop_assert_eq!(rate.to_string().parse::<Rate>().unwrap(), rate);
    }
}
