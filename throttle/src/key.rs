//! Backend keys: `{namespace}:{uid}:{client}:{scope}`, never longer than [`MAX_KEY_LEN`]
//! bytes, whatever a client sends.
//!
//! - The namespace and uid are validated when the backend and the throttle are built:
//!   at most [`MAX_NAMESPACE_LEN`] and [`MAX_UID_LEN`] bytes of a small alphabet.
//! - The client id and the scope come from requests, so each is one *segment*, at most
//!   [`MAX_SEGMENT_LEN`] bytes:
//!   - **readable** when it fits: `:`, `%`, `{`, `}`, `#`, `|` and every byte outside
//!     printable ASCII are percent-escaped (`a:b` → `a%3Ab`), and the parts of a scope
//!     (the context's scope, then the method and the route when the throttle splits by
//!     them) are joined by `|`: `default|GET|/users/%7Bid%7D`;
//!   - **digested** when the escaped text would be longer: `#` and the 64 lowercase hex
//!     digits of the SHA-256 of the raw parts (each preceded by its length as 8
//!     little-endian bytes), so every process on every platform computes the same key;
//!   - `#` alone when empty, so a Redis Cluster hash tag is never `{}`.
//!
//! A readable segment never contains a raw `#`, so it can never equal a digested (or
//! empty) one: two different clients or scopes never share a key, and no client can
//! inject a separator or a Redis hash tag. The stored Redis key adds the two braces of
//! the hash tag around the client, and still fits in [`MAX_KEY_LEN`]:
//!
//! ```
//! use throttle::key::{MAX_KEY_LEN, MAX_NAMESPACE_LEN, MAX_SEGMENT_LEN, MAX_UID_LEN};
//!
//! // namespace ':' uid ':' '{' client '}' ':' scope
//! assert!(MAX_NAMESPACE_LEN + 1 + MAX_UID_LEN + 1 + 1 + MAX_SEGMENT_LEN + 1 + 1 + MAX_SEGMENT_LEN <= MAX_KEY_LEN);
//! ```

use crate::ConfigError;
use crate::backend::Key;
use crate::backend::exact::Exact;
use crate::identity::IpId;
use core::ops::{Deref, Range};
use sha2::{Digest, Sha256};
use throttle_grammar::names::NameKind;
pub use throttle_grammar::names::{MAX_NAMESPACE_LEN, MAX_UID_LEN};

/// The longest key a throttle stores, in bytes, Redis hash-tag braces included.
pub const MAX_KEY_LEN: usize = 256;

/// The longest client or scope segment of a key, in bytes; longer ones are digested.
pub const MAX_SEGMENT_LEN: usize = 72;

/// Starts a digested (or empty) segment; escaped in readable ones.
const DIGEST_MARKER: char = '#';

/// Joins the parts of a scope; escaped inside each part.
const PART_SEPARATOR: char = '|';

/// `#` and 64 hex digits.
const DIGEST_SEGMENT_LEN: usize = 1 + 2 * 32;

const _: () = assert!(DIGEST_SEGMENT_LEN <= MAX_SEGMENT_LEN);
/// What a backend may append to a stored key for a second key beside it (the Redis
/// sliding log's and queue's `:entries` list).
pub(crate) const MAX_SUFFIX_LEN: usize = ":entries".len();

const _: () =
    assert!(MAX_NAMESPACE_LEN + MAX_UID_LEN + 2 * MAX_SEGMENT_LEN + "::{}:".len() + MAX_SUFFIX_LEN <= MAX_KEY_LEN);

pub(crate) fn validate_uid(uid: &str) -> Result<(), ConfigError> {
    NameKind::Uid
        .check(uid)
        .map_err(|e| ConfigError::InvalidUid { uid: uid.to_string(), reason: e.message(NameKind::Uid) })
}

pub(crate) fn validate_namespace(namespace: &str) -> Result<(), ConfigError> {
    NameKind::Namespace.check(namespace).map_err(|e| ConfigError::InvalidNamespace {
        namespace: namespace.to_string(),
        reason: e.message(NameKind::Namespace),
    })
}

