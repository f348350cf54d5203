//! [`Connection`]: the parts of a request a throttle reads, borrowed from whatever the
//! handler has (`Request`, `Parts`, a WebSocket's upgrade request).

use axum::extract::ConnectInfo;
use http::{Extensions, HeaderMap, Method, Uri};
use std::net::SocketAddr;

/// A borrowed view of a request: method, URI, headers and extensions (where axum's
/// `ConnectInfo` peer address lives).
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    extensions: &'a Extensions,
}

impl<'a> Connection<'a> {
    /// A view over request parts.
    pub fn new(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap, extensions: &'a Extensions) -> Self {
        Self { method, uri, headers, extensions }
    }

    /// The request method.
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The request URI.
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The request headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The request extensions.
    pub fn extensions(&self) -> &'a Extensions {
        self.extensions
    }

    /// The socket peer, from axum's `ConnectInfo<SocketAddr>` (present when the app is
    /// served with `into_make_service_with_connect_info::<SocketAddr>()`).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0)
    }
}

/// Anything a throttle can be hit with.
pub trait AsConnection {
    /// The borrowed view.
    fn as_connection(&self) -> Connection<'_>;
}

impl<B> AsConnection for http::Request<B> {
    fn as_connection(&self) -> Connection<'_> {
        Connection::new(self.method(), self.uri(), self.headers(), self.extensions())
    }
}

impl AsConnection for http::request::Parts {
    fn as_connection(&self) -> Connection<'_> {
        Connection::new(&self.method, &self.uri, &self.headers, &self.extensions)
    }
}

impl AsConnection for Connection<'_> {
    fn as_connection(&self) -> Connection<'_> {
        *self
    }
}

impl<T: AsConnection + ?Sized> AsConnection for &T {
    fn as_connection(&self) -> Connection<'_> {
        (**self).as_connection()
    }
}
