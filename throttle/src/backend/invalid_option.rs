//! [`InvalidBackendOption`]: a wrapper backend's builder was given a value it cannot use.

/// An option of a backend builder ([`DenyCacheBuilder`](super::DenyCacheBuilder),
/// [`FailoverBuilder`](super::FailoverBuilder)) is out of range.
///
/// ```
/// use throttle::backend::MemoryBackend;
/// use throttle::backend::DenyCache;
///
/// let error = DenyCache::builder(MemoryBackend::new()).capacity(0).build().unwrap_err();
/// assert_eq!(error.option, "capacity");
/// assert!(error.to_string().contains("at least 1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid backend option `{option}`: {reason}")]
#[non_exhaustive]
pub struct InvalidBackendOption {
    /// The builder method that was given the value.
    pub option: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidBackendOption {
    pub(crate) fn new(option: &'static str, reason: impl Into<String>) -> Self {
        InvalidBackendOption { option, reason: reason.into() }
    }
}