/// Bytes written as `%XX` in a readable segment: all but printable ASCII, and the
/// structural characters.
const ESCAPED: [bool; 256] = {
    let mut table = [true; 256];
    let mut byte = 0x21;
    while byte <= 0x7e {
        table[byte] = matches!(byte as u8, b':' | b'%' | b'{' | b'}' | b'#' | b'|');
        byte += 1;
    }
    table
};

fn is_escaped(byte: u8) -> bool {
    ESCAPED[usize::from(byte)]
}

/// A key built on the stack: keys are bounded, so no request allocates one.
pub(crate) type KeyBuf = arrayvec::ArrayString<MAX_KEY_LEN>;

/// Appends `segment` to `key`, escaping what could be confused with structure.
pub(crate) fn push_escaped(key: &mut KeyBuf, segment: &str) {
    push_escaped_within(key, segment, key.capacity());
}

/// [`push_escaped`] while `key` stays within `limit` bytes; `false` (with part of the
/// segment written) as soon as it would not.
fn push_escaped_within(key: &mut KeyBuf, segment: &str, limit: usize) -> bool {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = segment.as_bytes();
    // Runs of bytes kept as they are go in whole. A run is printable ASCII, so both of
    // its ends are character boundaries.
    let mut run = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if is_escaped(byte) {
            if key.len() + (i - run) + 3 > limit {
                return false;
            }
            if run < i {
                key.push_str(&segment[run..i]);
            }
            key.push('%');
            key.push(HEX[usize::from(byte >> 4)] as char);
            key.push(HEX[usize::from(byte & 0xf)] as char);
            run = i + 1;
        }
    }
    if key.len() + (bytes.len() - run) > limit {
        return false;
    }
    if run < bytes.len() {
        key.push_str(&segment[run..]);
    }
    true
}

/// Appends one segment made of `parts` (see the module docs), in one pass: written
/// readable, and replaced by the digest if it grows past [`MAX_SEGMENT_LEN`].
fn push_segment(key: &mut KeyBuf, parts: &[&str]) {
    let start = key.len();
    let limit = start + MAX_SEGMENT_LEN;
    for (i, part) in parts.iter().enumerate() {
        let fits = (i == 0 || key.len() < limit) && {
            if i > 0 {
                key.push(PART_SEPARATOR);
            }
            push_escaped_within(key, part, limit)
        };
        if !fits {
            key.truncate(start);
            push_digest(key, parts);
            return;
        }
    }
    if key.len() == start {
        key.push(DIGEST_MARKER);
    }
}

/// `#` and the SHA-256 of the length-prefixed parts: injective over the sequence of parts.
fn push_digest(key: &mut KeyBuf, parts: &[&str]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    key.push(DIGEST_MARKER);
    for byte in hasher.finalize() {
        key.push(HEX[usize::from(byte >> 4)] as char);
        key.push(HEX[usize::from(byte & 0xf)] as char);
    }
}

/// The client segment of a key.
pub(crate) enum ClientSegment<'a> {
    /// Any client id, as text: escaped, or digested when long.
    Text(&'a str),
    /// A client id that writes itself, already escaped and never longer than
    /// [`MAX_SEGMENT_LEN`] (a peer address): no text is made for it.
    Readable(&'a dyn Fn(&mut KeyBuf)),
}

/// The scope segment of a key.
pub(crate) enum ScopeSegment<'a> {
    /// The parts of the scope: escaped and joined, or digested when long.
    Parts(&'a [&'a str]),
    /// A segment [`scope_segment`] made before (a throttle's default scope).
    Built(&'a str),
}

/// The scope segment of `parts`, made once to be reused.
pub(crate) fn scope_segment(parts: &[&str]) -> String {
    let mut segment = KeyBuf::new();
    push_segment(&mut segment, parts);
    segment.to_string()
}

