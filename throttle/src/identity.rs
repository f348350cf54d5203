//! Who is being limited: [`Identifier`] turns a request into an [`Identity`].

use crate::backend::BoxFuture;
use crate::{ClientIp, Connection};
use http::HeaderName;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The bucket owner a request counts against, or an exemption.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// Count against this client id (any text; it is escaped in keys).
    Client(Cow<'static, str>),
    /// Bypass the throttle entirely: no backend I/O, no headers.
    Exempted,
}

/// The identity that bypasses throttling.
pub const EXEMPTED: Identity = Identity::Exempted;

/// The shared bucket for requests whose peer address is unknown.
pub const ANONYMOUS: &str = "__anonymous__";

impl Identity {
    /// A client id.
    pub fn client(id: impl Into<Cow<'static, str>>) -> Self {
        Identity::Client(id.into())
    }
}

type SyncFn = dyn Fn(&Connection<'_>) -> Identity + Send + Sync;
type AsyncFn = dyn Fn(&Connection<'_>) -> BoxFuture<'static, Identity> + Send + Sync;

/// Turns a request into an [`Identity`]. The default is the peer IP address.
///
/// ```
/// use throttle::{Identifier, Identity, EXEMPTED};
///
/// // By API key, exempting internal callers.
/// let by_key = Identifier::from_fn(|conn| match conn.headers().get("x-api-key") {
///     Some(v) if v == "internal" => EXEMPTED,
///     Some(v) => Identity::client(String::from_utf8_lossy(v.as_bytes()).into_owned()),
///     None => Identity::client("anonymous"),
/// });
///
/// // Asynchronously: read what you need, then return a `'static` future.
/// let by_lookup = Identifier::from_async_fn(|conn| {
///     let token = conn.headers().get("authorization").cloned();
///     Box::pin(async move {
///         match token {
///             Some(t) => Identity::client(format!("user:{}", t.len())),
///             None => Identity::client("guest"),
///         }
///     })
/// });
/// # let _ = (by_key, by_lookup);
/// ```
#[derive(Clone, Default)]
pub struct Identifier(Kind);

#[derive(Clone, Default)]
enum Kind {
    #[default]
    PeerIp,
    ClientIp(Arc<ClientIp>),
    Header(HeaderName),
    Composite(Arc<[Identifier]>),
    Sync(Arc<SyncFn>),
    Async(Arc<AsyncFn>),
}

impl Identifier {
    /// The peer IP from axum's `ConnectInfo<SocketAddr>`. Without `ConnectInfo` (the
    /// app was not served with connect info) every request shares one
    /// [`ANONYMOUS`] bucket, and this is reported once in the log.
    pub const fn peer_ip() -> Self {
        Identifier(Kind::PeerIp)
    }

    /// The client address behind trusted proxies (see [`ClientIp`]); without
    /// `ConnectInfo`, the shared [`ANONYMOUS`] bucket.
    pub fn client_ip(config: ClientIp) -> Self {
        Identifier(Kind::ClientIp(Arc::new(config)))
    }

    /// The value of a request header (an API key, a tenant id), falling back to the
    /// peer IP when the header is absent.
    ///
    /// ```
    /// let by_key = throttle::Identifier::header("x-api-key")?;
    /// # let _ = by_key;
    /// # Ok::<(), throttle::headers::HeaderError>(())
    /// ```
    pub fn header(name: &str) -> Result<Self, crate::headers::HeaderError> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| crate::headers::HeaderError::InvalidName(name.to_string()))?;
        Ok(Identifier(Kind::Header(name)))
    }

    /// A request extension set by an earlier layer (e.g. the authenticated user id
    /// your auth middleware inserted), falling back to the peer IP when absent.
    ///
    /// ```
    /// #[derive(Clone)]
    /// struct UserId(u64);
    /// let by_user = throttle::Identifier::extension(|user: &UserId| user.0.to_string());
    /// # let _ = by_user;
    /// ```
    pub fn extension<T: Send + Sync + 'static>(id: impl Fn(&T) -> String + Send + Sync + 'static) -> Self {
        Self::from_fn(move |conn| match conn.extensions().get::<T>() {
            Some(value) => Identity::Client(id(value).into()),
            None => peer_ip(conn),
        })
    }

    /// Several identifiers combined: one bucket per combination (e.g. user and IP).
    /// If any part is [`EXEMPTED`], so is the whole.
    pub fn composite(parts: impl IntoIterator<Item = Identifier>) -> Self {
        Identifier(Kind::Composite(parts.into_iter().collect()))
    }

    /// A synchronous function of the request.
    pub fn from_fn(f: impl Fn(&Connection<'_>) -> Identity + Send + Sync + 'static) -> Self {
        Identifier(Kind::Sync(Arc::new(f)))
    }

    /// An asynchronous function: it reads what it needs from the request and returns a
    /// `'static` future.
    pub fn from_async_fn(f: impl Fn(&Connection<'_>) -> BoxFuture<'static, Identity> + Send + Sync + 'static) -> Self {
        Identifier(Kind::Async(Arc::new(f)))
    }

    /// Runs the identifier.
    pub async fn identify(&self, conn: &Connection<'_>) -> Identity {
        match &self.0 {
            Kind::PeerIp => peer_ip(conn),
            Kind::ClientIp(config) => match conn.peer_addr() {
                Some(peer) => Identity::Client(config.resolve(peer.ip(), conn.headers()).to_string().into()),
                None => peer_ip(conn),
            },
            Kind::Header(name) => match conn.headers().get(name) {
                Some(value) => Identity::Client(String::from_utf8_lossy(value.as_bytes()).into_owned().into()),
                None => peer_ip(conn),
            },
            Kind::Composite(parts) => {
                let mut joined = String::new();
                for part in parts.iter() {
                    match Box::pin(part.identify(conn)).await {
                        Identity::Exempted => return Identity::Exempted,
                        // Escaping each part keeps the join injective: ("a:", "b") != ("a", ":b").
                        Identity::Client(id) => {
                            if !joined.is_empty() {
                                joined.push(':');
                            }
                            crate::key::push_escaped(&mut joined, &id);
                        }
                    }
                }
                Identity::Client(joined.into())
            }
            Kind::Sync(f) => f(conn),
            Kind::Async(f) => f(conn).await,
        }
    }
}

fn peer_ip(conn: &Connection<'_>) -> Identity {
    static REPORTED: AtomicBool = AtomicBool::new(false);
    match conn.peer_addr() {
        Some(addr) => Identity::Client(addr.ip().to_string().into()),
        None => {
            if !REPORTED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "throttle: no ConnectInfo<SocketAddr> on the request, so every client shares one \
                     bucket; serve the app with `into_make_service_with_connect_info::<SocketAddr>()` \
                     or give the throttle an identifier"
                );
            }
            Identity::Client(Cow::Borrowed(ANONYMOUS))
        }
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Kind::PeerIp => "Identifier::peer_ip()",
            Kind::ClientIp(_) => "Identifier::client_ip(..)",
            Kind::Header(_) => "Identifier::header(..)",
            Kind::Composite(_) => "Identifier::composite(..)",
            Kind::Sync(_) => "Identifier::from_fn(..)",
            Kind::Async(_) => "Identifier::from_async_fn(..)",
        })
    }
}
