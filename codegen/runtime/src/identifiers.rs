//! Matrix identifiers that validate when parsed: server names, user IDs, room IDs,
//! room aliases and event IDs, per the spec's appendix "Identifier Grammar".
//!
//! Each type holds the identifier as the plain string it is on the wire (serde
//! reads and writes it as a JSON string) and exposes its parts. Parsing accepts
//! what the spec says implementations MUST accept — user IDs with historical
//! localparts among them — while `UserId::new` builds only IDs of the current
//! grammar, as a server creating accounts must.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::request::FromParam;

/// Why a string is not a valid identifier of the kind asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdError {
    pub kind: &'static str,
    pub reason: &'static str,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a valid {}: {}", self.kind, self.reason)
    }
}

impl std::error::Error for IdError {}

/// Identifiers with a sigil and a server name are at most this many bytes long.
const MAX_BYTES: usize = 255;

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            const KIND: &'static str = $kind;

            pub fn as_str(&self) -> &str {
                &self.0
            }

            fn error(reason: &'static str) -> IdError {
                IdError { kind: Self::KIND, reason }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl FromParam for $name {
            fn from_param(s: &str) -> Option<Self> {
                Self::parse(s).ok()
            }
        }
    };
}

identifier!(
    /// A server name: `hostname [":" port]`, the hostname a DNS name, a dotted-quad
    /// IPv4 literal or a bracketed IPv6 literal (`matrix.org:8448`, `[::1]`).
    /// Compared case-sensitively, as the spec requires.
    ServerName,
    "server name"
);

impl ServerName {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        split_server_name(s)?;
        Ok(ServerName(s.to_owned()))
    }

    /// The hostname, with the brackets of an IPv6 literal.
    pub fn host(&self) -> &str {
        split_server_name(&self.0).map_or(&self.0, |(host, _)| host)
    }

    /// The explicit port, if any.
    pub fn port(&self) -> Option<u16> {
        let (_, port) = split_server_name(&self.0).ok()?;
        port?.parse().ok()
    }
}

/// `(hostname, port)` of a valid server name.
fn split_server_name(s: &str) -> Result<(&str, Option<&str>), IdError> {
    let err = ServerName::error;
    let (host, rest) = if let Some(inner) = s.strip_prefix('[') {
        let end = inner
            .find(']')
            .ok_or(err("an IPv6 literal lacks its `]`"))?;
        let literal = &inner[..end];
        let chars_ok = (2..=45).contains(&literal.len())
            && literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !chars_ok || literal.parse::<Ipv6Addr>().is_err() {
            return Err(err("the IPv6 literal is not an IPv6 address"));
        }
        s.split_at(end + 2)
    } else {
        let end = s.find(':').unwrap_or(s.len());
        let host = &s[..end];
        if host.is_empty() || host.len() > 255 {
            return Err(err("the hostname must be 1 to 255 characters"));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(err("a hostname has only letters, digits, `-` and `.`"));
        }
        // Four dot-separated numbers are an IPv4 literal and must be one.
        let numeric = host.split('.').count() == 4
            && host
                .split('.')
                .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
        if numeric && host.parse::<Ipv4Addr>().is_err() {
            return Err(err("an IPv4 literal has four numbers from 0 to 255"));
        }
        s.split_at(end)
    };
    let port = match rest.strip_prefix(':') {
        None if rest.is_empty() => None,
        None => return Err(err("only a port may follow the hostname")),
        // The grammar says 1 to 5 digits; a TCP port also fits 16 bits (as ruma
        // checks too).
        Some(p)
            if (1..=5).contains(&p.len())
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>().is_ok() =>
        {
            Some(p)
        }
        Some(_) => return Err(err("the port must be a number from 0 to 65535")),
    };
    Ok((host, port))
}

