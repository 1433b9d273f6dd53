//! Identifiers: the one rule for ids (`[A-Za-z0-9._-]{1,64}`) and the validated types that
//! carry it.
//!
//! Licensee, gateway, admin, dataset and licence ids all follow [`is_valid_id`]: ASCII
//! letters, digits, `.`, `_` and `-`, 1 to [`MAX_ID_LEN`] bytes. An [`Id`] can only be made
//! through [`Id::parse`] (or `TryFrom`, `FromStr`, serde), so holding one proves the rule was
//! checked. [`LicenseeId`] is an [`Id`] known to name a licensee: the one carried from the
//! verified client certificate to the audit record.
//!
//! [`is_valid_id`]: crate::id::is_valid_id
//! [`MAX_ID_LEN`]: crate::id::MAX_ID_LEN
//! [`Id`]: crate::id::Id
//! [`Id::parse`]: crate::id::Id::parse
//! [`LicenseeId`]: crate::id::LicenseeId

use serde::{Deserialize, Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

/// Longest id, in bytes (all allowed characters are ASCII, so also in characters).
pub const MAX_ID_LEN: usize = 64;

/// The rule, as error messages state it.
pub const ID_RULE: &str = "an id is 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-'";

/// Whether `id` matches `[A-Za-z0-9._-]{1,64}`.
pub fn is_valid_id(id: &str) -> bool {
    check(id).is_ok()
}

fn check(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            value: id.to_owned(),
            len: id.len(),
        });
    }
    match id
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some((at, ch)) => Err(IdError::BadChar {
            value: id.to_owned(),
            ch,
            at,
        }),
        None => Ok(()),
    }
}

/// Why a string is not an id. The display names the offending value (cut short if very
/// long, control characters escaped) and states the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The empty string.
    #[error("invalid id \"\": empty; {ID_RULE}")]
    Empty,
    /// More than [`MAX_ID_LEN`] bytes.
    #[error("invalid id {}: {len} bytes, more than 64; {ID_RULE}", Shown(.value))]
    TooLong {
        /// The offending value, in full.
        value: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A character outside `[A-Za-z0-9._-]`.
    #[error("invalid id {}: character {ch:?} at byte {at} is not allowed; {ID_RULE}", Shown(.value))]
    BadChar {
        /// The offending value, in full.
        value: String,
        /// The first character not allowed.
        ch: char,
        /// Its byte offset in `value`.
        at: usize,
    },
}

impl IdError {
    /// The offending value, in full.
    pub fn value(&self) -> &str {
        match self {
            Self::Empty => "",
            Self::TooLong { value, .. } | Self::BadChar { value, .. } => value,
        }
    }
}

/// Displays a value quoted and escaped, cut after [`SHOWN_CHARS`] characters.
struct Shown<'a>(&'a str);

/// Characters of an offending value an error message shows.
const SHOWN_CHARS: usize = 80;

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars().take(SHOWN_CHARS) {
            write!(f, "{}", c.escape_debug())?;
        }
        f.write_str("\"")?;
        let total = self.0.chars().count();
        if total > SHOWN_CHARS {
            write!(f, "… ({total} characters)")?;
        }
        Ok(())
    }
}

/// A validated id (`[A-Za-z0-9._-]{1,64}`). Serialises as the plain string; deserialising
/// validates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Id(String);

