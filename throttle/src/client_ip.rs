//! [`ClientIp`]: the client address, read from the one header your proxy writes.
//!
//! A header is believed only when the socket peer is a trusted proxy, and only the
//! header named in the configuration is read: a proxy that writes `X-Forwarded-For`
//! passes a client's own `Forwarded` or `X-Real-IP` through untouched, so reading any
//! other header would let the client choose its identity.

mod forwarded;
mod range;
mod report;

pub use range::IpRange;
pub(crate) use range::canonical;

use crate::ConfigError;
use http::{HeaderMap, HeaderName};
use range::mask_v6;
use report::Reports;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

/// One bucket per IPv6 /64 unless told otherwise; the reasons are in [`ClientIp`]'s docs.
const DEFAULT_IPV6_PREFIX: u8 = 64;

/// Where the client address comes from, and which proxies to believe.
///
/// Choose the one source your proxy writes, and trust the proxy's addresses:
///
/// | source | reads | for |
/// | --- | --- | --- |
/// | [`peer`](Self::peer) (the default) | the socket peer | no proxy |
/// | [`x_forwarded_for`](Self::x_forwarded_for) | `X-Forwarded-For`, right to left | nginx `$proxy_add_x_forwarded_for`, AWS ALB, most ingresses |
/// | [`forwarded`](Self::forwarded) | RFC 7239 `Forwarded` `for=`, right to left | proxies that write `Forwarded` |
/// | [`x_real_ip`](Self::x_real_ip) | `X-Real-IP`, one address | nginx `proxy_set_header X-Real-IP $remote_addr` |
/// | [`header`](Self::header) | a named one-address header | `CF-Connecting-IP`, `Fly-Client-IP`, `True-Client-IP` |
///
/// ```
/// use throttle::identity::{ClientIp, Identifier};
///
/// // Behind nginx on the same host and the load balancers in 10.0.0.0/8.
/// let client_ip = ClientIp::x_forwarded_for().trust("127.0.0.1")?.trust("10.0.0.0/8")?;
/// let by_client = Identifier::client_ip(client_ip);
///
/// // Behind Cloudflare (trust its published ranges).
/// let cloudflare = ClientIp::header("cf-connecting-ip")?.trust("173.245.48.0/20")?.trust("2400:cb00::/32")?;
/// # let _ = (by_client, cloudflare);
/// # Ok::<(), throttle::ConfigError>(())
/// ```
///
/// How the address is found:
/// - The header is read only when the socket peer is in a trusted range; from any
///   other peer it is ignored and the peer is the client. No other header is ever
///   read, and nothing falls back to one.
/// - A list (`X-Forwarded-For`, `Forwarded`) is walked from the right, the hop nearest
///   to us, past trusted addresses; the first untrusted one is the client. Several
///   header lines form one list, in order. Whatever a client writes itself sits to the
///   left of that address and is never reached.
/// - The walk stops at the first hop that is not an address (`unknown`, an obfuscated
///   `_node`, garbage, a malformed `Forwarded` element): the client is then the last
///   trusted address reached (the proxy that could not name its client, or the peer),
///   never anything to the left of it. When every hop is trusted, the client is the
///   leftmost one.
/// - A one-address header (`X-Real-IP`, [`header`](Self::header)) is the client as it
///   stands (its last element if a proxy appended to it); the peer if it does not parse.
/// - Headers are parsed as bytes, so a non-ASCII byte in a client-written prefix does
///   not cost the address a proxy appended on the same line. Work is linear in the
///   header size.
/// - IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are IPv4, in the peer, in hops and
///   in ranges.
/// - IPv6 clients are grouped by their /64 network, one bucket per site: a /64 is the
///   smallest network a site is given (SLAAC and privacy addresses rotate inside it),
///   so one host cannot escape its bucket by changing addresses, and two subscribers
///   are never merged, since ISPs, mobile carriers (a /64 per device) and hosting
///   providers assign at least a /64 each; a /56 would merge neighbours where /64s are
///   handed out of a shared /56. A site holding a /56 or /48 can still rotate /64s:
///   tighten with [`ipv6_prefix`](Self::ipv6_prefix) if that is your threat.
///
/// Misconfiguration is reported once per `ClientIp` (and its clones) with
/// `tracing::warn!`: the source header arriving from a peer that is not trusted, a
/// trusted proxy that sent no source header, and a request without axum's
/// `ConnectInfo`.
#[derive(Clone)]
pub struct ClientIp {
    source: Source,
    trusted: Vec<IpRange>,
    ipv6_prefix: u8,
    reports: Arc<Reports>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Peer,
    XForwardedFor,
    Forwarded,
    /// One address per request, in this header.
    Single(HeaderName),
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static FORWARDED: HeaderName = http::header::FORWARDED;

impl Source {
    fn header(&self) -> Option<&HeaderName> {
        match self {
            Source::Peer => None,
            Source::XForwardedFor => Some(&X_FORWARDED_FOR),
            Source::Forwarded => Some(&FORWARDED),
            Source::Single(name) => Some(name),
        }
    }
}

impl Default for ClientIp {
    fn default() -> Self {
        Self::with_source(Source::Peer)
    }
}

impl ClientIp {
    fn with_source(source: Source) -> Self {
        Self { source, trusted: Vec::new(), ipv6_prefix: DEFAULT_IPV6_PREFIX, reports: Arc::default() }
    }

