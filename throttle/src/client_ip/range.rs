//! [`IpRange`]: trusted proxy addresses, and the masks that group IPv6 clients.

use crate::ConfigError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address range such as `10.0.0.0/8`, `fd00::/8` or a single address.
///
/// ```
/// let range: throttle::identity::IpRange = "10.0.0.0/8".parse()?;
/// assert!(range.contains("10.1.2.3".parse().unwrap()));
/// assert!(range.contains("::ffff:10.1.2.3".parse().unwrap()), "IPv4-mapped is IPv4");
/// assert!(!range.contains("11.0.0.1".parse().unwrap()));
/// # Ok::<(), throttle::ConfigError>(())
/// ```
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
        let parsed = IpAddr::from_str(addr).map_err(|_| invalid("not an IP address"))?;
        // `::ffff:10.0.0.0/104` is the IPv4 range `10.0.0.0/8`.
        let (addr, offset) = match (parsed, canonical(parsed)) {
            (IpAddr::V6(_), v4 @ IpAddr::V4(_)) => (v4, 96),
            (_, addr) => (addr, 0),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .and_then(|p| p.checked_sub(offset))
                .filter(|p| *p <= max)
                .ok_or_else(|| invalid("prefix length out of range"))?,
        };
        Ok(IpRange { addr, prefix })
    }
}

pub(super) fn mask_v4(ip: Ipv4Addr, prefix: u8) -> u32 {
    let bits = u32::from(ip);
    if prefix == 0 { 0 } else { bits & (u32::MAX << (32 - u32::from(prefix.min(32)))) }
}

pub(super) fn mask_v6(ip: Ipv6Addr, prefix: u8) -> u128 {
    let bits = u128::from(ip);
    if prefix == 0 { 0 } else { bits & (u128::MAX << (128 - u32::from(prefix.min(128)))) }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are the IPv4 client they carry: a
/// dual-stack socket reports IPv4 peers that way.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_match() {
        for bad in ["10.0.0.0/33", "nope", "::/129", "10.0.0.0/x", "::ffff:10.0.0.0/95", ""] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
        let all: IpRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!(!all.contains("2001:db8::1".parse().unwrap()));
        let mapped: IpRange = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(mapped, "10.0.0.0/8".parse().unwrap());
        let single: IpRange = "2001:db8::1".parse().unwrap();
        assert!(single.contains("2001:db8::1".parse().unwrap()));
        assert!(!single.contains("2001:db8::2".parse().unwrap()));
    }
}
