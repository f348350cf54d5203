//! [`Context`]: per-throttle and per-call values that strategies, handlers and
//! resolvers can read. The `scope` key splits one throttle into separate buckets.

use serde_json::Value;
use std::collections::BTreeMap;

/// Key/value context of a throttle call.
///
/// Keys with meaning: `scope` (separate buckets per value, default `"default"`),
/// `detail` and `status_code` (the default rejection's body and status), `headers`
/// (an object of extra headers on the rejection) and `extras` (an object merged into
/// the WebSocket rate-limit frame). Every other key is yours.
///
/// ```
/// use throttle::Context;
///
/// let defaults = Context::new().with("scope", "public").with("plan", "free");
/// let call = Context::new().with("scope", "tenant-42");
/// let merged = defaults.merged_with(&call);
/// assert_eq!(merged.scope(), "tenant-42"); // the call wins
/// assert_eq!(merged.get("plan").and_then(|v| v.as_str()), Some("free"));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    entries: BTreeMap<String, Value>,
}

impl Context {
    /// An empty context.
    pub const fn new() -> Self {
        Self { entries: BTreeMap::new() }
    }

    /// Adds or replaces `key`.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(key, value);
        self
    }

    /// Adds or replaces `key` in place.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.entries.insert(key.into(), value.into());
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.get(key)
    }

    /// The bucket scope: the `scope` value as text, or `"default"`.
    pub fn scope(&self) -> std::borrow::Cow<'_, str> {
        match self.entries.get("scope") {
            None | Some(Value::Null) => "default".into(),
            Some(Value::String(s)) => s.as_str().into(),
            Some(other) => other.to_string().into(),
        }
    }

    /// `self` with `over`'s entries on top (shallow: `over` wins per key).
    #[must_use]
    pub fn merged_with(&self, over: &Context) -> Context {
        let mut merged = self.clone();
        merged.entries.extend(over.entries.iter().map(|(k, v)| (k.clone(), v.clone())));
        merged
    }

    /// `true` when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}
