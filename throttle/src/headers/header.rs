//! One header: how its value is made and when it is sent.

use crate::{Connection, Context, Rate, StrategyStat};
use http::HeaderValue;
use std::cell::OnceCell;
use std::fmt;
use std::sync::{Arc, LazyLock};

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
            When::Predicate(p) => p(input.conn, input.stat(), input.context),
            when => when.holds_when(input.throttled),
        }
    }

    /// Whether the condition holds for a response that is (or is not) throttled; a
    /// predicate, which needs the request, never does here.
    fn holds_when(&self, throttled: bool) -> bool {
        match self {
            When::Always => true,
            When::Throttled => throttled,
            When::Predicate(_) => false,
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

    /// The value for this request, or `None` when it is not to be sent. Built-in
    /// values are written from the decision's figures, without the full stat.
    pub(crate) fn resolve(&self, input: &Input<'_>) -> Option<HeaderValue> {
        if matches!(self.value, Value::Disabled) || !self.when.holds(input) {
            return None;
        }
        match &self.value {
            Value::Resolver(f) => match HeaderValue::try_from(f(input.conn, input.stat(), input.context)) {
                Ok(v) => Some(v),
                Err(err) => {
                    crate::log::event!(
                        warn,
                        "throttle: dropped a header whose resolver returned an invalid value: {err}"
                    );
                    None
                }
            },
            _ => self.value_from(&input.figures),
        }
    }

    /// Whether the header reads nothing but a decision's figures: no resolver, no
    /// predicate (see [`resolve_from`](Self::resolve_from)).
    pub(crate) fn reads_figures_only(&self) -> bool {
        !matches!(self.value, Value::Resolver(_)) && !matches!(self.when, When::Predicate(_))
    }

    /// [`resolve`](Self::resolve) for a header that [reads figures
    /// only](Self::reads_figures_only), on a response that is (or is not) throttled.
    pub(crate) fn resolve_from(&self, figures: &Figures<'_>, throttled: bool) -> Option<HeaderValue> {
        if !self.when.holds_when(throttled) {
            return None;
        }
        self.value_from(figures)
    }

    /// A built-in value, from the figures (`None` for a resolver).
    fn value_from(&self, figures: &Figures<'_>) -> Option<HeaderValue> {
        let limited = !figures.rate.is_unlimited();
        let limit = figures.rate.limit();
        let remaining = figures.remaining.min(limit);
        match &self.value {
            Value::Static(v) => Some(v.clone()),
            Value::Disabled | Value::Invalid(_) | Value::Resolver(_) => None,
            Value::Limit if limited => Some(figures.limit_value.cloned().unwrap_or_else(|| integer(limit))),
            Value::Remaining if limited => Some(integer(remaining)),
            Value::ResetSeconds if limited => Some(integer(ceil_seconds(figures.reset_ms()))),
            Value::ResetMilliseconds if limited => Some(integer(figures.reset_ms())),
            Value::IetfPolicy if limited => {
                let window = ceil_seconds(figures.rate.period_ms()).max(1);
                sf_item(figures.uid, [(";q=", limit), (";w=", window)])
            }
            Value::IetfRateLimit if limited => {
                sf_item(figures.uid, [(";r=", remaining), (";t=", ceil_seconds(figures.reset_ms()))])
            }
            _ => None,
        }
    }
}

/// Milliseconds to whole seconds, rounded up (a client never retries early).
pub(crate) const fn ceil_seconds(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// Integer values below this come from a table built once: most limits, counts and
/// waits in seconds then cost no allocation.
const SMALL_INTEGERS: u64 = 1024;

static SMALL: LazyLock<Box<[HeaderValue]>> = LazyLock::new(|| {
    let mut digits = itoa::Buffer::new();
    let text: String = (0..SMALL_INTEGERS).map(|n| digits.format(n).to_string()).collect();
    // Leaked once per process, so the values borrow it for free on every response.
    let text: &'static str = Box::leak(text.into_boxed_str());
    let mut start = 0;
    (0..SMALL_INTEGERS)
        .map(|n| {
            let end = start + digits.format(n).len();
            let value = HeaderValue::from_static(&text[start..end]);
            start = end;
            value
        })
        .collect()
});

/// An integer header value, in decimal.
pub(crate) fn integer(n: u64) -> HeaderValue {
    if n < SMALL_INTEGERS {
        if let Some(value) = SMALL.get(n as usize) {
            return value.clone();
        }
    }
    // Straight into the value's own bytes: no `BytesMut` to grow and freeze.
    HeaderValue::from_bytes(itoa::Buffer::new().format(n).as_bytes()).unwrap_or_else(|_| HeaderValue::from(n))
}

/// [`integer`] as a value whose clones copy nothing: a throttle's limit, sent on every
/// response. Each distinct value is kept for the life of the process, so only values
/// fixed by configuration (a throttle's first limit) come here, never per request.
pub(crate) fn lasting_integer(n: u64) -> HeaderValue {
    static KEPT: LazyLock<parking_lot::Mutex<std::collections::HashMap<u64, &'static str>>> =
        LazyLock::new(Default::default);
    if n < SMALL_INTEGERS {
        return integer(n);
    }
    let text = *KEPT.lock().entry(n).or_insert_with(|| Box::leak(itoa::Buffer::new().format(n).into()));
    HeaderValue::from_static(text)
}

/// An RFC 9651 item: the uid as an sf-string (quoted, `\` and `"` escaped; uids are
/// printable ASCII) and integer parameters, built on the stack.
fn sf_item(uid: &str, params: [(&str, u64); 2]) -> Option<HeaderValue> {
    let mut out = arrayvec::ArrayString::<{ 2 * crate::key::MAX_UID_LEN + 64 }>::new();
    out.push('"');
    for c in uid.chars() {
        if c == '"' || c == '\\' {
            out.try_push('\\').ok()?;
        }
        out.try_push(c).ok()?;
    }
    out.try_push('"').ok()?;
    let mut digits = itoa::Buffer::new();
    for (name, value) in params {
        out.try_push_str(name).ok()?;
        out.try_push_str(digits.format(value)).ok()?;
    }
    HeaderValue::from_str(&out).ok()
}

/// The figures of one decision that built-in headers read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Figures<'a> {
    pub(crate) uid: &'a str,
    pub(crate) rate: Rate,
    /// The limit's value, made once by the throttle.
    pub(crate) limit_value: Option<&'a HeaderValue>,
    pub(crate) remaining: u64,
    pub(crate) wait_ms: u64,
    pub(crate) reset_ms: u64,
}

impl Figures<'_> {
    /// The wait when there is one, else the time until the quota is whole again.
    fn reset_ms(&self) -> u64 {
        if self.wait_ms > 0 { self.wait_ms } else { self.reset_ms }
    }
}