/// `{prefix}{client}:{scope}` into `key` (cleared first), where `prefix` is
/// `{namespace}:{uid}:`; returns where the client segment lies in it.
///
/// The prefix is validated when the throttle is built and each segment is bounded,
/// so the key always fits (see the assertion above `MAX_KEY_LEN`).
pub(crate) fn build_into(
    key: &mut KeyBuf,
    prefix: &str,
    client: ClientSegment<'_>,
    scope: ScopeSegment<'_>,
) -> Range<usize> {
    key.clear();
    key.push_str(prefix);
    match client {
        ClientSegment::Text(client) => push_segment(key, &[client]),
        ClientSegment::Readable(write) => write(key),
    }
    let client = prefix.len()..key.len();
    key.push(':');
    match scope {
        ScopeSegment::Parts(parts) => push_segment(key, parts),
        ScopeSegment::Built(segment) => key.push_str(segment),
    }
    client
}

/// Where a key lies in its buffer: its client segment and, when the throttle knew it,
/// its exact form. With the buffer, what a backend receives as a [`Key`], with no text
/// parsed again.
///
/// For the in-memory backend, which reads only the exact form, a throttle may leave the
/// buffer empty and write the text only if something asks for it
/// ([`Deferred`]).
#[derive(Clone, Copy)]
pub(crate) struct KeyPlace<'c> {
    /// The client segment's byte offsets (keys are at most [`MAX_KEY_LEN`] bytes).
    client: (u16, u16),
    /// The key's exact form, when the throttle knew it (else read from the text).
    exact: Option<Exact>,
    /// How to write the text when the buffer was left empty.
    deferred: Option<Deferred<'c>>,
}

/// A key whose text is not written yet: the throttle's prefix and default scope, and
/// the client's address.
#[derive(Clone, Copy)]
pub(crate) struct Deferred<'c> {
    pub(crate) prefix: &'c str,
    pub(crate) scope: &'c str,
    pub(crate) client: IpId,
}

impl<'c> KeyPlace<'c> {
    /// A key whose client segment lies at `client` (as [`build_into`] returned it).
    pub(crate) fn new(client: Range<usize>) -> Self {
        let offset = |at: usize| u16::try_from(at).unwrap_or(u16::MAX);
        KeyPlace { client: (offset(client.start), offset(client.end)), exact: None, deferred: None }
    }

    /// A key named by `exact`, whose text is written by [`text`](Self::text) if asked.
    pub(crate) fn deferred(exact: Exact, deferred: Deferred<'c>) -> Self {
        KeyPlace { client: (0, 0), exact: Some(exact), deferred: Some(deferred) }
    }

    /// The key, whose exact form is `exact` (the throttle's IPv4 client on its default
    /// scope).
    pub(crate) fn with_exact(self, exact: Option<Exact>) -> Self {
        KeyPlace { exact, ..self }
    }

    /// Appends `tail` after the scope segment of `text` (a swapped strategy's tag): the
    /// client segment stays where it is, the exact form is read again. The text must be
    /// written.
    pub(crate) fn push_str(&mut self, text: &mut KeyBuf, tail: &str) {
        debug_assert!(self.deferred.is_none());
        text.push_str(tail);
        self.exact = None;
    }

    /// The key in `text` (text that may be unwritten: see [`Deferred`]).
    #[inline]
    pub(crate) fn key<'k>(&self, text: &'k KeyBuf) -> Key<'k> {
        match self.exact {
            Some(exact) => Key::built_exact(text, self.client, exact),
            None => Key::built(text, self.client),
        }
    }

    /// The key with its text written, to keep or to show.
    pub(crate) fn text(&self, text: &KeyBuf) -> BuiltKey {
        let Some(Deferred { prefix, scope, client }) = self.deferred else {
            return BuiltKey {
                text: *text,
                place: KeyPlace { client: self.client, exact: self.exact, deferred: None },
            };
        };
        let mut written = KeyBuf::new();
        let segment = ClientSegment::Readable(&|k| client.write_segment(k));
        let span = build_into(&mut written, prefix, segment, ScopeSegment::Built(scope));
        BuiltKey { text: written, place: KeyPlace::new(span).with_exact(self.exact) }
    }
}

