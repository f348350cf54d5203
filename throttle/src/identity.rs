//! Who is being limited: an [`Identifier`] turns a request into an [`Identity`]; a
//! [`ClientIp`] says where a request's client address comes from (the peer, or a
//! proxy's header from trusted proxies).
//!
//! Every id says what kind of identifier made it (`ip=`, `hdr=`, `ext=`, `fn=`,
//! `all=`), so ids of different kinds never meet in one bucket: a client sending
//! `X-Api-Key: 198.51.100.77` gets `hdr=198.51.100.77`, not the bucket of the client at
//! `ip=198.51.100.77`.

pub use crate::client_ip::{ClientIp, IpRange};

use crate::Connection;
use crate::backend::BoxFuture;
use crate::key::{self, KeyBuf};
use core::future::Future;
use http::{Extensions, HeaderName};
use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

/// The bucket owner a request counts against, or an exemption.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// Count against this client id (any text; it is escaped in keys). An
    /// [`Identifier`] prefixes the id its function returns with its kind.
    Client(Cow<'static, str>),
    /// Bypass the throttle entirely: no backend I/O, no headers.
    Exempted,
}

/// The identity that bypasses throttling.
pub const EXEMPTED: Identity = Identity::Exempted;

/// The client id shared by requests whose peer address is unknown (no axum
/// `ConnectInfo`). No other id has this form: every other one starts with its kind.
pub const ANONYMOUS: &str = "__anonymous__";

impl Identity {
    /// A client id.
    pub fn client(id: impl Into<Cow<'static, str>>) -> Self {
        Identity::Client(id.into())
    }
}