    /// No proxy: the socket peer is the client (what [`Identifier::peer_ip`] uses).
    ///
    /// ```
    /// // The peer, with IPv6 clients grouped by /56 instead of /64.
    /// let by_site = throttle::identity::Identifier::client_ip(throttle::identity::ClientIp::peer().ipv6_prefix(56)?);
    /// # let _ = by_site;
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    ///
    /// [`Identifier::peer_ip`]: crate::Identifier::peer_ip
    pub fn peer() -> Self {
        Self::default()
    }

    /// The rightmost untrusted address of `X-Forwarded-For`: nginx with
    /// `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for`, an AWS ALB, and
    /// most ingresses.
    ///
    /// ```
    /// let client_ip = throttle::identity::ClientIp::x_forwarded_for().trust("10.0.0.0/8")?;
    /// let headers = http::HeaderMap::from_iter([(
    ///     http::HeaderName::from_static("x-forwarded-for"),
    ///     http::HeaderValue::from_static("6.6.6.6, 198.51.100.7, 10.1.1.1"), // 6.6.6.6: client-written
    /// )]);
    /// assert_eq!(client_ip.resolve("10.0.0.2".parse().unwrap(), &headers), "198.51.100.7".parse::<std::net::IpAddr>().unwrap());
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn x_forwarded_for() -> Self {
        Self::with_source(Source::XForwardedFor)
    }

    /// The rightmost untrusted `for=` of RFC 7239 `Forwarded`, quoted strings and all.
    ///
    /// ```
    /// let client_ip = throttle::identity::ClientIp::forwarded().trust("10.0.0.0/8")?;
    /// let headers = http::HeaderMap::from_iter([(
    ///     http::header::FORWARDED,
    ///     http::HeaderValue::from_static(r#"for="[2001:db8::7]:4711";proto=https, for=10.1.1.1"#),
    /// )]);
    /// assert_eq!(client_ip.resolve("10.0.0.2".parse().unwrap(), &headers), "2001:db8::".parse::<std::net::IpAddr>().unwrap());
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn forwarded() -> Self {
        Self::with_source(Source::Forwarded)
    }

    /// The address in `X-Real-IP`: nginx with `proxy_set_header X-Real-IP $remote_addr`.
    ///
    /// ```
    /// let client_ip = throttle::identity::ClientIp::x_real_ip().trust("127.0.0.1")?;
    /// # let _ = client_ip;
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn x_real_ip() -> Self {
        Self::with_source(Source::Single(HeaderName::from_static("x-real-ip")))
    }

