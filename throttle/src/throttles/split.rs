//! [`KeySplit`]: the optional method and route parts of a bucket's scope. Both come from
//! a closed set (the standard methods, the app's routes), so a client cannot mint
//! buckets by inventing methods or paths.

use crate::Connection;
use arrayvec::ArrayVec;
use axum::extract::MatchedPath;
use http::Method;

/// The route part of requests that matched no route (404s under `Router::layer`).
/// Route templates start with `/`, so no route can share it.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";

/// The method part of every extension method: one bucket for all of them.
pub(crate) const OTHER_METHOD: &str = "OTHER";

/// Optional extra parts of a bucket: one per method and/or per route. Off by default, so
/// a throttle shared by routes is one budget.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeySplit {
    pub(crate) method: bool,
    pub(crate) path: bool,
}

impl KeySplit {
    /// The scope's parts: the call's (or the throttle's) `scope`, then the method and the route when the
    /// throttle splits by them.
    pub(crate) fn scope_parts<'a>(&self, scope: &'a str, conn: &Connection<'a>) -> ArrayVec<&'a str, 3> {
        let mut parts = ArrayVec::new();
        parts.push(scope);
        if self.method {
            parts.push(method_part(conn.method()));
        }
        if self.path {
            parts.push(route_part(conn));
        }
        parts
    }
}

/// A standard method by name; any extension method is [`OTHER_METHOD`].
fn method_part(method: &Method) -> &str {
    match method.as_str() {
        name @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE" | "PATCH") => name,
        _ => OTHER_METHOD,
    }
}

/// axum's matched route template (`/users/{id}`), or [`UNMATCHED_ROUTE`].
fn route_part<'a>(conn: &Connection<'a>) -> &'a str {
    conn.extensions().get::<MatchedPath>().map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Extensions, HeaderMap, Uri};

    #[test]
    fn standard_methods_by_name_and_extensions_share_one_part() {
        for name in ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"] {
            assert_eq!(method_part(&Method::from_bytes(name.as_bytes()).unwrap()), name);
        }
        for name in ["get", "PURGE", "OTHER", "X-1", "BREW"] {
            assert_eq!(method_part(&Method::from_bytes(name.as_bytes()).unwrap()), OTHER_METHOD, "{name}");
        }
    }

    #[test]
    fn without_a_matched_route_the_route_is_unmatched() {
        let (method, uri, headers, extensions) =
            (Method::GET, Uri::from_static("/users/1"), HeaderMap::new(), Extensions::new());
        let conn = Connection::new(&method, &uri, &headers, &extensions);
        let split = KeySplit { method: true, path: true };
        assert_eq!(split.scope_parts("default", &conn).as_slice(), ["default", "GET", UNMATCHED_ROUTE]);
        assert_eq!(KeySplit::default().scope_parts("default", &conn).as_slice(), ["default"]);
    }
}
