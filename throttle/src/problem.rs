//! RFC 9457 problem details for rejections: one JSON shape for throttles and in-flight
//! limits, with the problem types of `draft-ietf-httpapi-ratelimit-headers` (-09 on).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

/// The media type of a problem body (RFC 9457 §3).
pub(crate) const CONTENT_TYPE: &str = "application/problem+json";

/// A quota was exceeded (the draft's type for 429).
const QUOTA_EXCEEDED: &str = "https://iana.org/assignments/http-problem-types#quota-exceeded";
/// The server sheds load (the draft's type for 503).
const REDUCED_CAPACITY: &str = "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity";

/// What a problem body says.
pub(crate) struct Problem<'a> {
    pub(crate) status: StatusCode,
    pub(crate) detail: String,
    /// `Retry-After` in seconds, when there is one.
    pub(crate) retry_after: Option<u64>,
    /// The policy that was violated (a throttle's or limit's uid).
    pub(crate) uid: &'a str,
    /// The policy's numbers.
    pub(crate) policy: serde_json::Value,
}

/// The response: status, `Content-Type: application/problem+json` and the body; the
/// caller adds its headers.
pub(crate) fn response(problem: Problem<'_>) -> Response {
    let (kind, title) = if problem.status == StatusCode::SERVICE_UNAVAILABLE {
        (REDUCED_CAPACITY, "Request cannot be satisfied due to temporary server capacity constraints")
    } else {
        (QUOTA_EXCEEDED, "Request cannot be satisfied as assigned quota has been exceeded")
    };
    let mut body = serde_json::json!({
        "type": kind,
        "title": title,
        "status": problem.status.as_u16(),
        "detail": problem.detail,
        "violated-policies": [problem.uid],
        "policy": problem.policy,
    });
    if let (Some(seconds), Some(object)) = (problem.retry_after, body.as_object_mut()) {
        object.insert("retry_after".to_string(), seconds.into());
    }
    let mut response = (problem.status, body.to_string()).into_response();
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}
