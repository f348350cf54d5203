//! Rate-limit response headers: [`Header`] values, [`Headers`] collections and presets.
//!
//! Values are integers, never floats or `inf`; `Retry-After` is `ceil(wait / 1000)`
//! seconds and, in every preset, appears only on throttled responses.
//!
//! Standards: `429 Too Many Requests` is RFC 6585 §4; `Retry-After` is RFC 9110
//! §10.2.3; the `RateLimit` and `RateLimit-Policy` fields of [`IETF_HEADERS`] follow
//! the Internet-Draft `draft-ietf-httpapi-ratelimit-headers-10` (Structured Fields,
//! RFC 9651). That draft has no RFC number.

pub(crate) mod collection;
pub(crate) mod header;
mod presets;
pub(crate) mod resolved;

pub use collection::Headers;
pub use header::{Header, HeaderError, When};
pub use presets::{DEFAULT_HEADERS_ALWAYS, DEFAULT_HEADERS_THROTTLED, IETF_HEADERS};
