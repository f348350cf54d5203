//! Logging through `tracing` with the `tracing` feature (on by default); without it,
//! nothing is logged and nothing is formatted.

/// `crate::log::event!(warn, "...", args)`: `tracing::warn!` when the feature is on.
macro_rules! event {
    ($level:ident, $($arg:tt)+) => {{
        #[cfg(feature = "tracing")]
        {
            ::tracing::$level!($($arg)+);
        }
        #[cfg(not(feature = "tracing"))]
        {
            // Borrow the arguments so they count as used; nothing is formatted.
            let _ = || format!($($arg)+);
        }
    }};
}

pub(crate) use event;
