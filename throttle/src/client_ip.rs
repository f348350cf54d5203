//! [`ClientIp`]: the client address behind trusted reverse proxies.
//!
//! Forwarded headers are only believed when the socket peer is a trusted proxy, and a
//! chain is walked from the right (the hop nearest to us) to the first address that is
//! not a trusted proxy: the client as seen by the last proxy we trust. Anything a
//! client writes into those headers itself sits further left and is never reached.

use crate::ConfigError;
use http::HeaderMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address range such as `10.0.0.0/8`, `fd00::/8` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    addr: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_v4(ip, self.prefix) == mask_v4(net, self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_v6(ip, self.prefix) == mask_v6(net, self.prefix),
            _ => false,
        }
    }
}

impl FromStr for IpRange {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| ConfigError::InvalidIpRange { range: s.to_string(), reason: reason.to_string() };
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s.trim(), None),
        };
        let addr = canonical(IpAddr::from_str(addr).map_err(|_| invalid("not an IP address"))?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| invalid("prefix length out of range"))?
            }
        };
        Ok(IpRange { addr, prefix })
    }
}

fn mask_v4(ip: Ipv4Addr, prefix: u8) -> u32 {
    let bits = u32::from(ip);
    if prefix == 0 { 0 } else { bits & (u32::MAX << (32 - u32::from(prefix))) }
}

fn mask_v6(ip: Ipv6Addr, prefix: u8) -> u128 {
    let bits = u128::from(ip);
    if prefix == 0 { 0 } else { bits & (u128::MAX << (128 - u32::from(prefix))) }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are the IPv4 client they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// How to find the client address: which proxies to trust, and whether to group IPv6
/// clients by prefix.
///
/// ```
/// use throttle::{ClientIp, Identifier};
///
/// let client_ip = ClientIp::new()
///     .trust("10.0.0.0/8")?   // the load balancers
///     .trust("127.0.0.1")?
///     .ipv6_prefix(64)?;      // one bucket per /64: one IPv6 host has many addresses
/// let identifier = Identifier::client_ip(client_ip);
/// # let _ = identifier;
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ClientIp {
    trusted: Vec<IpRange>,
    ipv6_prefix: Option<u8>,
}

impl ClientIp {
    /// Trusts no proxy: the peer address is the client.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts a proxy address or range (`"10.0.0.0/8"`, `"::1"`).
    pub fn trust(mut self, range: &str) -> Result<Self, ConfigError> {
        self.trusted.push(range.parse()?);
        Ok(self)
    }

    /// Groups IPv6 clients by their first `bits` bits (1–128).
    pub fn ipv6_prefix(mut self, bits: u8) -> Result<Self, ConfigError> {
        if !(1..=128).contains(&bits) {
            return Err(ConfigError::InvalidIpRange {
                range: format!("/{bits}"),
                reason: "an IPv6 prefix is 1 to 128 bits".to_string(),
            });
        }
        self.ipv6_prefix = Some(bits);
        Ok(self)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|range| range.contains(ip))
    }

    /// The client address for a request from `peer` with `headers`.
    ///
    /// Headers are read only when `peer` is trusted, in this order: `Forwarded`
    /// (RFC 7239, its `for=` parameters), `X-Forwarded-For`, `X-Real-IP`. A chain is
    /// walked right to left to the first untrusted address; malformed entries are
    /// skipped; a chain of only trusted hops falls through to the next header, and
    /// finally to the peer.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        let client = if self.is_trusted(peer) { self.forwarded_client(headers).unwrap_or(peer) } else { peer };
        self.group(client)
    }

    fn forwarded_client(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let forwarded = values(headers, "forwarded")
            .flat_map(|v| v.split([',', ';']))
            .filter_map(|pair| pair.split_once('='))
            .filter(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
            .map(|(_, value)| value)
            .collect::<Vec<_>>();
        let x_forwarded_for = values(headers, "x-forwarded-for").flat_map(|v| v.split(',')).collect::<Vec<_>>();
        let x_real_ip = values(headers, "x-real-ip").collect::<Vec<_>>();
        [forwarded, x_forwarded_for, x_real_ip].into_iter().find_map(|chain| self.first_untrusted(&chain))
    }

    fn first_untrusted(&self, chain: &[&str]) -> Option<IpAddr> {
        chain.iter().rev().filter_map(|entry| parse_hop(entry)).find(|ip| !self.is_trusted(*ip))
    }

    fn group(&self, ip: IpAddr) -> IpAddr {
        match (ip, self.ipv6_prefix) {
            (IpAddr::V6(v6), Some(bits)) => IpAddr::V6(Ipv6Addr::from(mask_v6(v6, bits))),
            _ => ip,
        }
    }
}

fn values<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok())
}

