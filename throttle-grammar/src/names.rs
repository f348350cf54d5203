//! Uids and namespaces: the names a throttle's keys start with.

/// The longest throttle uid, in bytes. Together with [`MAX_NAMESPACE_LEN`] it leaves
/// room in a 256-byte key for the client and scope segments.
pub const MAX_UID_LEN: usize = 64;

/// The longest backend namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 32;

/// Why a uid or namespace was refused; `Display` is the message both crates show.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidName {
    /// The name is empty.
    Empty,
    /// The name is longer than its kind allows.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The longest allowed.
        max: usize,
    },
    /// The name holds a character outside its set.
    Character(char),
}

/// Which name is checked: they differ in the characters they allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A throttle's uid: letters, digits and `_`, `-`, `.`, `:`, `/`.
    Uid,
    /// A backend's namespace: letters, digits and `_`, `-`, `.`.
    Namespace,
}

impl NameKind {
    const fn word(self) -> &'static str {
        match self {
            NameKind::Uid => "uid",
            NameKind::Namespace => "namespace",
        }
    }

    /// The longest name of this kind, in bytes.
    pub const fn max_len(self) -> usize {
        match self {
            NameKind::Uid => MAX_UID_LEN,
            NameKind::Namespace => MAX_NAMESPACE_LEN,
        }
    }

    const fn punctuation(self) -> &'static str {
        match self {
            NameKind::Uid => "_-.:/",
            NameKind::Namespace => "_-.",
        }
    }

    /// Checks `name`.
    ///
    /// ```
    /// use throttle_grammar::names::NameKind;
    ///
    /// assert!(NameKind::Uid.check("api:data").is_ok());
    /// assert_eq!(NameKind::Uid.check("a b").unwrap_err().message(NameKind::Uid), "character ' ' is not allowed in a uid; use letters, digits and `_`, `-`, `.`, `:`, `/`");
    /// assert!(NameKind::Namespace.check("my:app").is_err());
    /// ```
    pub fn check(self, name: &str) -> Result<(), InvalidName> {
        if name.is_empty() {
            return Err(InvalidName::Empty);
        }
        if name.len() > self.max_len() {
            return Err(InvalidName::TooLong { len: name.len(), max: self.max_len() });
        }
        match name.chars().find(|c| !(c.is_ascii_alphanumeric() || self.punctuation().contains(*c))) {
            Some(c) => Err(InvalidName::Character(c)),
            None => Ok(()),
        }
    }
}

impl InvalidName {
    /// The message for a name of `kind`.
    pub fn message(&self, kind: NameKind) -> String {
        let what = kind.word();
        match self {
            InvalidName::Empty => format!("a {what} cannot be empty"),
            InvalidName::TooLong { len, max } => format!("a {what} is at most {max} bytes, not {len}"),
            InvalidName::Character(c) => {
                let allowed: Vec<String> = kind.punctuation().chars().map(|p| format!("`{p}`")).collect();
                format!("character {c:?} is not allowed in a {what}; use letters, digits and {}", allowed.join(", "))
            }
        }
    }
}
