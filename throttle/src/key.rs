//! Backend keys: `{namespace}:{uid}:{client}:{scope}`.
//!
//! The namespace and uid are validated when the throttle is built. Client ids and
//! scopes come from requests, so they are percent-escaped: `:`, `%`, `{`, `}`, and
//! every byte outside printable ASCII. Two different clients therefore can never map to
//! the same key, whatever characters their ids contain, and no client can inject a
//! Redis hash tag.

use crate::ConfigError;

/// Longest accepted uid or namespace, in bytes.
const MAX_NAME_LEN: usize = 128;

pub(crate) fn validate_uid(uid: &str) -> Result<(), ConfigError> {
    validate_name(uid, "uid", |c| c.is_ascii_alphanumeric() || "_-.:/".contains(c))
        .map_err(|reason| ConfigError::InvalidUid { uid: uid.to_string(), reason })
}

pub(crate) fn validate_namespace(namespace: &str) -> Result<(), ConfigError> {
    validate_name(namespace, "namespace", |c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        .map_err(|reason| ConfigError::InvalidNamespace { namespace: namespace.to_string(), reason })
}

fn validate_name(name: &str, what: &str, allowed: impl Fn(char) -> bool) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("a {what} cannot be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("a {what} is at most {MAX_NAME_LEN} bytes"));
    }
    match name.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(format!("character {c:?} is not allowed in a {what}")),
        None => Ok(()),
    }
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
