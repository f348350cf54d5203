//! [`Exact`]: a key that names its bucket exactly in 88 bits (a 56-bit space and an
//! IPv4 address), so an in-process store needs no digest of the text.
//!
//! A throttle's key for an IPv4 client is `{before}ip={a.b.c.d}{after}`, where `before`
//! is `{namespace}:{uid}:` and `after` is `:{scope}` (and a strategy's tag). Its bucket
//! is named by the address and the *space*: a keyed hash of `before` and `after`,
//! computed once per throttle for its default scope. Two keys of this form share a
//! space only if their texts around the address are equal, or with a chance of 2^-56
//! per pair for a client who cannot see the hash key; within a space, addresses never
//! collide. Every other key (other clients, IPv6 networks, text) is digested.
//!
//! Whoever makes a [`Key`](super::Key), the same text gets the same `Exact`: a throttle
//! hands the one it computed, text is read by [`Exact::read`], and both are tested
//! against each other.

use core::hash::{BuildHasher, Hasher};
use siphasher::sip::SipHasher13;
use std::net::Ipv4Addr;
use std::sync::LazyLock;

/// The client segment's tag for an address (see [`crate::identity`]).
const IP: &str = "ip=";

/// The bucket of a throttle key for an IPv4 client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Exact {
    /// [`space`] of the text around the client segment: 56 bits.
    pub(crate) space: u64,
    pub(crate) v4: u32,
}

/// The keyed hash of the text before and after a client segment, in 56 bits. Keyed
/// once per process, so no client can aim a scope of its own at a throttle's space.
pub(crate) fn space(before: &str, after: &str) -> u64 {
    static KEY: LazyLock<(u64, u64)> = LazyLock::new(|| {
        let random = std::collections::hash_map::RandomState::new();
        (random.hash_one(2u8), random.hash_one(3u8))
    });
    let mut hasher = SipHasher13::new_with_keys(KEY.0, KEY.1);
    // The length first: `before` and `after` are told apart whatever they hold.
    hasher.write_u64(before.len() as u64);
    hasher.write(before.as_bytes());
    hasher.write(after.as_bytes());
    hasher.finish() >> 8
}

impl Exact {
    /// A throttle's key whose client is `v4`, in a space computed before.
    pub(crate) const fn new(space: u64, v4: Ipv4Addr) -> Self {
        Exact { space, v4: v4.to_bits() }
    }

    /// The exact form of a key read as text: its client segment is `ip=` and an IPv4
    /// address written as a throttle writes it (no leading zeros), else `None`.
    pub(crate) fn read(before: &str, client: &str, after: &str) -> Option<Self> {
        let text = client.strip_prefix(IP)?;
        let v4: Ipv4Addr = text.parse().ok()?;
        // A throttle writes one text per address: any other spelling is another key.
        let mut canonical = text.bytes();
        let mut same = true;
        crate::identity::dotted(v4, |c| same &= canonical.next() == Some(c as u8));
        (same && canonical.next().is_none()).then(|| Exact::new(space(before, after), v4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_throttles_spelling_of_an_address_is_exact() {
        let exact = Exact::read("ns:u:", "ip=1.2.3.4", ":default").expect("exact");
        assert_eq!(exact.v4, u32::from_be_bytes([1, 2, 3, 4]));
        assert_eq!(exact.space, space("ns:u:", ":default"));
        for other in ["ip=01.2.3.4", "ip=1.2.3.4 ", "1.2.3.4", "ip=1.2.3", "ip=::1", "hdr=1.2.3.4", "ip=1.2.3.256"] {
            assert_eq!(Exact::read("ns:u:", other, ":default"), None, "{other}");
        }
    }

    #[test]
    fn spaces_tell_the_text_around_the_client_apart() {
        assert_eq!(space("ns:u:", ":a"), space("ns:u:", ":a"));
        assert_ne!(space("ns:u:", ":a"), space("ns:v:", ":a"));
        assert_ne!(space("ns:u:", ":a"), space("ns:u:", ":b"));
        // The split point counts: the same bytes cut elsewhere are another space.
        assert_ne!(space("ns:u:", ":ab"), space("ns:u::", "ab"));
        assert!(space("ns:u:", ":a") < 1 << 56);
    }
}
