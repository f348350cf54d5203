//! Backend keys: `{namespace}:{uid}:{client}:{scope}`.
//!
//! The namespace and uid are validated when the throttle is built. Client ids and
//! scopes come from requests, so they are percent-escaped: `:`, `%`, `{`, `}`, and
//! every byte outside printable ASCII. Two different clients therefore can never map to
//! the same key, whatever characters their ids contain, and no client can inject a
//! Redis hash tag.

use crate::ConfigError;
use throttle_grammar::names::NameKind;

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

/// Appends `segment` to `key`, escaping what could be confused with structure.
pub(crate) fn push_escaped(key: &mut String, segment: &str) {
    for byte in segment.bytes() {
        match byte {
            b':' | b'%' | b'{' | b'}' => push_percent(key, byte),
            0x21..=0x7e => key.push(byte as char),
            _ => push_percent(key, byte),
        }
    }
}

fn push_percent(key: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    key.push('%');
    key.push(HEX[usize::from(byte >> 4)] as char);
    key.push(HEX[usize::from(byte & 0xf)] as char);
}

/// `{prefix}{client}:{scope}`, where `prefix` is `{namespace}:{uid}:`.
pub(crate) fn build(prefix: &str, client: &str, scope: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + client.len() + scope.len() + 8);
    key.push_str(prefix);
    push_escaped(&mut key, client);
    key.push(':');
    push_escaped(&mut key, scope);
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn separators_and_hash_tags_are_escaped() {
        assert_eq!(build("ns:api:", "1.2.3.4", "default"), "ns:api:1.2.3.4:default");
        assert_eq!(build("ns:api:", "a:b", "c"), "ns:api:a%3Ab:c");
        assert_eq!(build("ns:api:", "a", "b:c"), "ns:api:a:b%3Ac");
        assert_eq!(build("ns:api:", "{x} 100%", "é"), "ns:api:%7Bx%7D%20100%25:%C3%A9");
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_uid("api:data").is_ok());
        assert!(validate_uid("v1/users.list-all_x").is_ok());
        for bad in ["", "a b", "a{b}", "é", &"x".repeat(129)] {
            assert!(validate_uid(bad).is_err(), "{bad:?}");
        }
        assert!(validate_namespace("my-app").is_ok());
        assert!(validate_namespace("my:app").is_err());
    }

    proptest! {
        #[test]
        fn distinct_clients_and_scopes_never_share_a_key(
            a in "\\PC{0,12}", b in "\\PC{0,12}", s in "\\PC{0,6}", t in "\\PC{0,6}"
        ) {
            prop_assume!((a.as_str(), s.as_str()) != (b.as_str(), t.as_str()));
            prop_assert_ne!(build("ns:u:", &a, &s), build("ns:u:", &b, &t));
        }
    }
}