type SyncFn = dyn Fn(&Connection<'_>) -> Identity + Send + Sync;
type AsyncFn = dyn Fn(&Connection<'_>) -> BoxFuture<'static, Identity> + Send + Sync;
type ExtensionFn = dyn Fn(&Extensions) -> Option<String> + Send + Sync;

/// Turns a request into an [`Identity`]. The default is the peer IP address, with
/// IPv6 clients grouped by /64 (see [`ClientIp`]).
///
/// The client id in a key names its kind, so no two kinds share a bucket:
///
/// | identifier | client id |
/// | --- | --- |
/// | [`peer_ip`](Self::peer_ip), [`client_ip`](Self::client_ip) | `ip=203.0.113.5`, `ip=2001:db8:1:2::/64` |
/// | [`header`](Self::header) | `hdr=` and the value (`%` and bytes that are not UTF-8 as `%XX`) |
/// | [`extension`](Self::extension) | `ext=` and your id |
/// | [`from_fn`](Self::from_fn), [`from_async_fn`](Self::from_async_fn) | `fn=` and your id |
/// | [`composite`](Self::composite) | `all=` and the parts' ids joined by `,` (`%` and `,` in them as `%XX`) |
/// | any, without `ConnectInfo` | [`ANONYMOUS`] |
///
/// ```
/// use throttle::{identity::{EXEMPTED, Identifier, Identity}};
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
///     async move {
///         match token {
///             Some(t) => Identity::client(format!("user:{}", t.len())),
///             None => Identity::client("guest"),
///         }
///     }
/// });
/// # let _ = (by_key, by_lookup);
/// ```
#[derive(Clone)]
pub struct Identifier(Kind);

#[derive(Clone)]
enum Kind {
    /// The peer, or the client behind trusted proxies.
    Ip(Arc<ClientIp>),
    /// A header's value, else the peer.
    Header {
        name: HeaderName,
        peer: Arc<ClientIp>,
    },
    /// A request extension, else the peer.
    Extension {
        id: Arc<ExtensionFn>,
        peer: Arc<ClientIp>,
    },
    Composite(Arc<[Identifier]>),
    Sync(Arc<SyncFn>),
    Async(Arc<AsyncFn>),
}

impl Default for Identifier {
    fn default() -> Self {
        Self::peer_ip()
    }
}

impl Identifier {
    /// The peer IP from axum's `ConnectInfo<SocketAddr>`, with IPv6 clients grouped by
    /// /64 and IPv4-mapped addresses read as IPv4 (`ClientIp::peer()`). Without
    /// `ConnectInfo` (the app was not served with connect info) every request shares
    /// one [`ANONYMOUS`] bucket, and this is reported once in the log.
    pub fn peer_ip() -> Self {
        Self::client_ip(ClientIp::peer())
    }

    /// The client address from the one header your proxy writes, believed only from
    /// trusted proxies (see [`ClientIp`]); without `ConnectInfo`, the shared
    /// [`ANONYMOUS`] bucket.
    ///
    /// ```
    /// use throttle::{identity::{ClientIp, Identifier}};
    ///
    /// let behind_nginx = Identifier::client_ip(ClientIp::x_forwarded_for().trust("127.0.0.1")?);
    /// # let _ = behind_nginx;
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn client_ip(config: ClientIp) -> Self {
        Identifier(Kind::Ip(Arc::new(config)))
    }

    /// The value of a request header (an API key, a tenant id), falling back to the
    /// peer IP when the header is absent. The value is whatever the client sends:
    /// it picks the bucket, so this suits keys you check elsewhere, not anonymous
    /// traffic.
    ///
    /// ```
    /// let by_key = throttle::identity::Identifier::header("x-api-key")?;
    /// # let _ = by_key;
    /// # Ok::<(), throttle::headers::HeaderError>(())
    /// ```
    pub fn header(name: &str) -> Result<Self, crate::headers::HeaderError> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| crate::headers::HeaderError::InvalidName(name.to_string()))?;
        Ok(Identifier(Kind::Header { name, peer: Arc::new(ClientIp::peer()) }))
    }

    /// A request extension set by an earlier layer (e.g. the authenticated user id
    /// your auth middleware inserted), falling back to the peer IP when absent.
    ///
    /// ```
    /// #[derive(Clone)]
    /// struct UserId(u64);
    /// let by_user = throttle::identity::Identifier::extension(|user: &UserId| user.0.to_string());
    /// # let _ = by_user;
    /// ```
    pub fn extension<T: Send + Sync + 'static>(id: impl Fn(&T) -> String + Send + Sync + 'static) -> Self {
        let id = move |extensions: &Extensions| extensions.get::<T>().map(&id);
        Identifier(Kind::Extension { id: Arc::new(id), peer: Arc::new(ClientIp::peer()) })
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

    /// An asynchronous function: it reads what it needs from the request right away
    /// and returns a `'static` future (an `async move` block), e.g. a session lookup.
    pub fn from_async_fn<F, Fut>(f: F) -> Self
    where
        F: Fn(&Connection<'_>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Identity> + Send + 'static,
    {
        let boxed = move |conn: &Connection<'_>| -> BoxFuture<'static, Identity> { Box::pin(f(conn)) };
        Identifier(Kind::Async(Arc::new(boxed)))
    }

    /// Runs the identifier: the client id, prefixed with its kind (see the table above).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use axum::extract::ConnectInfo;
    /// use std::net::SocketAddr;
    /// use throttle::{AsConnection, identity::{Identifier, Identity}};
    ///
    /// let mut request = http::Request::new(());
    /// request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([198, 51, 100, 77], 4000))));
    /// request.headers_mut().insert("x-api-key", "198.51.100.77".parse().unwrap());
    /// let conn = request.as_connection();
    /// assert_eq!(Identifier::peer_ip().identify(&conn).await, Identity::client("ip=198.51.100.77"));
    /// let by_key = Identifier::header("x-api-key").unwrap();
    /// assert_eq!(by_key.identify(&conn).await, Identity::client("hdr=198.51.100.77"));
    /// # });
    /// ```
    pub async fn identify(&self, conn: &Connection<'_>) -> Identity {
        match &self.0 {
            Kind::Composite(parts) => {
                let mut joined = String::from(COMPOSITE);
                for (i, part) in parts.iter().enumerate() {
                    match Box::pin(part.identify(conn)).await {
                        Identity::Exempted => return Identity::Exempted,
                        Identity::Client(id) => {
                            if i > 0 {
                                joined.push(',');
                            }
                            push_part(&mut joined, &id);
                        }
                    }
                }
                Identity::Client(joined.into())
            }
            Kind::Async(f) => user_id(f(conn).await),
            // Every other kind answers at once.
            _ => self.client_id_now(conn).map_or(Identity::Exempted, ClientId::into_identity),
        }
    }
}

// Kind tags. None contains `=` before its end, so the tag of an id is unambiguous.
const IP: &str = "ip=";
const HEADER: &str = "hdr=";
const EXTENSION: &str = "ext=";
const FUNCTION: &str = "fn=";
const COMPOSITE: &str = "all=";

fn tagged(tag: &str, id: &str) -> Cow<'static, str> {
    let mut tagged = String::with_capacity(tag.len() + id.len());
    tagged.push_str(tag);
    tagged.push_str(id);
    Cow::Owned(tagged)
}

