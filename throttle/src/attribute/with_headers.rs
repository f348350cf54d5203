//! [`WithHeaders`]: a handler's response with its throttles' headers.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName};

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
    headers: HeaderMap,
    inner: T,
}

impl<T> WithHeaders<T> {
    pub(crate) fn new(headers: HeaderMap, inner: T) -> Self {
        WithHeaders { headers, inner }
    }

    /// The headers that will be added.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
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
        append_missing(response.headers_mut(), self.headers);
        response
    }
}

/// Appends every value of `source` under a name `target` does not have yet: what is
/// already there wins.
pub(crate) fn append_missing(target: &mut HeaderMap, source: HeaderMap) {
    // `HeaderMap`'s iterator gives the name once per name, then `None` for its further
    // values.
    let mut current: Option<(HeaderName, bool)> = None;
    for (name, value) in source {
        if let Some(name) = name {
            let taken = target.contains_key(&name);
            current = Some((name, taken));
        }
        if let Some((name, false)) = &current {
            target.append(name.clone(), value);
        }
    }
}