/// `&localpart:server_name` with `sigil`: the localpart (not checked here) and a
/// checked server name, within the length limit.
fn split_namespaced(
    s: &str,
    sigil: char,
    error: fn(&'static str) -> IdError,
) -> Result<(&str, &str), IdError> {
    if s.len() > MAX_BYTES {
        return Err(error("longer than 255 bytes"));
    }
    let rest = s
        .strip_prefix(sigil)
        .ok_or(error("it does not start with its sigil"))?;
    let (local, server) = rest
        .split_once(':')
        .ok_or(error("it has no `:` before the server name"))?;
    if local.contains('\0') {
        return Err(error("the localpart contains NUL"));
    }
    split_server_name(server).map_err(|e| error(e.reason))?;
    Ok((local, server))
}

identifier!(
    /// A user ID, `@localpart:server_name`. Parsing accepts the historical
    /// localparts the spec says servers and clients MUST accept (any characters but
    /// `:` and NUL, even none); [`UserId::new`] builds only the current grammar.
    UserId,
    "user ID"
);

impl UserId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        split_namespaced(s, '@', Self::error)?;
        Ok(UserId(s.to_owned()))
    }

    /// A user ID of the current grammar, as a server creates them: a localpart of
    /// `a-z 0-9 . _ = - / +`, at most 255 bytes in all.
    pub fn new(localpart: &str, server_name: &ServerName) -> Result<Self, IdError> {
        if localpart.is_empty() || !localpart.bytes().all(is_user_id_char) {
            return Err(Self::error(
                "a localpart has only the characters a-z, 0-9, . _ = - / +",
            ));
        }
        // Both parts are valid already: only the length is left to check.
        let id = format!("@{localpart}:{server_name}");
        if id.len() > MAX_BYTES {
            return Err(Self::error("longer than 255 bytes"));
        }
        Ok(UserId(id))
    }

    pub fn localpart(&self) -> &str {
        self.parts().0
    }

    pub fn server_name(&self) -> &str {
        self.parts().1
    }

    /// Whether the localpart is outside the current grammar (allowed, deprecated).
    pub fn is_historical(&self) -> bool {
        let local = self.localpart();
        local.is_empty() || !local.bytes().all(is_user_id_char)
    }

    fn parts(&self) -> (&str, &str) {
        namespaced_parts(&self.0)
    }
}

/// `(localpart, server name)` of a parsed `&localpart:server_name`.
fn namespaced_parts(id: &str) -> (&str, &str) {
    id[1..].split_once(':').unwrap_or(("", ""))
}

fn is_user_id_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b"._=-/+".contains(&b)
}

identifier!(
    /// A room alias, `#localpart:server_name`.
    RoomAlias,
    "room alias"
);

impl RoomAlias {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        split_namespaced(s, '#', Self::error)?;
        Ok(RoomAlias(s.to_owned()))
    }

    pub fn alias(&self) -> &str {
        namespaced_parts(&self.0).0
    }

    pub fn server_name(&self) -> &str {
        namespaced_parts(&self.0).1
    }
}

/// `&opaque` or `&opaque:server_name` (room and event IDs: with a server name in
/// early room versions, a base64 hash in later ones).
fn check_opaque(s: &str, sigil: char, error: fn(&'static str) -> IdError) -> Result<(), IdError> {
    if s.len() > MAX_BYTES {
        return Err(error("longer than 255 bytes"));
    }
    let rest = s
        .strip_prefix(sigil)
        .ok_or(error("it does not start with its sigil"))?;
    if rest.contains(':') {
        return split_namespaced(s, sigil, error).map(drop);
    }
    let base64 = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/-_".contains(&b));
    if !base64 {
        return Err(error("without a server name it is unpadded base64"));
    }
    Ok(())
}

identifier!(
    /// A room ID: `!opaque:server_name` in early room versions, `!` and the
    /// base64 hash of the create event in later ones. Opaque to clients.
    RoomId,
    "room ID"
);

impl RoomId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_opaque(s, '!', Self::error)?;
        Ok(RoomId(s.to_owned()))
    }
}

identifier!(
    /// An event ID: `$opaque:server_name` in the first room versions, `$` and a
    /// base64 hash in later ones. Opaque to clients.
    EventId,
    "event ID"
);