fn user_id(identity: Identity) -> Identity {
    match identity {
        Identity::Client(id) => Identity::Client(tagged(FUNCTION, &id)),
        Identity::Exempted => Identity::Exempted,
    }
}

/// The peer's address (or the client's behind trusted proxies), as bytes.
fn ip_client(config: &ClientIp, conn: &Connection<'_>) -> ClientId {
    let Some(peer) = conn.peer_addr() else {
        config.report_no_connect_info();
        return ClientId::Text(Cow::Borrowed(ANONYMOUS));
    };
    let ip = config.resolve(peer.ip(), conn.headers());
    let prefix = match ip {
        IpAddr::V6(_) => config.ipv6_prefix_len(),
        IpAddr::V4(_) => 32,
    };
    ClientId::Ip(IpId { ip, prefix })
}

/// What [`Identifier`] found, before any text is made: the throttle's key is built
/// from the address bytes straight into its buffer.
pub(crate) enum ClientId {
    Ip(IpId),
    /// A short id made on the stack (a header's value).
    Inline(InlineId),
    Text(Cow<'static, str>),
    Exempted,
}

impl ClientId {
    /// The id as text, as [`Identifier::identify`] gives it.
    fn into_identity(self) -> Identity {
        match self {
            ClientId::Ip(ip) => {
                let mut id = String::with_capacity(IP.len() + 43);
                ip.write_to(&mut id);
                Identity::Client(id.into())
            }
            ClientId::Inline(id) => Identity::Client(id.to_string().into()),
            ClientId::Text(id) => Identity::Client(id),
            ClientId::Exempted => Identity::Exempted,
        }
    }
}

/// An id on the stack: one that fits a readable key segment. Longer ids are digested
/// in keys, and take the general path.
pub(crate) type InlineId = arrayvec::ArrayString<{ key::MAX_SEGMENT_LEN }>;

/// `ip=` and an address (an IPv6 network with its prefix length when grouped).
#[derive(Debug, Clone, Copy)]
pub(crate) struct IpId {
    ip: IpAddr,
    prefix: u8,
}

impl IpId {
    /// The id as text, as [`Identifier::identify`] gives it.
    fn write_to(self, out: &mut impl fmt::Write) {
        let _ = out.write_str(IP);
        let _ = match self.ip {
            IpAddr::V4(v4) => write_v4(out, v4),
            IpAddr::V6(network) if self.prefix < 128 => write!(out, "{network}/{}", self.prefix),
            IpAddr::V6(v6) => write!(out, "{v6}"),
        };
    }

    /// The exact form of this client's key in `space` (an IPv4 client's).
    pub(crate) fn exact(self, space: u64) -> Option<crate::backend::exact::Exact> {
        match self.ip {
            IpAddr::V4(v4) => Some(crate::backend::exact::Exact::new(space, v4)),
            IpAddr::V6(_) => None,
        }
    }

