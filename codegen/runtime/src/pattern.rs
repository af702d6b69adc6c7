//! Strings the spec constrains with a `pattern` (and no identifier format):
//! [`Matching<P>`] holds a string that matched `P`'s regular expression, so a
//! value that does not is refused when parsed — `400` naming the field —
//! before the implementation runs. The generator emits one marker type per
//! distinct pattern with [`pattern!`](crate::pattern).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use crate::request::FromParam;

/// A `pattern` of the spec, compiled once. Implemented by the marker types
/// the [`pattern!`](crate::pattern) macro defines.
pub trait Pattern: 'static {
    /// The pattern as the spec writes it (ECMA-262 syntax; JSON Schema patterns
    /// are not anchored, and neither is the check).
    const PATTERN: &'static str;
    fn regex() -> &'static regex::Regex;
}

/// Defines a marker type for a pattern. The generator checked at generation
/// time that the regular expression compiles.
#[macro_export]
macro_rules! pattern {
    ($(#[$meta:meta])* $name:ident, $pattern:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name;

        impl $crate::Pattern for $name {
            const PATTERN: &'static str = $pattern;
            fn regex() -> &'static $crate::__private::regex::Regex {
                static REGEX: ::std::sync::OnceLock<$crate::__private::regex::Regex> =
                    ::std::sync::OnceLock::new();
                REGEX.get_or_init(|| {
                    $crate::__private::regex::Regex::new($pattern)
                        .expect("the generator checked that the pattern compiles")
                })
            }
        }
    };
}

/// Why a string is not a [`Matching`] value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternError {
    pub pattern: &'static str,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "does not match the pattern `{}`", self.pattern)
    }
}

impl std::error::Error for PatternError {}

/// A string that matches the pattern `P`; the plain string on the wire.
pub struct Matching<P> {
    value: String,
    pattern: PhantomData<P>,
}

impl<P: Pattern> Matching<P> {
    pub fn new(value: impl Into<String>) -> Result<Self, PatternError> {
        let value = value.into();
        if P::regex().is_match(&value) {
            Ok(Matching {
                value,
                pattern: PhantomData,
            })
        } else {
            Err(PatternError {
                pattern: P::PATTERN,
            })
        }
    }
}

impl<P> Matching<P> {
    pub fn as_str(&self) -> &str {
        &self.value
    }

    pub fn into_string(self) -> String {
        self.value
    }
}

// By hand, not derived: a derive would require `P: Clone` and so on of the
// marker, which the value does not need.
impl<P> Clone for Matching<P> {
    fn clone(&self) -> Self {
        Matching {
            value: self.value.clone(),
            pattern: PhantomData,
        }
    }
}

impl<P> fmt::Debug for Matching<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.value, f)
    }
}

impl<P> fmt::Display for Matching<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl<P> PartialEq for Matching<P> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<P> Eq for Matching<P> {}

impl<P> PartialOrd for Matching<P> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<P> Ord for Matching<P> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}

impl<P> Hash for Matching<P> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state)
    }
}

impl<P> AsRef<str> for Matching<P> {
    fn as_ref(&self) -> &str {
        &self.value
    }
}

impl<P> std::ops::Deref for Matching<P> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.value
    }
}

impl<P> From<Matching<P>> for String {
    fn from(m: Matching<P>) -> String {
        m.value
    }
}

impl<P: Pattern> TryFrom<String> for Matching<P> {
    type Error = PatternError;
    fn try_from(value: String) -> Result<Self, PatternError> {
        Matching::new(value)
    }
}

impl<P: Pattern> TryFrom<&str> for Matching<P> {
    type Error = PatternError;
    fn try_from(value: &str) -> Result<Self, PatternError> {
        Matching::new(value)
    }
}

impl<P> serde::Serialize for Matching<P> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.value)
    }
}

impl<'de, P: Pattern> serde::Deserialize<'de> for Matching<P> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = String::deserialize(d)?;
        Matching::new(value).map_err(serde::de::Error::custom)
    }
}

impl<P: Pattern> FromParam for Matching<P> {
    fn from_param(s: &str) -> Option<Self> {
        Matching::new(s).ok()
    }
}

impl<P> crate::to_param::ToParam for Matching<P> {
    fn to_param(&self) -> String {
        self.value.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::pattern!(
        ProfileKey,
        "^(avatar_url|displayname|[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+)$"
    );
    crate::pattern!(StartsWithAt, "^@");

    #[test]
    fn values_are_checked_on_every_way_in() {
        assert!(Matching::<ProfileKey>::new("m.tz").is_ok());
        assert!(Matching::<ProfileKey>::new("displayname").is_ok());
        let err = Matching::<ProfileKey>::new("Bad Key").unwrap_err();
        assert!(
            err.to_string().contains("does not match the pattern"),
            "{err}"
        );
        // JSON Schema patterns are not anchored.
        assert!(Matching::<StartsWithAt>::new("@anything at all").is_ok());
        assert!(Matching::<StartsWithAt>::from_param("no").is_none());
        let json: Result<Matching<StartsWithAt>, _> = serde_json::from_str(r#""x""#);
        assert!(json.unwrap_err().to_string().contains("`^@`"));
        let ok: Matching<StartsWithAt> = serde_json::from_str(r#""@a""#).unwrap();
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#""@a""#);
    }
}