/// A key built on the stack, with its place: kept where it outlives the request (a
/// refund ticket, a stat).
#[derive(Clone, Copy)]
pub(crate) struct BuiltKey {
    text: KeyBuf,
    /// Never deferred: the text is written.
    place: KeyPlace<'static>,
}

impl BuiltKey {
    /// `text`, whose client segment lies at `client` (as [`build_into`] returned it).
    pub(crate) fn new(text: KeyBuf, client: Range<usize>) -> Self {
        BuiltKey { text, place: KeyPlace::new(client) }
    }

    /// Appends `tail` after the scope segment (see [`KeyPlace::push_str`]).
    pub(crate) fn push_str(&mut self, tail: &str) {
        self.place.push_str(&mut self.text, tail);
    }

    #[inline]
    pub(crate) fn as_key(&self) -> Key<'_> {
        self.place.key(&self.text)
    }
}

impl core::fmt::Debug for BuiltKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&*self.text, f)
    }
}

impl Deref for BuiltKey {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

/// [`build_into`] a new buffer, for a textual client id.
#[cfg(test)]
pub(crate) fn build(prefix: &str, client: &str, scope: &[&str]) -> KeyBuf {
    let mut key = KeyBuf::new();
    build_into(&mut key, prefix, ClientSegment::Text(client), ScopeSegment::Parts(scope));
    key
}

/// `{prefix}{client}:#{tag}`: a key for another kind of state under a uid (in-flight
/// leases). No throttle builds it: a throttle's scope segment is readable (a raw `#`
/// is escaped), `#` alone, or `#` and 64 hex digits, and `tag` is none of these.
pub(crate) fn build_tagged(prefix: &str, client: &str, tag: &'static str) -> BuiltKey {
    debug_assert!(!tag.is_empty() && tag.len() < 2 * 32 && !tag.contains([':', '{', '}']));
    let mut key = KeyBuf::new();
    key.push_str(prefix);
    push_segment(&mut key, &[client]);
    let client = prefix.len()..key.len();
    key.push(':');
    key.push(DIGEST_MARKER);
    key.push_str(tag);
    BuiltKey::new(key, client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The key as text.
    fn build(prefix: &str, client: &str, scope: &[&str]) -> String {
        super::build(prefix, client, scope).to_string()
    }

    /// The longest prefix a throttle can have.
    fn longest_prefix() -> String {
        format!("{}:{}:", "n".repeat(MAX_NAMESPACE_LEN), "u".repeat(MAX_UID_LEN))
    }

    /// The key as Redis stores it: the client wrapped in hash-tag braces.
    fn stored_len(key: &str) -> usize {
        key.len() + 2
    }

    #[test]
    fn separators_and_hash_tags_are_escaped() {
        assert_eq!(build("ns:api:", "1.2.3.4", &["default"]), "ns:api:1.2.3.4:default");
        assert_eq!(build("ns:api:", "a:b", &["c"]), "ns:api:a%3Ab:c");
        assert_eq!(build("ns:api:", "a", &["b:c"]), "ns:api:a:b%3Ac");
        assert_eq!(build("ns:api:", "{x} 100%", &["é"]), "ns:api:%7Bx%7D%20100%25:%C3%A9");
        assert_eq!(
            build("ns:api:", "#a|b", &["default", "GET", "/users/{id}"]),
            "ns:api:%23a%7Cb:default|GET|/users/%7Bid%7D"
        );
    }

    #[test]
    fn a_scope_segment_made_once_is_the_segment_of_its_parts() {
        for parts in [&["default"][..], &["a:b", "GET"], &[""], &["x"; 40]] {
            let mut key = KeyBuf::new();
            build_into(&mut key, "ns:u:", ClientSegment::Text("c"), ScopeSegment::Built(&scope_segment(parts)));
            assert_eq!(key.as_str(), build("ns:u:", "c", parts));
        }
    }

    #[test]
    fn tagged_keys_never_meet_a_throttle_key() {
        let tagged = build_tagged("ns:api:", "a:b", "inflight");
        assert_eq!(&*tagged, "ns:api:a%3Ab:#inflight");
        assert_eq!(tagged.as_key().client(), Some("a%3Ab"));
        assert_ne!(&*build_tagged("ns:api:", "a", "inflight"), build("ns:api:", "a", &["#inflight"]));
        assert_ne!(&*build_tagged("ns:api:", "a", "inflight"), build("ns:api:", "a", &["inflight"]));
        let long = "k".repeat(500);
        assert!(build_tagged(&longest_prefix(), &long, "inflight").len() + 2 <= MAX_KEY_LEN);
    }

    #[test]
    fn a_built_key_carries_its_client_segment() {
        for (client, scope) in
            [("1.2.3.4", &["default"][..]), ("", &["a:b", "GET"]), ("x:y{z}", &[""]), ("k", &["x"; 40])]
        {
            let mut text = KeyBuf::new();
            let span = build_into(&mut text, "ns:u:", ClientSegment::Text(client), ScopeSegment::Parts(scope));
            let built = BuiltKey::new(text, span);
            let key = built.as_key();
            assert_eq!(key.as_str(), build("ns:u:", client, scope));
            // The text read back by the grammar finds the same segment.
            assert_eq!(key.around_client(), Key::from(key.as_str()).around_client(), "{client:?} {scope:?}");
        }
    }

    #[test]
    fn empty_segments_are_a_marker_never_an_empty_hash_tag() {
        assert_eq!(build("ns:api:", "", &[""]), "ns:api:#:#");
        assert_eq!(build("ns:api:", "", &["", "GET"]), "ns:api:#:|GET");
        assert_ne!(build("ns:api:", "", &["s"]), build("ns:api:", "#", &["s"]));
    }

    #[test]
    fn long_segments_are_a_stable_digest() {
        let long = "k".repeat(8_000);
        let key = build("ns:api:", &long, &["default"]);
        // SHA-256 of 8000u64 (LE) followed by 8000 × "k": fixed, so every process agrees.
        assert_eq!(key, format!("ns:api:#{}:default", digest_hex(&[&long])));
        assert_eq!(key.len(), "ns:api:".len() + DIGEST_SEGMENT_LEN + ":default".len());
        assert_eq!(
            build("ns:api:", "a", &["x"; 37]),
            format!("ns:api:a:#{}", digest_hex(&["x"; 37])),
            "37 parts escape to 73 bytes"
        );
        assert_eq!(build("ns:api:", "a", &["x"; 36]).len(), "ns:api:a:".len() + 71, "36 parts stay readable");
    }

    #[test]
    fn the_digest_is_sha256_of_the_length_prefixed_parts() {
        // printf '\x03\x00\x00\x00\x00\x00\x00\x00abc' | sha256sum
        assert_eq!(digest_hex(&["abc"]), "ce91dc5eec0139adf091900d225971d6ad246a845bad791b5693a9d0d55dd391");
        // printf '\x00\x00\x00\x00\x00\x00\x00\x00' | sha256sum
        assert_eq!(digest_hex(&[""]), "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc");
    }

    fn digest_hex(parts: &[&str]) -> String {
        let mut key = KeyBuf::new();
        push_digest(&mut key, parts);
        key[1..].to_string()
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_uid("api:data").is_ok());
        assert!(validate_uid("v1/users.list-all_x").is_ok());
        assert!(validate_uid(&"x".repeat(MAX_UID_LEN)).is_ok());
        for bad in ["", "a b", "a{b}", "é", &"x".repeat(MAX_UID_LEN + 1)] {
            assert!(validate_uid(bad).is_err(), "{bad:?}");
        }
        assert!(validate_namespace("my-app").is_ok());
        assert!(validate_namespace(&"n".repeat(MAX_NAMESPACE_LEN)).is_ok());
        assert!(validate_namespace(&"n".repeat(MAX_NAMESPACE_LEN + 1)).is_err());
        assert!(validate_namespace("my:app").is_err());
    }

    /// Any text, with a bias towards the characters that are escaped or structural.
    fn hostile_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,12}",
            "[#|:%{}a ]{0,90}",
            "[\\u{0}-\\u{ff}]{0,40}",
            (0usize..3000).prop_map(|n| "\u{fffd}".repeat(n)),
        ]
    }

    proptest! {
        #[test]
        fn keys_are_bounded_and_distinct_inputs_never_share_a_key(
            a in hostile_text(), b in hostile_text(),
            s in prop::collection::vec(hostile_text(), 1..4),
            t in prop::collection::vec(hostile_text(), 1..4),
        ) {
            let prefix = longest_prefix();
            let s: Vec<&str> = s.iter().map(String::as_str).collect();
            let t: Vec<&str> = t.iter().map(String::as_str).collect();
            let left = build(&prefix, &a, &s);
            let right = build(&prefix, &b, &t);
            prop_assert!(stored_len(&left) <= MAX_KEY_LEN, "{} bytes", stored_len(&left));
            prop_assert!(stored_len(&right) <= MAX_KEY_LEN, "{} bytes", stored_len(&right));
            if (a.as_str(), &s) != (b.as_str(), &t) {
                prop_assert_ne!(left, right);
            } else {
                prop_assert_eq!(left, right);
            }
        }

        /// One text cut into a client and scope parts at different places never gives
        /// the same key: no boundary can be moved by the characters of a part.
        #[test]
        fn moving_a_boundary_changes_the_key(text in "[#|:%a]{0,90}", cuts in prop::collection::vec(0usize..91, 4)) {
            let split = |cuts: &[usize]| -> (String, Vec<String>) {
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (text.len() + 1)).collect();
                cuts.sort_unstable();
                let mut pieces = Vec::new();
                let mut start = 0;
                for cut in cuts {
                    pieces.push(text[start..cut].to_string());
                    start = cut;
                }
                pieces.push(text[start..].to_string());
                let client = pieces.remove(0);
                (client, pieces)
            };
            let (a, s) = split(&cuts[..2]);
            let (b, t) = split(&cuts[2..]);
            let key = |client: &str, scope: &[String]| {
                build("ns:u:", client, &scope.iter().map(String::as_str).collect::<Vec<_>>())
            };
            if (&a, &s) != (&b, &t) {
                prop_assert_ne!(key(&a, &s), key(&b, &t));
            }
        }

        /// The one-pass segment is the two-pass definition: escaped length first, then
        /// readable or digested (keys stored in Redis keep their names across versions).
        #[test]
        fn a_segment_is_its_definition(parts in prop::collection::vec(hostile_text(), 1..4)) {
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            let escaped_len = |text: &str| text.bytes().map(|b| if is_escaped(b) { 3 } else { 1 }).sum::<usize>();
            let readable_len = parts.iter().map(|p| escaped_len(p)).sum::<usize>() + parts.len() - 1;
            let mut expected = KeyBuf::new();
            if readable_len == 0 {
                expected.push(DIGEST_MARKER);
            } else if readable_len <= MAX_SEGMENT_LEN {
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        expected.push(PART_SEPARATOR);
                    }
                    push_escaped(&mut expected, part);
                }
            } else {
                push_digest(&mut expected, &parts);
            }
            let mut segment = KeyBuf::new();
            push_segment(&mut segment, &parts);
            prop_assert_eq!(segment, expected);
        }

        #[test]
        fn the_client_and_scope_are_the_last_two_segments(a in hostile_text(), s in hostile_text()) {
            let key = build("ns:u:", &a, &[&s]);
            let rest = key.strip_prefix("ns:u:").expect("prefix kept");
            prop_assert_eq!(rest.matches(':').count(), 1);
            prop_assert!(!rest.contains(['{', '}']), "no braces in {rest}");
            prop_assert!(!rest.starts_with(':'), "the client segment is never empty");
        }
    }
}