    /// The id as a key segment: escaped (`:` as `%3A`), at most 60 bytes, so it is
    /// always the readable segment [`key`](crate::key) would make of the text.
    pub(crate) fn write_segment(self, key: &mut KeyBuf) {
        match self.ip {
            // Digits and dots: nothing to escape.
            IpAddr::V4(v4) => {
                key.push_str(IP);
                dotted(v4, |c| key.push(c));
            }
            IpAddr::V6(_) => self.write_to(&mut EscapedSegment(key)),
        }
    }
}

/// Dotted decimal without the formatting machinery.
fn write_v4(out: &mut impl fmt::Write, ip: std::net::Ipv4Addr) -> fmt::Result {
    let mut result = Ok(());
    dotted(ip, |c| result = result.and_then(|()| out.write_char(c)));
    result
}

/// The characters of `ip` in dotted decimal, digits made by hand: a key takes them one
/// by one, with no text in between.
pub(crate) fn dotted(ip: std::net::Ipv4Addr, mut push: impl FnMut(char)) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            push('.');
        }
        if octet >= 100 {
            push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            push(char::from(b'0' + octet / 10 % 10));
        }
        push(char::from(b'0' + octet % 10));
    }
}

/// Writes text into a key, escaped as a key segment.
struct EscapedSegment<'k>(&'k mut KeyBuf);

impl fmt::Write for EscapedSegment<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        key::push_escaped(self.0, text);
        Ok(())
    }
}

impl Identifier {
    /// [`identify`](Self::identify) without making text for a peer address.
    pub(crate) async fn client_id(&self, conn: &Connection<'_>) -> ClientId {
        match self.client_id_now(conn) {
            Some(id) => id,
            None => match self.identify(conn).await {
                Identity::Client(id) => ClientId::Text(id),
                Identity::Exempted => ClientId::Exempted,
            },
        }
    }

    /// [`client_id`](Self::client_id) when no future has to be awaited: `None` for an
    /// async function, or a composite (whose parts may be one).
    pub(crate) fn client_id_now(&self, conn: &Connection<'_>) -> Option<ClientId> {
        let id = match &self.0 {
            Kind::Ip(config) => ip_client(config, conn),
            Kind::Header { name, peer } => match conn.headers().get(name) {
                None => ip_client(peer, conn),
                Some(value) => match header_id_inline(value.as_bytes()) {
                    Some(id) => ClientId::Inline(id),
                    None => ClientId::Text(tagged(HEADER, &header_text(value.as_bytes()))),
                },
            },
            Kind::Extension { id, peer } => match id(conn.extensions()) {
                Some(id) => ClientId::Text(tagged(EXTENSION, &id)),
                None => ip_client(peer, conn),
            },
            Kind::Sync(f) => match user_id(f(conn)) {
                Identity::Client(id) => ClientId::Text(id),
                Identity::Exempted => ClientId::Exempted,
            },
            Kind::Composite(_) | Kind::Async(_) => return None,
        };
        Some(id)
    }
}

/// Header bytes as text, one-to-one: valid UTF-8 stays, `%` and every byte that is not
/// part of valid UTF-8 become `%XX`, so `key\xFE` and `key\xFF` stay two clients.
fn header_text(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    // Writing to a String cannot fail.
    let _ = write_header_text(&mut text, bytes);
    text
}

/// [`header_text`] into any writer: runs of valid text whole, `%` and invalid bytes as
/// `%XX`.
fn write_header_text(out: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    for chunk in bytes.utf8_chunks() {
        for (i, piece) in chunk.valid().split('%').enumerate() {
            if i > 0 {
                out.write_str("%25")?;
            }
            out.write_str(piece)?;
        }
        for byte in chunk.invalid() {
            write!(out, "%{byte:02X}")?;
        }
    }
    Ok(())
}

/// The header id (`hdr=` and the value as [`header_text`]) on the stack, when it fits.
fn header_id_inline(bytes: &[u8]) -> Option<InlineId> {
    let mut id = InlineId::new();
    id.write_str(HEADER).ok()?;
    write_header_text(&mut id, bytes).ok()?;
    Some(id)
}

