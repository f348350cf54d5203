//! One header: how its value is made and when it is sent.

use crate::{Connection, Context, StrategyStat};
use http::HeaderValue;
use std::fmt;
use std::sync::Arc;

type Resolver = dyn Fn(&Connection<'_>, &StrategyStat, &Context) -> String + Send + Sync;
type Predicate = dyn Fn(&Connection<'_>, &StrategyStat, &Context) -> bool + Send + Sync;

/// When a [`Header`] is included.
#[derive(Clone)]
pub enum When {
    /// On every response.
    Always,
    /// Only when the client is throttled: on a rejection, or (for
    /// [`get_headers`](crate::HttpThrottle::get_headers)) when the next hit would be.
    Throttled,
    /// When the function says so.
    Predicate(Arc<Predicate>),
}

impl When {
    /// A predicate over the request, the stat and the context.
    ///
    /// ```
    /// use throttle::headers::{Header, When};
    /// // Warn when fewer than 10% of the quota is left.
    /// let low = When::predicate(|_conn, stat, _ctx| stat.hits_remaining * 10 < stat.rate.limit());
    /// let header = Header::remaining(low);
    /// # let _ = header;
    /// ```
    pub fn predicate(f: impl Fn(&Connection<'_>, &StrategyStat, &Context) -> bool + Send + Sync + 'static) -> Self {
        When::Predicate(Arc::new(f))
    }

    fn holds(&self, input: &Input<'_>) -> bool {
        match self {
            When::Always => true,
            When::Throttled => input.throttled,
            When::Predicate(p) => p(input.conn, input.stat, input.context),
        }
    }
}

#[derive(Clone)]
pub(crate) enum Value {
    Static(HeaderValue),
    /// A fixed value that is not a valid header value: refused when it is inserted
    /// into a [`Headers`](super::Headers), so it is never sent.
    Invalid(String),
    Limit,
    Remaining,
    ResetSeconds,
    ResetMilliseconds,
    IetfPolicy,
    IetfRateLimit,
    Resolver(Arc<Resolver>),
    Disabled,
}

/// A header value and the condition for sending it. Immutable; `when`, `always` and
/// `throttled` return modified copies.
///
/// ```
/// use throttle::headers::{Header, When};
///
/// let remaining = Header::remaining(When::Always);
/// let only_on_429 = remaining.clone().throttled();
/// let policy = Header::fixed("100;w=60"); // static values are always sent
/// let custom = Header::resolver(|_conn, stat, _ctx| format!("{}ms", stat.wait_ms), When::Throttled);
/// # let _ = (only_on_429, policy, custom);
/// ```
#[derive(Clone)]
pub struct Header {
    pub(crate) value: Value,
    pub(crate) when: When,
}

impl Header {
    /// Removes a header in a per-call override (see
    /// [`get_headers`](crate::HttpThrottle::get_headers)).
    pub const DISABLE: Header = Header { value: Value::Disabled, when: When::Always };

    /// The rate's limit, e.g. `100`.
    pub const fn limit(when: When) -> Self {
        Header { value: Value::Limit, when }
    }

    /// Quota left, between 0 and the limit.
    pub const fn remaining(when: When) -> Self {
        Header { value: Value::Remaining, when }
    }

    /// Whole seconds, rounded up, until the client may retry (when throttled) or until
    /// the quota is whole again (otherwise). As `Retry-After` it is exactly the wait
    /// a rejected client must honour.
    pub const fn reset_seconds(when: When) -> Self {
        Header { value: Value::ResetSeconds, when }
    }

    /// Like [`reset_seconds`](Self::reset_seconds), in milliseconds.
    pub const fn reset_milliseconds(when: When) -> Self {
        Header { value: Value::ResetMilliseconds, when }
    }

    /// IETF `RateLimit-Policy` item: `"<uid>";q=<limit>;w=<window seconds>`.
    pub const fn ietf_policy(when: When) -> Self {
        Header { value: Value::IetfPolicy, when }
    }

    /// IETF `RateLimit` item: `"<uid>";r=<remaining>;t=<reset seconds>`.
    pub const fn ietf_ratelimit(when: When) -> Self {
        Header { value: Value::IetfRateLimit, when }
    }

    /// A fixed value, always sent. A value that is not a valid header value (a line
    /// break, a control character) is refused when the header is inserted into a
    /// [`Headers`](super::Headers), with [`HeaderError::InvalidValue`].
    pub fn fixed(value: &str) -> Self {
        let value = match HeaderValue::from_str(value) {
            Ok(value) => Value::Static(value),
            Err(_) => Value::Invalid(value.to_string()),
        };
        Header { value, when: When::Always }
    }

    /// The error of a fixed value that cannot be sent.
    pub(crate) fn invalid(&self) -> Option<HeaderError> {
        match &self.value {
            Value::Invalid(value) => Some(HeaderError::InvalidValue(value.clone())),
            _ => None,
        }
    }

    /// A value computed per request. A value that is not a valid header value is
    /// dropped (and logged), never sent.
    pub fn resolver(
        f: impl Fn(&Connection<'_>, &StrategyStat, &Context) -> String + Send + Sync + 'static,
        when: When,
    ) -> Self {
        Header { value: Value::Resolver(Arc::new(f)), when }
    }

    /// A copy with another condition.
    #[must_use]
    pub fn when(self, when: When) -> Self {
        Header { when, ..self }
    }

    /// A copy sent on every response.
    #[must_use]
    pub fn always(self) -> Self {
        self.when(When::Always)
    }

    /// A copy sent only when throttled.
    #[must_use]
    pub fn throttled(self) -> Self {
        self.when(When::Throttled)
    }

    /// `true` for [`Header::DISABLE`].
    pub fn is_disable(&self) -> bool {
        matches!(self.value, Value::Disabled)
    }

    /// A static value sent always: resolvable once, with no per-request work.
    pub(crate) fn as_static(&self) -> Option<&HeaderValue> {
        match (&self.value, &self.when) {
            (Value::Static(v), When::Always) => Some(v),
            _ => None,
        }
    }

    /// The value for this request, or `None` when it is not to be sent.
    pub(crate) fn resolve(&self, input: &Input<'_>) -> Option<HeaderValue> {
        if matches!(self.value, Value::Disabled) || !self.when.holds(input) {
            return None;
        }
        let stat = input.stat;
        let limited = !stat.rate.is_unlimited();
        let text = match &self.value {
            Value::Static(v) => return Some(v.clone()),
            Value::Disabled | Value::Invalid(_) => return None,
            Value::Limit if limited => stat.rate.limit().to_string(),
            Value::Remaining if limited => stat.hits_remaining.min(stat.rate.limit()).to_string(),
            Value::ResetSeconds if limited => ceil_seconds(reset_ms(stat)).to_string(),
            Value::ResetMilliseconds if limited => reset_ms(stat).to_string(),
            Value::IetfPolicy if limited => format!(
                "{};q={};w={}",
                sf_string(&stat.uid),
                stat.rate.limit(),
                ceil_seconds(stat.rate.period_ms()).max(1)
            ),
            Value::IetfRateLimit if limited => format!(
                "{};r={};t={}",
                sf_string(&stat.uid),
                stat.hits_remaining.min(stat.rate.limit()),
                ceil_seconds(reset_ms(stat))
            ),
            Value::Resolver(f) => f(input.conn, stat, input.context),
            _ => return None,
        };
        match HeaderValue::try_from(text) {
            Ok(v) => Some(v),
            Err(err) => {
                crate::log::event!(warn, "throttle: dropped a header whose resolver returned an invalid value: {err}");
                None
            }
        }
    }
}

/// The wait when there is one, else the time until the quota is whole again.
fn reset_ms(stat: &StrategyStat) -> u64 {
    if stat.wait_ms > 0 { stat.wait_ms } else { stat.reset_ms }
}

/// Milliseconds to whole seconds, rounded up (a client never retries early).
pub(crate) const fn ceil_seconds(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// An RFC 9651 sf-string: quoted, with `\` and `"` escaped. Uids are printable ASCII.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Everything a header may read.
pub(crate) struct Input<'a> {
    pub(crate) conn: &'a Connection<'a>,
    pub(crate) stat: &'a StrategyStat,
    pub(crate) context: &'a Context,
    pub(crate) throttled: bool,
}

/// A header name or static value that is not valid HTTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Not a valid header name.
    #[error("invalid header name {0:?}: names are visible ASCII with no separators, e.g. \"X-RateLimit-Limit\"")]
    InvalidName(String),
    /// Not a valid header value.
    #[error("invalid header value {0:?}: values are visible ASCII, spaces and tabs, with no line breaks")]
    InvalidValue(String),
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = match &self.value {
            Value::Static(v) => return write!(f, "Header::fixed({v:?})"),
            Value::Invalid(v) => return write!(f, "Header::fixed({v:?} (invalid))"),
            Value::Disabled => return f.write_str("Header::DISABLE"),
            Value::Limit => "limit",
            Value::Remaining => "remaining",
            Value::ResetSeconds => "reset_seconds",
            Value::ResetMilliseconds => "reset_milliseconds",
            Value::IetfPolicy => "ietf_policy",
            Value::IetfRateLimit => "ietf_ratelimit",
            Value::Resolver(_) => "resolver",
        };
        write!(f, "Header::{value}({:?})", self.when)
    }
}

impl fmt::Debug for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            When::Always => "When::Always",
            When::Throttled => "When::Throttled",
            When::Predicate(_) => "When::Predicate(..)",
        })
    }
}
