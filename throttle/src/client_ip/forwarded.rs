//! Forwarding headers read as bytes: a list's elements from the right, the `for=` of
//! each RFC 7239 `Forwarded` element, and one hop's address.
//!
//! Bytes, not `to_str()`: nginx's `$proxy_add_x_forwarded_for` appends the real
//! address to the line the client started, so a non-ASCII byte in the client's part
//! must cost that part only, never the address after it. Every function here is one
//! pass over its input.

use super::range::canonical;
use http::{HeaderMap, HeaderName};
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The elements of a comma-separated list, nearest hop first: the last line first,
/// each line right to left. Empty elements are skipped, as RFC 9110 §5.6.1 asks;
/// they are not hops.
pub(super) fn elements_from_right<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> {
    headers
        .get_all(name)
        .into_iter()
        .rev()
        .flat_map(|line| line.as_bytes().rsplit(|byte| *byte == b','))
        .map(trim_ows)
        .filter(|element| !element.is_empty())
}

/// The `for=` address of every `Forwarded` element, in order (left to right, line by
/// line). `None` marks an element with no usable address: `for=unknown`, an
/// obfuscated `for=_node`, no `for` or two of them, or a malformed element.
///
/// Each line is parsed on its own, so a client's unterminated quote cannot swallow a
/// line a proxy added; on the same line it makes the rest one malformed element.
pub(super) fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for line in headers.get_all(http::header::FORWARDED) {
        let mut cursor = Cursor { bytes: line.as_bytes(), at: 0 };
        loop {
            cursor.skip_ows();
            match cursor.peek() {
                None => break,
                Some(b',') => cursor.at += 1,
                Some(_) => hops.push(cursor.element()),
            }
        }
    }
    hops
}

/// One hop: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:443`, with a numeric or obfuscated (`_abc`) port. Anything else,
/// zone ids (`fe80::1%eth0`) included, is no address. IPv4-mapped addresses are IPv4.
pub(super) fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    // The longest address with brackets and a port is far below this.
    const LONGEST: usize = 128;
    if hop.len() > LONGEST {
        return None;
    }
    let hop = std::str::from_utf8(hop).ok()?;
    if let Some(rest) = hop.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return inside.parse::<Ipv6Addr>().ok().map(|ip| canonical(IpAddr::V6(ip)));
    }
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    let (host, port) = hop.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// RFC 7239 §6: a port number or an obfuscated port (`_` then letters, digits, `.`,
/// `_`, `-`).
fn is_port(port: &str) -> bool {
    match port.strip_prefix('_') {
        Some(obfuscated) => {
            !obfuscated.is_empty() && obfuscated.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        }
        None => !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok(),
    }
}

fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !is_ows(b)).map_or(start, |last| last + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// RFC 9110 `tchar`: what a parameter name is made of.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// A position in one `Forwarded` line.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.at;
        while self.peek().is_some_and(&keep) {
            self.at += 1;
        }
        self.bytes.get(start..self.at).unwrap_or_default()
    }

    /// One element (`pair *( ";" pair )`), leaving the cursor on the `,` that ends it
    /// or at the end of the line.
    fn element(&mut self) -> Option<IpAddr> {
        let mut address = None;
        let mut fors = 0;
        loop {
            self.skip_ows();
            match self.peek() {
                None | Some(b',') => break,
                Some(b';') => {
                    self.at += 1;
                    continue;
                }
                Some(_) => {}
            }
            let Some((name, value)) = self.pair() else {
                self.skip_element();
                return None;
            };
            if name.eq_ignore_ascii_case(b"for") {
                fors += 1;
                address = parse_hop(&value);
            }
            self.skip_ows();
            if !matches!(self.peek(), None | Some(b',' | b';')) {
                self.skip_element();
                return None;
            }
        }
        // RFC 7239 §4: a parameter occurs at most once per element.
        if fors == 1 { address } else { None }
    }

    /// `token "=" ( token / quoted-string )`. Unquoted values are read leniently (up to
    /// a delimiter), so `for=[2001:db8::1]` from a sloppy proxy still parses; the
    /// delimiters that give the element its structure are the same either way.
    fn pair(&mut self) -> Option<(&'a [u8], Cow<'a, [u8]>)> {
        let name = self.take_while(is_tchar);
        if name.is_empty() || self.peek() != Some(b'=') {
            return None;
        }
        self.at += 1;
        if self.peek() == Some(b'"') {
            return Some((name, self.quoted()?));
        }
        let value = self.take_while(|b| !matches!(b, b',' | b';' | b'"' | b' ' | b'\t'));
        Some((name, Cow::Borrowed(value)))
    }

    /// A quoted string from its opening `"`, with `\x` pairs unescaped; `None` when the
    /// line ends first (the cursor is then at the end).
    fn quoted(&mut self) -> Option<Cow<'a, [u8]>> {
        self.at += 1;
        let start = self.at;
        let mut unescaped: Option<Vec<u8>> = None;
        while let Some(byte) = self.peek() {
            self.at += 1;
            match byte {
                b'"' => {
                    let raw = self.bytes.get(start..self.at - 1).unwrap_or_default();
                    return Some(unescaped.map_or(Cow::Borrowed(raw), Cow::Owned));
                }
                b'\\' => {
                    let escaped = self.peek()?;
                    self.at += 1;
                    let raw = self.bytes.get(start..self.at - 2).unwrap_or_default();
                    unescaped.get_or_insert_with(|| raw.to_vec()).push(escaped);
                }
                _ => {
                    if let Some(unescaped) = &mut unescaped {
                        unescaped.push(byte);
                    }
                }
            }
        }
        None
    }

    /// Past the rest of a malformed element: to the next `,` outside quotes.
    fn skip_element(&mut self) {
        let mut quoted = false;
        while let Some(byte) = self.peek() {
            match byte {
                b',' if !quoted => return,
                b'"' => quoted = !quoted,
                b'\\' if quoted => self.at += 1,
                _ => {}
            }
            self.at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(lines: &[&[u8]]) -> Vec<Option<IpAddr>> {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(http::header::FORWARDED, http::HeaderValue::from_bytes(line).unwrap());
        }
        forwarded_for(&headers)
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    /// (header lines, the `for=` of each element).
    type Case<'a> = (&'a [&'a [u8]], &'a [Option<IpAddr>]);

    #[test]
    fn forwarded_elements() {
        #[rustfmt::skip]
        let cases: &[Case<'_>] = &[
            (&[b"for=192.0.2.1"], &[ip("192.0.2.1")]),
            (&[b"For=192.0.2.1;proto=https, for=\"[2001:db8::1]:4711\""], &[ip("192.0.2.1"), ip("2001:db8::1")]),
            (&[b"for=192.0.2.1", b"for=198.51.100.2"], &[ip("192.0.2.1"), ip("198.51.100.2")]),
            (&[b"for=unknown, for=_hidden, proto=http, for=1.1.1.1;for=2.2.2.2"], &[None, None, None, None]),
            // A `,` or `;` inside quotes is not a separator.
            (&[b"for=192.0.2.1;host=\"x;for=6.6.6.6, for=7.7.7.7\""], &[ip("192.0.2.1")]),
            (&[b"for=\"192.0.2.\\1\""], &[ip("192.0.2.1")]),
            // An unterminated quote swallows the rest of its line, not the next line.
            (&[b"for=\"6.6.6.6, for=198.51.100.2"], &[None]),
            (&[b"for=\"6.6.6.6", b"for=198.51.100.2"], &[None, ip("198.51.100.2")]),
            // A malformed element costs itself only.
            (&[b"for=6.6.6.6 junk, for=198.51.100.2"], &[None, ip("198.51.100.2")]),
            (&[b"=x, ;;, , for=198.51.100.2;"], &[None, None, ip("198.51.100.2")]),
            (&[b"\xff\xfe, for=198.51.100.2"], &[None, ip("198.51.100.2")]),
            (&[b"for=[2001:db8::1]"], &[ip("2001:db8::1")]),
            (&[b"for=\"[::ffff:192.0.2.1]\""], &[ip("192.0.2.1")]),
        ];
        for (lines, expected) in cases {
            assert_eq!(
                forwarded(lines),
                *expected,
                "{:?}",
                lines.iter().map(|l| String::from_utf8_lossy(l)).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn hops() {
        for (hop, expected) in [
            ("192.0.2.1", ip("192.0.2.1")),
            ("192.0.2.1:80", ip("192.0.2.1")),
            ("192.0.2.1:_x-1", ip("192.0.2.1")),
            ("[2001:db8::1]:443", ip("2001:db8::1")),
            ("::ffff:192.0.2.1", ip("192.0.2.1")),
            ("192.0.2.1:99999", None),
            ("192.0.2.1:+80", None),
            ("192.0.2.1:_", None),
            ("[2001:db8::1]x", None),
            ("fe80::1%eth0", None),
            ("unknown", None),
            ("", None),
        ] {
            assert_eq!(parse_hop(hop.as_bytes()), expected, "{hop}");
        }
    }

    #[test]
    fn list_elements_come_nearest_first() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", http::HeaderValue::from_bytes(b"\xff1.1.1.1 ,, 2.2.2.2").unwrap());
        headers.append("x-forwarded-for", http::HeaderValue::from_static(" 3.3.3.3\t"));
        let name = HeaderName::from_static("x-forwarded-for");
        let elements: Vec<&[u8]> = elements_from_right(&headers, &name).collect();
        assert_eq!(elements, [&b"3.3.3.3"[..], b"2.2.2.2", b"\xff1.1.1.1"]);
    }
}
