//! [`Throttled`]: the rejection of a hit over the limit, rendered as a 429.

use crate::headers::header::{ceil_seconds, integer};
use crate::headers::resolved::Resolved;
#[cfg(feature = "json")]
use crate::problem::{self, Problem};
use crate::{Context, Rate};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use std::fmt;
use std::sync::Arc;

/// Replaces the default 429 response.
pub type ThrottledHandler = Arc<dyn Fn(&Throttled) -> Response + Send + Sync>;

/// How a throttle's rejections look, set by the builder's typed calls
/// (`throttled_status`, `throttled_detail`, `throttled_header`, `frame_extra`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Rejection {
    /// The status instead of 429.
    pub(crate) status: Option<StatusCode>,
    /// The body (or problem detail) instead of `Too many requests. Retry in N seconds.`
    pub(crate) detail: Option<Box<str>>,
    /// Extra headers on every rejection (`Retry-After` still wins).
    pub(crate) headers: HeaderMap,
    /// Fields appended to the WebSocket `rate_limit` frame.
    #[cfg(all(feature = "ws", feature = "json"))]
    pub(crate) frame_extras: Vec<(String, serde_json::Value)>,
}

/// A hit was rejected. As a response: status 429 (RFC 6585 §4), `Retry-After` in whole
/// seconds rounded up (RFC 9110 §10.2.3), the throttle's throttled headers, and the
/// body `Too many requests. Retry in N seconds.`; or an `application/problem+json`
/// body (RFC 9457, see [`problem_details`](Self::problem_details)) when the throttle
/// was built with [`.problem_details()`](crate::ThrottleBuilder::problem_details); or
/// whatever the throttle's throttled handler returns.
///
/// The builder's [`throttled_status`](crate::ThrottleBuilder::throttled_status),
/// [`throttled_detail`](crate::ThrottleBuilder::throttled_detail) and
/// [`throttled_header`](crate::ThrottleBuilder::throttled_header) change the default
/// response.
pub struct Throttled {
    pub(crate) uid: Arc<str>,
    pub(crate) wait_ms: u64,
    /// The rate the hit was decided with (the policy a problem body names).
    pub(crate) rate: Rate,
    pub(crate) headers: Resolved,
    pub(crate) context: Arc<Context>,
    pub(crate) handler: Option<ThrottledHandler>,
    /// The throttle's typed rejection options.
    pub(crate) rejection: Arc<Rejection>,
}

impl Throttled {
    /// The throttle that rejected.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// Milliseconds until the same hit would be admitted.
    pub fn wait_ms(&self) -> u64 {
        self.wait_ms
    }

    /// The rate the rejected hit was decided with.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// `Retry-After`: the wait in whole seconds, rounded up (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        ceil_seconds(self.wait_ms).max(1)
    }

    /// The resolved throttled headers (without `Retry-After` unless configured).
    pub fn headers(&self) -> &HeaderMap {
        self.headers.map()
    }

    /// The context of the rejected call (the throttle's, with the call's on top).
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The default response, ignoring any custom handler; handlers can start from it.
    pub fn default_response(&self) -> Response {
        self.response_with(self.headers.clone())
    }

    /// The default response with `own` as the throttle's headers.
    fn response_with(&self, own: Resolved) -> Response {
        let seconds = self.retry_after_secs();
        let mut response = (self.status(), self.detail(seconds)).into_response();
        self.add_headers(response.headers_mut(), seconds, own);
        response
    }

    /// The rejection as RFC 9457 problem details (`application/problem+json`), with
    /// the wait and the policy, the throttled headers and `Retry-After`:
    ///
    /// ```json
    /// {
    ///   "type": "https://iana.org/assignments/http-problem-types#quota-exceeded",
    ///   "title": "Request cannot be satisfied as assigned quota has been exceeded",
    ///   "status": 429,
    ///   "detail": "Too many requests. Retry in 17 seconds.",
    ///   "retry_after": 17,
    ///   "violated-policies": ["api:data"],
    ///   "policy": { "uid": "api:data", "limit": 100, "period_ms": 60000, "rate": "100/min" }
    /// }
    /// ```
    ///
    /// The problem types and `violated-policies` are those of
    /// `draft-ietf-httpapi-ratelimit-headers` (a 503 set with
    /// [`throttled_status`](crate::ThrottleBuilder::throttled_status) is
    /// `#temporary-reduced-capacity`). Needs the `json` feature (on by default). Built with
    /// [`.problem_details()`](crate::ThrottleBuilder::problem_details), a throttle
    /// answers with this; a custom handler can too:
    ///
    /// ```
    /// use throttle::HttpThrottle;
    ///
    /// let api = HttpThrottle::builder("docs:problem")
    ///     .rate("100/min")
    ///     .throttled_handler(|rejection| {
    ///         tracing::info!("rejected: {rejection}");
    ///         rejection.problem_details()
    ///     })
    ///     .build()?;
    /// # let _ = api;
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn problem_details(&self) -> Response {
        let seconds = self.retry_after_secs();
        let status = self.status();
        let policy = serde_json::json!({
            "uid": &*self.uid,
            "limit": self.rate.limit(),
            "period_ms": self.rate.period_ms(),
            "rate": self.rate.to_string(),
        });
        let problem =
            Problem { status, detail: self.detail(seconds), retry_after: Some(seconds), uid: &self.uid, policy };
        let mut response = problem::response(problem);
        self.add_headers(response.headers_mut(), seconds, self.headers.clone());
        response
    }

    /// The status of the default response: 429, or the throttle's
    /// [`throttled_status`](crate::ThrottleBuilder::throttled_status).
    pub fn status(&self) -> StatusCode {
        self.rejection.status.unwrap_or(StatusCode::TOO_MANY_REQUESTS)
    }

    /// The throttle's `throttled_detail`, or the standard sentence.
    fn detail(&self, seconds: u64) -> String {
        match &self.rejection.detail {
            Some(detail) => detail.to_string(),
            None => {
                let mut detail = String::with_capacity(48);
                detail.push_str("Too many requests. Retry in ");
                detail.push_str(itoa::Buffer::new().format(seconds));
                detail.push_str(" seconds.");
                detail
            }
        }
    }

    /// The throttled headers (`own`), the throttle's extra headers, then `Retry-After`.
    fn add_headers(&self, headers: &mut HeaderMap, seconds: u64, own: Resolved) {
        own.write_into(headers);
        for (name, value) in &self.rejection.headers {
            headers.insert(name, value.clone());
        }
        // The presets already carry this exact value: make it only when it differs.
        let mut digits = itoa::Buffer::new();
        let text = digits.format(seconds).as_bytes();
        if headers.get(http::header::RETRY_AFTER).is_none_or(|value| value.as_bytes() != text) {
            headers.insert(http::header::RETRY_AFTER, integer(seconds));
        }
    }
}

impl IntoResponse for Throttled {
    fn into_response(mut self) -> Response {
        match &self.handler {
            Some(handler) => handler(&self),
            // The headers move into the response: nothing is copied.
            None => {
                let own = std::mem::take(&mut self.headers);
                self.response_with(own)
            }
        }
    }
}

impl fmt::Display for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "throttled by {:?}: retry in {} ms", self.uid, self.wait_ms)
    }
}

impl fmt::Debug for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttled")
            .field("uid", &self.uid)
            .field("wait_ms", &self.wait_ms)
            .field("headers", self.headers())
            .finish_non_exhaustive()
    }
}

impl std::error::Error for Throttled {}
