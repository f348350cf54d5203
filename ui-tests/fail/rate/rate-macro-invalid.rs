//! `rate!` checks its string with the same grammar, spanned on the literal.

use throttle::{Rate, rate};

const WEEKLY: Rate = rate!("5/weeks");

fn main() {
    let _ = WEEKLY;
}