    /// The address in a header of your proxy's that holds exactly one:
    /// `CF-Connecting-IP` (Cloudflare), `Fly-Client-IP` (Fly.io), `True-Client-IP`
    /// (Akamai, Cloudflare Enterprise), or any other name.
    ///
    /// ```
    /// // Trust the range Fly's proxy connects from: the peer your app sees.
    /// let fly = throttle::identity::ClientIp::header("fly-client-ip")?.trust("172.16.0.0/12")?;
    /// assert!(throttle::identity::ClientIp::header("not a header name").is_err());
    /// # let _ = fly;
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn header(name: &str) -> Result<Self, ConfigError> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| crate::headers::HeaderError::InvalidName(name.to_string()))?;
        Ok(Self::with_source(Source::Single(name)))
    }

    /// Trusts a proxy address or range (`"10.0.0.0/8"`, `"::1"`): its source header is
    /// believed, and a chain is walked past it. Without one, no header is ever read.
    /// [`peer`](Self::peer) reads no header, so trusting a proxy there is an error.
    pub fn trust(mut self, range: &str) -> Result<Self, ConfigError> {
        if self.source == Source::Peer {
            return Err(ConfigError::InvalidIpRange {
                range: range.to_string(),
                reason: "`ClientIp::peer()` reads no header, so there is no proxy to trust; choose the header \
                         your proxy writes (`ClientIp::x_forwarded_for()`, ..)"
                    .to_string(),
            });
        }
        self.trusted.push(range.parse()?);
        Ok(self)
    }

    /// Groups IPv6 clients by their first `bits` bits, 1 to 128 (128: no grouping).
    /// The default is 64 (see above for why).
    pub fn ipv6_prefix(mut self, bits: u8) -> Result<Self, ConfigError> {
        if !(1..=128).contains(&bits) {
            return Err(ConfigError::InvalidIpRange {
                range: format!("/{bits}"),
                reason: "an IPv6 prefix is 1 to 128 bits".to_string(),
            });
        }
        self.ipv6_prefix = bits;
        Ok(self)
    }

    /// The client for a request from `peer` with `headers`: an IPv4 address, or the
    /// IPv6 network of the configured prefix (`2001:db8:1:2::` for /64).
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        match self.client(canonical(peer), headers) {
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask_v6(v6, self.ipv6_prefix))),
            v4 => v4,
        }
    }

    /// How many leading bits of an IPv6 client are kept.
    pub(crate) fn ipv6_prefix_len(&self) -> u8 {
        self.ipv6_prefix
    }

    pub(crate) fn report_no_connect_info(&self) {
        self.reports.no_connect_info();
    }

    fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let Some(name) = self.source.header() else { return peer };
        let sent = headers.contains_key(name);
        if !self.is_trusted(peer) {
            if sent {
                self.reports.untrusted_peer(peer, name);
            }
            return peer;
        }
        if !sent {
            self.reports.silent_proxy(peer, name);
            return peer;
        }
        match &self.source {
            Source::Peer => peer,
            Source::XForwardedFor => {
                self.walk(peer, forwarded::elements_from_right(headers, name).map(forwarded::parse_hop))
            }
            Source::Forwarded => self.walk(peer, forwarded::forwarded_for(headers).into_iter().rev()),
            Source::Single(name) => {
                forwarded::elements_from_right(headers, name).next().and_then(forwarded::parse_hop).unwrap_or(peer)
            }
        }
    }

    /// From the trusted `peer` leftwards, nearest hop first: the first untrusted address,
    /// or the last address reached when a hop is no address or the chain ends.
    fn walk(&self, peer: IpAddr, hops: impl Iterator<Item = Option<IpAddr>>) -> IpAddr {
        let mut reached = peer;
        for hop in hops {
            match hop {
                Some(ip) if self.is_trusted(ip) => reached = ip,
                Some(ip) => return ip,
                None => return reached,
            }
        }
        reached
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|range| range.contains(ip))
    }
}

