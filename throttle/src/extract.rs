//! [`RequestInfo`]: an extractor for handlers that also take a body extractor and so
//! cannot take the whole `Request`.

use crate::{AsConnection, Connection};
use axum::extract::FromRequestParts;
use http::request::Parts;
use http::{Extensions, HeaderMap, Method, Uri};
use std::convert::Infallible;

/// The method, URI, headers and extensions of the request, for the direct API.
///
/// ```
/// use axum::Json;
/// use throttle::{HttpThrottle, RequestInfo, ThrottleError};
///
/// async fn create(
///     info: RequestInfo,
///     Json(items): Json<Vec<String>>,
/// ) -> Result<String, ThrottleError> {
///     # let batch = HttpThrottle::builder("docs:batch").rate("10000/min").build().unwrap();
///     batch.hit(&info).cost(items.len()).await?;
///     Ok(format!("processed {}", items.len()))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct RequestInfo {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
}

impl RequestInfo {
    /// An owned copy of what a throttle reads from a request.
    pub(crate) fn snapshot(conn: Connection<'_>) -> Self {
        RequestInfo {
            method: conn.method().clone(),
            uri: conn.uri().clone(),
            headers: conn.headers().clone(),
            extensions: conn.extensions().clone(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestInfo {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestInfo::snapshot(parts.as_connection()))
    }
}

/// Takes the parts without cloning them.
impl From<Parts> for RequestInfo {
    fn from(parts: Parts) -> Self {
        RequestInfo { method: parts.method, uri: parts.uri, headers: parts.headers, extensions: parts.extensions }
    }
}

impl AsConnection for RequestInfo {
    fn as_connection(&self) -> Connection<'_> {
        Connection::new(&self.method, &self.uri, &self.headers, &self.extensions)
    }
}