impl EventId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_opaque(s, '$', Self::error)?;
        Ok(EventId(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_follow_the_grammar() {
        for ok in [
            "matrix.org",
            "matrix.org:8888",
            "1.2.3.4",
            "1.2.3.4:1234",
            "[1234:5678::abcd]",
            "[1234:5678::abcd]:5678",
            "[::1]",
            "[::ffff:1.2.3.4]:8448",
            "localhost",
            "MATRIX.org",
            "a-b.c",
            "1.2.3",
            "999.1.1",
            "example.com:65535",
        ] {
            assert!(ServerName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ":8448",
            "matrix.org:",
            "matrix.org:123456",
            "matrix.org:65536",
            "matrix.org:+1",
            "matrix.org:port",
            "matrix_org",
            "matrix.org/path",
            "[1234:5678::abcd",
            "[not:ipv6]",
            "[::1]x",
            "1.2.3.256",
            "1234:5678::abcd",
            "exämple.org",
            &"a".repeat(256),
        ] {
            assert!(ServerName::parse(bad).is_err(), "{bad:?}");
        }
        let s = ServerName::parse("[::1]:8448").unwrap();
        assert_eq!((s.host(), s.port()), ("[::1]", Some(8448)));
        assert_eq!(ServerName::parse("example.org").unwrap().port(), None);
    }

    #[test]
    fn user_ids_parse_historical_and_build_current_ones() {
        let id = UserId::parse("@alice:example.org:8448").unwrap();
        assert_eq!(
            (id.localpart(), id.server_name()),
            ("alice", "example.org:8448")
        );
        assert!(!id.is_historical());
        for historical in ["@Alice:x.org", "@:x.org", "@a b\u{7}c:x.org", "@ünï:x.org"] {
            let id = UserId::parse(historical).unwrap();
            assert!(id.is_historical(), "{historical:?}");
        }
        for bad in [
            "alice:x.org",
            "@alice",
            "@alice:",
            "@al\0ice:x.org",
            "@alice:x_y",
            "#alice:x.org",
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
        let server = ServerName::parse("example.org").unwrap();
        assert_eq!(
            UserId::new("a.b_c=d-e/f+0", &server).unwrap(),
            "@a.b_c=d-e/f+0:example.org"
        );
        for bad in ["Alice", "", "a b", "ä"] {
            assert!(UserId::new(bad, &server).is_err(), "{bad:?}");
        }
        // 255 bytes in all, sigil and server name included.
        let local = "a".repeat(255 - "@:example.org".len());
        assert!(UserId::new(&local, &server).is_ok());
        assert!(UserId::new(&format!("{local}a"), &server).is_err());
    }

    #[test]
    fn aliases_room_and_event_ids() {
        let alias = RoomAlias::parse("#room:example.org").unwrap();
        assert_eq!(
            (alias.alias(), alias.server_name()),
            ("room", "example.org")
        );
        assert!(RoomAlias::parse("#:example.org").is_ok());
        assert!(RoomAlias::parse("!room:example.org").is_err());
        for ok in [
            "!abc:example.org",
            "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM",
        ] {
            assert!(RoomId::parse(ok).is_ok(), "{ok}");
        }
        for ok in [
            "$abc:example.org",
            "$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk",
            "$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg",
        ] {
            assert!(EventId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["!", "!has space", "$", "$a:bad_server", "abc"] {
            assert!(
                RoomId::parse(bad).is_err() && EventId::parse(bad).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn identifiers_are_plain_json_strings_and_refuse_bad_values() {
        let id: UserId = serde_json::from_str(r#""@a:b.c""#).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""@a:b.c""#);
        let err = serde_json::from_str::<UserId>(r#""nope""#).unwrap_err();
        assert!(err.to_string().contains("not a valid user ID"), "{err}");
        assert_eq!(UserId::from_param("@a:b.c"), Some(id));
        assert_eq!(ServerName::from_param("b_c"), None);
    }
}