impl fmt::Debug for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIp")
            .field("source", &self.source)
            .field("trusted", &self.trusted)
            .field("ipv6_prefix", &self.ipv6_prefix)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), http::HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    /// (what the case shows, socket peer, request headers, expected client).
    type Case = (&'static str, &'static str, &'static [(&'static str, &'static [u8])], &'static str);

    fn check(client_ip: &ClientIp, cases: &[Case]) {
        for (case, peer, pairs, expected) in cases {
            let got = client_ip.resolve(peer.parse().unwrap(), &headers(pairs));
            assert_eq!(got, expected.parse::<IpAddr>().unwrap(), "{case}");
        }
    }

    #[test]
    fn x_forwarded_for_resolution() {
        let proxies = ClientIp::x_forwarded_for().trust("10.0.0.0/8").unwrap().trust("2001:db8:ffff::/48").unwrap();
        #[rustfmt::skip]
        check(&proxies, &[
            ("untrusted peer: forged XFF ignored", "203.0.113.9", &[("x-forwarded-for", b"1.1.1.1")], "203.0.113.9"),
            ("one hop", "10.0.0.1", &[("x-forwarded-for", b"198.51.100.7")], "198.51.100.7"),
            ("several trusted hops", "10.0.0.1", &[("x-forwarded-for", b"198.51.100.7, 10.1.1.1, 10.2.2.2")], "198.51.100.7"),
            ("client-forged left part never reached", "10.0.0.1", &[("x-forwarded-for", b"6.6.6.6, 198.51.100.7, 10.1.1.1")], "198.51.100.7"),
            ("empty elements are no hops", "10.0.0.1", &[("x-forwarded-for", b"6.6.6.6, 198.51.100.7, , 10.1.1.1,")], "198.51.100.7"),
            ("unparseable hop stops the walk at the last trusted", "10.0.0.1", &[("x-forwarded-for", b"6.6.6.6, garbage, 10.1.1.1")], "10.1.1.1"),
            ("unparseable nearest hop: the peer", "10.0.0.1", &[("x-forwarded-for", b"6.6.6.6, 192.0.2.9:99999")], "10.0.0.1"),
            ("zone id is no address", "10.0.0.1", &[("x-forwarded-for", b"6.6.6.6, fe80::1%eth0")], "10.0.0.1"),
            ("all hops trusted: the leftmost", "10.0.0.1", &[("x-forwarded-for", b"10.1.1.1, 10.2.2.2")], "10.1.1.1"),
            ("trusted proxy without the header: the peer", "10.0.0.1", &[], "10.0.0.1"),
            ("several lines join in order", "10.0.0.1", &[("x-forwarded-for", b"198.51.100.7"), ("x-forwarded-for", b"10.9.9.9")], "198.51.100.7"),
            ("non-ASCII client prefix keeps the appended address", "10.0.0.1", &[("x-forwarded-for", b"\xff\xfe6.6.6.6, 198.51.100.7")], "198.51.100.7"),
            ("other headers are never read", "10.0.0.1", &[("forwarded", b"for=6.6.6.6"), ("x-real-ip", b"6.6.6.6"), ("x-forwarded-for", b"198.51.100.7")], "198.51.100.7"),
            ("no fallback to other headers", "10.0.0.1", &[("forwarded", b"for=6.6.6.6"), ("x-real-ip", b"6.6.6.6")], "10.0.0.1"),
            ("IPv4 with port", "10.0.0.1", &[("x-forwarded-for", b"198.51.100.7:5555")], "198.51.100.7"),
            ("IPv6 grouped by /64", "10.0.0.1", &[("x-forwarded-for", b"[2001:db8:1:2:3:4:5:6]:443")], "2001:db8:1:2::"),
            ("IPv4-mapped hop is IPv4", "10.0.0.1", &[("x-forwarded-for", b"::ffff:198.51.100.7")], "198.51.100.7"),
            ("trusted IPv6 proxy range", "2001:db8:ffff::1", &[("x-forwarded-for", b"198.51.100.7")], "198.51.100.7"),
            ("IPv4-mapped peer is IPv4", "::ffff:10.0.0.1", &[("x-forwarded-for", b"198.51.100.7")], "198.51.100.7"),
        ]);
    }

    #[test]
    fn forwarded_resolution() {
        let proxies = ClientIp::forwarded().trust("10.0.0.0/8").unwrap();
        #[rustfmt::skip]
        check(&proxies, &[
            ("quoted IPv6 with port", "10.0.0.1", &[("forwarded", b"for=\"[2001:db8::7]:4711\";proto=https")], "2001:db8::"),
            ("several elements", "10.0.0.1", &[("forwarded", b"for=198.51.100.7, for=10.3.3.3;by=10.0.0.1")], "198.51.100.7"),
            ("quoted separators are no separators", "10.0.0.1", &[("forwarded", b"for=198.51.100.7;host=\"x;for=6.6.6.6,for=7.7.7.7\"")], "198.51.100.7"),
            ("unknown stops the walk", "10.0.0.1", &[("forwarded", b"for=6.6.6.6, for=unknown, for=10.3.3.3")], "10.3.3.3"),
            ("obfuscated stops the walk", "10.0.0.1", &[("forwarded", b"for=6.6.6.6, for=_hidden")], "10.0.0.1"),
            ("client's open quote cannot reach the proxy's line", "10.0.0.1", &[("forwarded", b"for=\"6.6.6.6"), ("forwarded", b"for=198.51.100.7")], "198.51.100.7"),
            ("client's open quote on the proxy's line: the peer", "10.0.0.1", &[("forwarded", b"for=\"6.6.6.6, for=198.51.100.7")], "10.0.0.1"),
            ("XFF is never read", "10.0.0.1", &[("x-forwarded-for", b"6.6.6.6")], "10.0.0.1"),
        ]);
    }

    #[test]
    fn one_address_headers() {
        let real_ip = ClientIp::x_real_ip().trust("10.0.0.0/8").unwrap();
        let cloudflare = ClientIp::header("CF-Connecting-IP").unwrap().trust("10.0.0.0/8").unwrap();
        #[rustfmt::skip]
        check(&real_ip, &[
            ("the address", "10.0.0.1", &[("x-real-ip", b"198.51.100.7")], "198.51.100.7"),
            ("untrusted peer", "203.0.113.9", &[("x-real-ip", b"198.51.100.7")], "203.0.113.9"),
            ("XFF is never read", "10.0.0.1", &[("x-forwarded-for", b"6.6.6.6")], "10.0.0.1"),
            ("the last element when appended to", "10.0.0.1", &[("x-real-ip", b"6.6.6.6"), ("x-real-ip", b"198.51.100.7")], "198.51.100.7"),
            ("garbage: the peer", "10.0.0.1", &[("x-real-ip", b"6.6.6.6 x")], "10.0.0.1"),
        ]);
        #[rustfmt::skip]
        check(&cloudflare, &[
            ("the address", "10.0.0.1", &[("cf-connecting-ip", b"2001:db8::9")], "2001:db8::"),
            ("X-Real-IP is never read", "10.0.0.1", &[("x-real-ip", b"6.6.6.6")], "10.0.0.1"),
        ]);
    }

    #[test]
    fn ipv6_prefix_is_configurable() {
        let peer = ClientIp::peer();
        let at = |c: &ClientIp, ip: &str| c.resolve(ip.parse().unwrap(), &HeaderMap::new());
        assert_eq!(at(&peer, "2001:db8:1:2:aaaa::1"), at(&peer, "2001:db8:1:2:bbbb::9"));
        assert_ne!(at(&peer, "2001:db8:1:2::1"), at(&peer, "2001:db8:1:3::1"));
        let site = ClientIp::peer().ipv6_prefix(56).unwrap();
        assert_eq!(at(&site, "2001:db8:1:2::1"), at(&site, "2001:db8:1:3::1"));
        let exact = ClientIp::peer().ipv6_prefix(128).unwrap();
        assert_eq!(at(&exact, "2001:db8::1"), "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(at(&peer, "192.0.2.1"), "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(at(&peer, "::ffff:192.0.2.1"), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn bad_configuration_is_an_error() {
        for bad in ["10.0.0.0/33", "nope", "::/129", "10.0.0.0/x"] {
            assert!(ClientIp::x_forwarded_for().trust(bad).is_err(), "{bad}");
        }
        assert!(ClientIp::peer().trust("10.0.0.0/8").is_err(), "the peer has no proxy to trust");
        assert!(ClientIp::peer().ipv6_prefix(0).is_err());
        assert!(ClientIp::peer().ipv6_prefix(129).is_err());
        assert!(ClientIp::header("bad name").is_err());
    }
}
