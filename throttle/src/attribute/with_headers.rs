//! [`WithHeaders`]: a handler's response with its throttles' headers.

use super::guard_headers::GuardHeaders;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use std::sync::OnceLock;

/// A handler's response with its throttles' headers: the return type of a handler
/// annotated with `#[throttle(headers = ...)]`, wrapping the declared one.
///
/// The handler's own headers win over the throttles' on a name conflict; with stacked
/// attributes, a higher attribute's headers win over a lower one's.
///
/// ```
/// use axum::{Router, body::Body, http::Request, routing::get};
/// use tower::ServiceExt;
/// use throttle::throttle;
///
/// #[throttle(uid = "docs:with-headers", rate = "10/min", headers = "always")]
/// async fn hello() -> &'static str {
///     "hello"
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = Router::new().route("/", get(hello));
/// let response = app.oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
/// assert_eq!(response.headers()["x-ratelimit-remaining"], "9");
/// # }
/// ```
#[derive(Debug)]
pub struct WithHeaders<T> {
    /// The throttles' headers; written straight into the response, a map made only if
    /// [`headers`](Self::headers) asks for one.
    headers: GuardHeaders,
    map: OnceLock<Box<HeaderMap>>,
    inner: T,
}

impl<T> WithHeaders<T> {
    pub(crate) fn new(headers: GuardHeaders, inner: T) -> Self {
        WithHeaders { headers, map: OnceLock::new(), inner }
    }

    /// The headers that will be added.
    pub fn headers(&self) -> &HeaderMap {
        self.map.get_or_init(|| Box::new(self.headers.to_map()))
    }

    /// What the handler returned.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// What the handler returned, without the headers.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: IntoResponse> IntoResponse for WithHeaders<T> {
    fn into_response(self) -> Response {
        let mut response = self.inner.into_response();
        // What is already there wins: the handler's own headers, then a higher
        // attribute's over a lower one's.
        self.headers.write_missing_into(response.headers_mut());
        response
    }
}
