//! The policy names the attribute accepts as strings: `headers = "..."`,
//! `on_error = "..."` and `count = "..."`.

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

/// `count = "all" | "failures" | "successes"`: which responses a throttle counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountPolicy {
    /// Every response.
    All,
    /// Responses with a status of 400 or more.
    Failures,
    /// Responses with a status below 400.
    Successes,
}

impl CountPolicy {
    /// Every policy's name, in order.
    pub const NAMES: &'static [&'static str] = &["all", "failures", "successes"];

    /// The policy named exactly `name`.
    ///
    /// ```
    /// use throttle_grammar::policy::CountPolicy;
    /// assert_eq!(CountPolicy::from_name("failures"), Some(CountPolicy::Failures));
    /// assert!(CountPolicy::NAMES.iter().all(|n| CountPolicy::from_name(n).is_some()));
    /// assert_eq!(CountPolicy::from_name("failure"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "all" => Some(CountPolicy::All),
            "failures" => Some(CountPolicy::Failures),
            "successes" => Some(CountPolicy::Successes),
            _ => None,
        }
    }
}