/// Everything a header may read. The full [`StrategyStat`] (with the key as text) is
/// made only if a resolver or a predicate asks for it.
pub(crate) struct Input<'a> {
    pub(crate) conn: &'a Connection<'a>,
    pub(crate) context: &'a Context,
    pub(crate) throttled: bool,
    pub(crate) figures: Figures<'a>,
    stat: StatSource<'a>,
}

enum StatSource<'a> {
    Ready(&'a StrategyStat),
    Lazy(&'a dyn Fn() -> StrategyStat, OnceCell<StrategyStat>),
}

impl<'a> Input<'a> {
    /// An input over a stat at hand.
    pub(crate) fn from_stat(
        conn: &'a Connection<'a>,
        stat: &'a StrategyStat,
        context: &'a Context,
        throttled: bool,
    ) -> Self {
        let figures = Figures {
            uid: &stat.uid,
            rate: stat.rate,
            limit_value: None,
            remaining: stat.hits_remaining,
            wait_ms: stat.wait_ms,
            reset_ms: stat.reset_ms,
        };
        Input { conn, context, throttled, figures, stat: StatSource::Ready(stat) }
    }

    /// An input over a decision's figures; `stat` makes the full stat if it is needed.
    pub(crate) fn lazy(
        conn: &'a Connection<'a>,
        figures: Figures<'a>,
        context: &'a Context,
        throttled: bool,
        stat: &'a dyn Fn() -> StrategyStat,
    ) -> Self {
        Input { conn, context, throttled, figures, stat: StatSource::Lazy(stat, OnceCell::new()) }
    }

    fn stat(&self) -> &StrategyStat {
        match &self.stat {
            StatSource::Ready(stat) => stat,
            StatSource::Lazy(make, cell) => cell.get_or_init(make),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_written_in_decimal() {
        for n in [0, 7, 1023, 1024, 99_999, 1_000_000_000, u64::MAX] {
            assert_eq!(integer(n), n.to_string(), "{n}");
        }
    }
}
