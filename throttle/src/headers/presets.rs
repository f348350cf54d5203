//! Ready-made header collections.

use super::{Header, Headers, When};
use http::HeaderName;
use std::sync::LazyLock;

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");

fn preset(entries: [(HeaderName, Header); 3]) -> Headers {
    let mut headers = Headers::new();
    for (name, header) in entries {
        headers.insert_name(name, header);
    }
    headers
}

/// `X-RateLimit-Limit` and `X-RateLimit-Remaining` on every response, `Retry-After`
/// on throttled ones only.
pub static DEFAULT_HEADERS_ALWAYS: LazyLock<Headers> = LazyLock::new(|| {
    preset([
        (LIMIT, Header::limit(When::Always)),
        (REMAINING, Header::remaining(When::Always)),
        (http::header::RETRY_AFTER, Header::reset_seconds(When::Throttled)),
    ])
});

/// The same three headers, on throttled responses only.
pub static DEFAULT_HEADERS_THROTTLED: LazyLock<Headers> = LazyLock::new(|| {
    preset([
        (LIMIT, Header::limit(When::Throttled)),
        (REMAINING, Header::remaining(When::Throttled)),
        (http::header::RETRY_AFTER, Header::reset_seconds(When::Throttled)),
    ])
});

/// The fields of `draft-ietf-httpapi-ratelimit-headers-10` on every response, named
/// after the throttle's uid, plus `Retry-After` on throttled ones:
///
/// ```text
/// RateLimit-Policy: "api:data";q=100;w=60
/// RateLimit: "api:data";r=42;t=17
/// ```
pub static IETF_HEADERS: LazyLock<Headers> = LazyLock::new(|| {
    preset([
        (HeaderName::from_static("ratelimit-policy"), Header::ietf_policy(When::Always)),
        (HeaderName::from_static("ratelimit"), Header::ietf_ratelimit(When::Always)),
        (http::header::RETRY_AFTER, Header::reset_seconds(When::Throttled)),
    ])
});