/// One composite part, with the separator and the escape character escaped, so the
/// join is one-to-one: `("a,b", "c")` and `("a", "b,c")` differ.
fn push_part(joined: &mut String, part: &str) {
    for c in part.chars() {
        match c {
            '%' | ',' => push_percent(joined, c as u8),
            c => joined.push(c),
        }
    }
}

fn push_percent(text: &mut String, byte: u8) {
    let _ = write!(text, "%{byte:02X}");
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Ip(config) => f.debug_tuple("Identifier::client_ip").field(config).finish(),
            Kind::Header { name, .. } => f.debug_tuple("Identifier::header").field(name).finish(),
            Kind::Extension { .. } => f.write_str("Identifier::extension(..)"),
            Kind::Composite(parts) => f.debug_tuple("Identifier::composite").field(parts).finish(),
            Kind::Sync(_) => f.write_str("Identifier::from_fn(..)"),
            Kind::Async(_) => f.write_str("Identifier::from_async_fn(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_text_is_one_to_one_on_bytes() {
        assert_eq!(header_text(b"key\xFE"), "key%FE");
        assert_eq!(header_text(b"key\xFF"), "key%FF");
        assert_eq!(header_text(b"key%FF"), "key%25FF");
        assert_eq!(header_text("é 1:2".as_bytes()), "é 1:2");
    }

    fn unescape(text: &str) -> Vec<u8> {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    #[test]
    fn dotted_quads_are_written_as_std_writes_them() {
        // Every octet value, in every position.
        for octet in 0..=255u8 {
            let ip = std::net::Ipv4Addr::new(octet, 255 - octet, octet / 3, octet.wrapping_mul(7));
            let mut text = String::new();
            write_v4(&mut text, ip).unwrap();
            assert_eq!(text, ip.to_string());
        }
    }

    proptest! {
        /// The key a throttle builds from an address's bytes is the key of its id as
        /// text: the fast path and `identify` never name two buckets.
        #[test]
        fn an_address_segment_is_the_segment_of_its_text(bytes in any::<[u8; 16]>(), v4 in any::<bool>(), prefix in 0u8..=128) {
            let id = if v4 {
                IpId { ip: IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]]), prefix: 32 }
            } else {
                IpId { ip: IpAddr::from(bytes), prefix }
            };
            let mut text = String::new();
            id.write_to(&mut text);
            prop_assert_eq!(&text[..3], "ip=");
            let mut fast = KeyBuf::new();
            let scope = key::ScopeSegment::Parts(&["default"]);
            key::build_into(&mut fast, "ns:u:", key::ClientSegment::Readable(&|k| id.write_segment(k)), scope);
            prop_assert_eq!(fast, key::build("ns:u:", &text, &["default"]));
        }

        /// The header id made on the stack is the id `identify` makes, and a value too
        /// long for the stack takes the general path.
        #[test]
        fn an_inline_header_id_is_the_identified_id(bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 80..300),
        ]) {
            let general = tagged(HEADER, &header_text(&bytes));
            match header_id_inline(&bytes) {
                Some(inline) => prop_assert_eq!(inline.as_str(), &*general),
                None => prop_assert!(general.len() > key::MAX_SEGMENT_LEN, "{} bytes fit", general.len()),
            }
        }

        #[test]
        fn header_text_decodes_back(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            prop_assert_eq!(unescape(&header_text(&bytes)), bytes);
        }

        #[test]
        fn composite_joins_are_one_to_one(a in "[a-c,%=]{0,4}", b in "[a-c,%=]{0,4}", c in "[a-c,%=]{0,4}", d in "[a-c,%=]{0,4}") {
            prop_assume!((&a, &b) != (&c, &d));
            let join = |x: &str, y: &str| {
                let mut joined = String::new();
                push_part(&mut joined, x);
                joined.push(',');
                push_part(&mut joined, y);
                joined
            };
            prop_assert_ne!(join(&a, &b), join(&c, &d));
        }
    }
}
