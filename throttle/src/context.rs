//! [`Context`]: your own values for a throttle call, and the call's bucket scope.

use http::Extensions;
use std::borrow::Cow;
use std::fmt;

/// Your own values for a throttle call, one per type, for your functions to read:
/// [`rate_fn`](crate::ThrottleBuilder::rate_fn), [`cost_fn`](crate::ThrottleBuilder::cost_fn),
/// header resolvers and predicates, [`OnError::custom`](crate::OnError::custom) and a
/// [`throttled_handler`](crate::ThrottleBuilder::throttled_handler).
///
/// The throttle itself never looks inside: what it does is set by typed calls, such
/// as the bucket scope ([`ThrottleBuilder::scope`](crate::ThrottleBuilder::scope),
/// [`Call::scope`](crate::Call::scope)) and the rejection
/// ([`throttled_status`](crate::ThrottleBuilder::throttled_status),
/// [`throttled_detail`](crate::ThrottleBuilder::throttled_detail),
/// [`throttled_header`](crate::ThrottleBuilder::throttled_header)). A call's context
/// is merged over the throttle's default one: a value of a type both hold comes from
/// the call.
///
/// ```
/// use throttle::{Context, HttpThrottle, Rate};
///
/// #[derive(Clone, Copy, Debug, PartialEq)]
/// enum Plan {
///     Free,
///     Pro,
/// }
///
/// let api = HttpThrottle::builder("docs:context")
///     .rate_fn(|_conn, context| {
///         let rate = match context.get::<Plan>() {
///             Some(Plan::Pro) => Rate::per_minute(1_000),
///             _ => Rate::per_minute(100),
///         };
///         async move { rate }
///     })
///     .context(Context::new().with(Plan::Free)) // the default, under every call's
///     .build()?;
/// // In a handler: `api.hit(&request).context(Context::new().with(Plan::Pro)).await?`
///
/// let defaults = Context::new().with(Plan::Free).with(7_u32);
/// let merged = defaults.merged_with(&Context::new().with(Plan::Pro));
/// assert_eq!(merged.get::<Plan>(), Some(&Plan::Pro)); // the call wins
/// assert_eq!(merged.get::<u32>(), Some(&7));
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Clone, Default)]
pub struct Context {
    values: Extensions,
    /// The bucket scope, set only by the typed `scope` calls.
    scope: Option<Cow<'static, str>>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value`, replacing a value of the same type.
    #[must_use]
    pub fn with<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.insert(value);
        self
    }

    /// Adds `value` in place, returning the value of the same type it replaces.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        self.values.insert(value)
    }

    /// The value of type `T`, if there is one.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values.get::<T>()
    }

    /// The bucket scope of the call: the call's [`scope`](crate::Call::scope), else the
    /// throttle's [`scope`](crate::ThrottleBuilder::scope), else `"default"`.
    pub fn scope(&self) -> &str {
        self.scope.as_deref().unwrap_or("default")
    }

    /// `self` with `over`'s values and scope on top (`over` wins per type).
    #[must_use]
    pub fn merged_with(&self, over: &Context) -> Context {
        let mut values = self.values.clone();
        values.extend(over.values.clone());
        Context { values, scope: over.scope.clone().or_else(|| self.scope.clone()) }
    }

    /// `true` when there are no values and no scope.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.scope.is_none()
    }

    /// Sets the scope (only the typed `scope` calls do).
    pub(crate) fn set_scope(&mut self, scope: Cow<'static, str>) {
        self.scope = Some(scope);
    }

    /// The scope set on this context itself, if any (not the `"default"` fallback).
    pub(crate) fn own_scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").field("scope", &self.scope).field("values", &self.values.len()).finish()
    }
}

/// Whether two call contexts select the same bucket of one throttle: their own scopes
/// are equal (a call without one takes the throttle's).
pub(crate) fn same_scope(a: Option<&Context>, b: Option<&Context>) -> bool {
    a.and_then(Context::own_scope) == b.and_then(Context::own_scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_wins_per_type_and_keeps_the_default_scope() {
        let mut defaults = Context::new().with(1_u8).with("text");
        defaults.set_scope("public".into());
        let merged = defaults.merged_with(&Context::new().with(2_u8));
        assert_eq!(merged.get::<u8>(), Some(&2));
        assert_eq!(merged.get::<&str>(), Some(&"text"));
        assert_eq!(merged.scope(), "public");
        let mut call = Context::new();
        call.set_scope("tenant-7".into());
        assert_eq!(defaults.merged_with(&call).scope(), "tenant-7");
        assert_eq!(Context::new().scope(), "default");
        assert!(Context::new().is_empty() && !call.is_empty());
    }
}