/// One hop: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:443`, optionally
/// quoted (`Forwarded`). Obfuscated (`_hidden`) and `unknown` hops are skipped.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim().trim_matches('"');
    if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(|port| port.parse::<u16>().is_ok())) {
            return None;
        }
        return inside.parse::<Ipv6Addr>().ok().map(|ip| canonical(IpAddr::V6(ip)));
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    let (host, port) = entry.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    /// (what the case shows, socket peer, request headers, expected client).
    type Case = (&'static str, &'static str, &'static [(&'static str, &'static str)], &'static str);

    #[test]
    fn client_ip_resolution_table() {
        let proxies = ClientIp::new().trust("10.0.0.0/8").unwrap().trust("2001:db8:ffff::/48").unwrap();
        #[rustfmt::skip]
        let cases: &[Case] = &[
            // (case, peer, headers, expected client)
            ("untrusted peer, forged XFF ignored", "203.0.113.9", &[("x-forwarded-for", "1.1.1.1")], "203.0.113.9"),
            ("untrusted peer, forged Forwarded ignored", "203.0.113.9", &[("forwarded", "for=1.1.1.1")], "203.0.113.9"),
            ("untrusted peer, forged X-Real-IP ignored", "203.0.113.9", &[("x-real-ip", "1.1.1.1")], "203.0.113.9"),
            ("trusted peer, one hop", "10.0.0.1", &[("x-forwarded-for", "198.51.100.7")], "198.51.100.7"),
            ("trusted chain of several hops", "10.0.0.1", &[("x-forwarded-for", "198.51.100.7, 10.1.1.1, 10.2.2.2")], "198.51.100.7"),
            ("client-forged left part never reached", "10.0.0.1", &[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")], "198.51.100.7"),
            ("malformed entries skipped", "10.0.0.1", &[("x-forwarded-for", "198.51.100.7, garbage, , 10.1.1.1")], "198.51.100.7"),
            ("all hops trusted: the peer", "10.0.0.1", &[("x-forwarded-for", "10.1.1.1, 10.2.2.2")], "10.0.0.1"),
            ("no headers: the peer", "10.0.0.1", &[], "10.0.0.1"),
            ("several XFF lines join in order", "10.0.0.1", &[("x-forwarded-for", "198.51.100.7"), ("x-forwarded-for", "10.9.9.9")], "198.51.100.7"),
            ("IPv4 with port", "10.0.0.1", &[("x-forwarded-for", "198.51.100.7:5555")], "198.51.100.7"),
            ("IPv6 bare", "10.0.0.1", &[("x-forwarded-for", "2001:db8::7")], "2001:db8::7"),
            ("IPv6 with brackets and port", "10.0.0.1", &[("x-forwarded-for", "[2001:db8::7]:443")], "2001:db8::7"),
            ("Forwarded quoted IPv6 with port", "10.0.0.1", &[("forwarded", "for=\"[2001:db8::7]:4711\";proto=https")], "2001:db8::7"),
            ("Forwarded several elements", "10.0.0.1", &[("forwarded", "for=198.51.100.7, for=10.3.3.3;by=10.0.0.1")], "198.51.100.7"),
            ("Forwarded case-insensitive, obfuscated skipped", "10.0.0.1", &[("forwarded", "For=198.51.100.7, for=_hidden, for=unknown")], "198.51.100.7"),
            ("Forwarded wins over XFF", "10.0.0.1", &[("x-forwarded-for", "192.0.2.1"), ("forwarded", "for=198.51.100.7")], "198.51.100.7"),
            ("XFF wins over X-Real-IP", "10.0.0.1", &[("x-real-ip", "192.0.2.2"), ("x-forwarded-for", "198.51.100.7")], "198.51.100.7"),
            ("X-Real-IP alone", "10.0.0.1", &[("x-real-ip", "198.51.100.7")], "198.51.100.7"),
            ("Forwarded all trusted falls to XFF", "10.0.0.1", &[("forwarded", "for=10.4.4.4"), ("x-forwarded-for", "198.51.100.7")], "198.51.100.7"),
            ("trusted IPv6 proxy range", "2001:db8:ffff::1", &[("x-forwarded-for", "198.51.100.7")], "198.51.100.7"),
            ("IPv4-mapped peer is IPv4", "::ffff:10.0.0.1", &[("x-forwarded-for", "198.51.100.7")], "198.51.100.7"),
            ("invalid port skipped", "10.0.0.1", &[("x-forwarded-for", "198.51.100.7, 192.0.2.9:99999")], "198.51.100.7"),
        ];
        for (case, peer, pairs, expected) in cases {
            let got = proxies.resolve(peer.parse().unwrap(), &headers(pairs));
            assert_eq!(got, expected.parse::<IpAddr>().unwrap(), "{case}");
        }
    }

    #[test]
    fn ipv6_clients_group_by_prefix() {
        let grouped = ClientIp::new().ipv6_prefix(64).unwrap();
        let a = grouped.resolve("2001:db8:1:2:aaaa::1".parse().unwrap(), &HeaderMap::new());
        let b = grouped.resolve("2001:db8:1:2:bbbb::9".parse().unwrap(), &HeaderMap::new());
        assert_eq!(a, b);
        assert_eq!(a, "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let v4 = grouped.resolve("192.0.2.1".parse().unwrap(), &HeaderMap::new());
        assert_eq!(v4, "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn bad_ranges_are_errors() {
        for bad in ["10.0.0.0/33", "nope", "::/129", "10.0.0.0/x"] {
            assert!(ClientIp::new().trust(bad).is_err(), "{bad}");
        }
        assert!(ClientIp::new().ipv6_prefix(0).is_err());
        let range: IpRange = "0.0.0.0/0".parse().unwrap();
        assert!(range.contains("8.8.8.8".parse().unwrap()));
    }
}
