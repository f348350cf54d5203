//! `rate!` takes a string literal only.

use throttle::{Rate, rate};

const TEXT: &str = "100/min";
const RATE: Rate = rate!(TEXT);

fn main() {
    let _ = RATE;
}
