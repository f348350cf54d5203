//! The Lua script of each built-in strategy, and its parameters.

use crate::Rate;
use crate::strategy::DynStrategy;
use ::redis::Script;
use std::sync::LazyLock;

macro_rules! strategy_script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(include_str!("lua/prelude.lua"), include_str!($file), include_str!("lua/main.lua")))
        })
    };
}

static FIXED_WINDOW: LazyLock<Script> = strategy_script!("lua/fixed_window.lua");

/// The script running `strategy`, by name.
pub(super) fn for_strategy(strategy: &dyn DynStrategy) -> Option<&'static Script> {
    match strategy.name() {
        "fixed_window" => Some(&FIXED_WINDOW),
        _ => None,
    }
}

/// Strategy parameters passed after the cost (`ARGV[6..]`).
pub(super) fn params(_strategy: &dyn DynStrategy, _rate: Rate) -> Vec<u64> {
    Vec::new()
}
