//! The policy names the attribute accepts as strings: `headers = "..."` and
//! `on_error = "..."`.

/// `headers = "always" | "throttled"`: which preset the handler's responses carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderPolicy {
    /// On every response.
    Always,
    /// On 429s only.
    Throttled,
}

impl HeaderPolicy {
    /// Every policy's name, in order.
    pub const NAMES: &'static [&'static str] = &["always", "throttled"];

    /// The policy named exactly `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "always" => Some(HeaderPolicy::Always),
            "throttled" => Some(HeaderPolicy::Throttled),
            _ => None,
        }
    }
}

/// `on_error = "allow" | "throttle" | "raise"`: what a backend failure does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// Let the request through.
    Allow,
    /// Reject it as throttled.
    Throttle,
    /// Fail it with the backend error.
    Raise,
}

impl ErrorPolicy {
    /// Every policy's name, in order.
    pub const NAMES: &'static [&'static str] = &["allow", "throttle", "raise"];

    /// The policy named exactly `name`.
    ///
    /// ```
    /// use throttle_grammar::policy::ErrorPolicy;
    /// assert_eq!(ErrorPolicy::from_name("raise"), Some(ErrorPolicy::Raise));
    /// assert!(ErrorPolicy::NAMES.iter().all(|n| ErrorPolicy::from_name(n).is_some()));
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "allow" => Some(ErrorPolicy::Allow),
            "throttle" => Some(ErrorPolicy::Throttle),
            "raise" => Some(ErrorPolicy::Raise),
            _ => None,
        }
    }
}