impl Id {
    /// Validates `id`.
    pub fn parse(id: impl Into<String>) -> Result<Self, IdError> {
        let id = id.into();
        check(&id)?;
        Ok(Self(id))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A validated id that names a licensee: the identity read from a verified client
/// certificate, carried to the decision, the usage counts and the audit record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct LicenseeId(Id);

impl LicenseeId {
    /// Validates `id`.
    pub fn parse(id: impl Into<String>) -> Result<Self, IdError> {
        Id::parse(id).map(Self)
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The id as an owned string.
    pub fn into_string(self) -> String {
        self.0.into_string()
    }

    /// The underlying id.
    pub fn as_id(&self) -> &Id {
        &self.0
    }
}

impl From<Id> for LicenseeId {
    fn from(id: Id) -> Self {
        Self(id)
    }
}

impl From<LicenseeId> for Id {
    fn from(id: LicenseeId) -> Self {
        id.0
    }
}

/// The string-like surface both id types share.
macro_rules! string_like {
    ($t:ty) => {
        impl TryFrom<String> for $t {
            type Error = IdError;

            fn try_from(id: String) -> Result<Self, IdError> {
                Self::parse(id)
            }
        }

        impl TryFrom<&str> for $t {
            type Error = IdError;

            fn try_from(id: &str) -> Result<Self, IdError> {
                Self::parse(id)
            }
        }

        impl FromStr for $t {
            type Err = IdError;

            fn from_str(id: &str) -> Result<Self, IdError> {
                Self::parse(id)
            }
        }

        impl From<$t> for String {
            fn from(id: $t) -> String {
                id.into_string()
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl Borrow<str> for $t {
            fn borrow(&self) -> &str {
                self.as_str()
            }
        }

        impl Deref for $t {
            type Target = str;

            fn deref(&self) -> &str {
                self.as_str()
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

string_like!(Id);
string_like!(LicenseeId);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_rule_at_its_edges() {
        let max = "x".repeat(64);
        for ok in [
            "a",
            "Z",
            "0",
            ".",
            "_",
            "-",
            "acme-corp",
            "A.b_c-9",
            "..",
            "-",
            max.as_str(),
        ] {
            assert!(is_valid_id(ok), "{ok:?}");
            assert_eq!(Id::parse(ok).unwrap().as_str(), ok);
        }
        let long = "x".repeat(65);
        for bad in [
            "",
            " ",
            "a b",
            "a/b",
            "a\\b",
            "a:b",
            "a@b",
            "a+b",
            "a\0",
            "a\n",
            "é",
            "aé",
            "Ω",
            "a\u{200b}",
            "😀",
            long.as_str(),
        ] {
            assert!(!is_valid_id(bad), "{bad:?}");
            assert!(Id::parse(bad).is_err(), "{bad:?}");
            assert!(LicenseeId::parse(bad).is_err(), "{bad:?}");
        }
        // 64 bytes of multi-byte characters is still refused: the characters are the problem.
        assert!(!is_valid_id(&"é".repeat(32)));
    }

    #[test]
    fn errors_name_the_value_and_the_rule() {
        assert_eq!(Id::parse(""), Err(IdError::Empty));
        let e = Id::parse("a b").unwrap_err();
        assert_eq!(
            e,
            IdError::BadChar {
                value: "a b".into(),
                ch: ' ',
                at: 1
            }
        );
        assert_eq!(
            e.to_string(),
            format!("invalid id \"a b\": character ' ' at byte 1 is not allowed; {ID_RULE}")
        );
        let e = Id::parse("a\nb").unwrap_err();
        assert!(
            e.to_string().starts_with("invalid id \"a\\nb\": character '\\n'"),
            "{e}"
        );
        let e = Id::parse("x".repeat(65)).unwrap_err();
        assert_eq!(e.value().len(), 65);
        assert!(e.to_string().contains("65 bytes"), "{e}");
        let huge = "y".repeat(10_000);
        let shown = Id::parse(huge.as_str()).unwrap_err().to_string();
        assert!(shown.len() < 300, "{shown}");
        assert!(
            shown.contains("… (10000 characters)") && shown.ends_with(ID_RULE),
            "{shown}"
        );
    }

    #[test]
    fn an_id_is_a_string() {
        let id: Id = "acme".parse().unwrap();
        assert_eq!(id, "acme");
        assert_eq!(&*id, "acme");
        assert_eq!(id.to_string(), "acme");
        assert_eq!(id.len(), 4);
        assert_eq!(Id::try_from(String::from("acme")).unwrap(), id);
        let set: HashSet<Id> = [id.clone()].into();
        assert!(set.contains("acme"), "Borrow<str> hashes like the string");
        assert!(Id::parse("a").unwrap() < Id::parse("b").unwrap());
        let l = LicenseeId::from(id.clone());
        assert_eq!(l.as_id(), &id);
        assert_eq!(l, "acme");
        assert_eq!(String::from(l.clone()), "acme");
        assert_eq!(Id::from(l), id);
    }

    #[test]
    fn serde_writes_the_string_and_validates_on_read() {
        let id = Id::parse("acme.corp_1").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"acme.corp_1\"");
        assert_eq!(serde_json::from_str::<Id>("\"acme.corp_1\"").unwrap(), id);
        let l = LicenseeId::parse("acme").unwrap();
        assert_eq!(serde_json::to_string(&l).unwrap(), "\"acme\"");
        assert_eq!(serde_json::from_str::<LicenseeId>("\"acme\"").unwrap(), l);
        for bad in ["\"\"", "\"a b\"", "\"a/b\"", "\"\\u00e9\"", "1", "null"] {
            assert!(serde_json::from_str::<Id>(bad).is_err(), "{bad}");
            assert!(serde_json::from_str::<LicenseeId>(bad).is_err(), "{bad}");
        }
        let e = serde_json::from_str::<Id>("\"a b\"").unwrap_err().to_string();
        assert!(e.contains("invalid id \"a b\""), "{e}");
    }
}
