//! The OAuth 2.0 `scope` a Matrix client requests (Matrix spec v1.19,
//! "Scope"): which access it wants and which device ID it allocates. This
//! server grants one kind of access — the full client-server API, like the
//! legacy login — so parsing reduces a scope to the device ID and to the
//! tokens to report back as granted.
//!
//! Policy for tokens other than the ones the spec allocates:
//!
//! - any other `urn:matrix:` token is refused (`invalid_scope`): it names a
//!   Matrix capability or restriction this server does not implement, and
//!   silently handing out full access instead could betray what the client
//!   (or the user consenting) expected;
//! - `urn:synapse:` tokens (`urn:synapse:admin:*`, which MAS accepts) are
//!   refused too: administrative access is never granted through OAuth here,
//!   and an admin tool is better told so at login than left with a session
//!   whose every admin call fails;
//! - every other token (`openid`, `offline_access`, `profile`, ...) is ignored
//!   as RFC 6749 section 3.3 allows: it is not granted and not reported back,
//!   so the granted scope tells the client what it did not get. Generic
//!   OAuth/OIDC libraries add such tokens on their own, and they ask for
//!   nothing this server would otherwise refuse.

use std::collections::HashSet;
use std::fmt;

/// Full read/write access to the client-server API.
pub const API_FULL: &str = "urn:matrix:client:api:*";
/// MSC2967's unstable spelling of [`API_FULL`], which matrix-rust-sdk still sends.
pub const API_FULL_UNSTABLE: &str = "urn:matrix:org.matrix.msc2967.client:api:*";
/// Prefix of the device allocation token; the device ID follows it.
pub const DEVICE_PREFIX: &str = "urn:matrix:client:device:";
/// MSC2967's unstable spelling of [`DEVICE_PREFIX`].
pub const DEVICE_PREFIX_UNSTABLE: &str = "urn:matrix:org.matrix.msc2967.client:device:";

/// Longest device ID accepted, in bytes. The spec sets no maximum; 255 keeps
/// IDs storable and displayable while leaving clients plenty of room.
pub const DEVICE_ID_MAX_LEN: usize = 255;

/// Why a requested scope was refused; the server answers OAuth `invalid_scope`
/// with `description` as `error_description`. Descriptions stay within the
/// characters RFC 6749 section 5.2 allows there (printable ASCII without `"`
/// and `\`): request text is quoted only once it is known to be scope-token
/// characters, which are the same set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeError {
    pub description: String,
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

impl std::error::Error for ScopeError {}

fn error(description: impl Into<String>) -> ScopeError {
    ScopeError {
        description: description.into(),
    }
}

/// A valid Matrix scope: the device it allocates and the tokens granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixScope {
    /// The device ID from the (single) device token.
    pub device_id: String,
    /// The granted scope tokens, as the client spelled them, deduplicated, in
    /// request order; ignored tokens are left out.
    pub tokens: Vec<String>,
}

impl fmt::Display for MatrixScope {
    /// The granted scope as OAuth writes it: tokens separated by single spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tokens.join(" "))
    }
}

/// Parses a requested `scope` (RFC 6749 section 3.3: scope tokens separated
/// by single spaces). It must contain [`API_FULL`] (or its unstable spelling)
/// and exactly one device ID, through [`DEVICE_PREFIX`] or
/// [`DEVICE_PREFIX_UNSTABLE`]. The same device ID in both spellings counts as
/// one device: a client may send both for servers of either age.
///
/// Empty tokens (leading, trailing or doubled spaces) are refused: the RFC's
/// grammar has none, and accepting them would only hide client bugs.
pub fn parse(scope: &str) -> Result<MatrixScope, ScopeError> {
    if scope.is_empty() {
        return Err(error(format!(
            "the scope is empty: it must contain {API_FULL} and one {DEVICE_PREFIX}<device_id>"
        )));
    }
    let mut seen = HashSet::new();
    let mut tokens = Vec::new();
    let mut has_api = false;
    let mut device_id: Option<&str> = None;
    for token in scope.split(' ') {
        if token.is_empty() {
            return Err(error(
                "the scope has an empty token: tokens are separated by single spaces \
                 (RFC 6749 section 3.3)",
            ));
        }
        if let Some(c) = token.chars().find(|&c| !is_scope_char(c)) {
            return Err(error(format!(
                "a scope token contains U+{:04X}, which RFC 6749 section 3.3 does not allow \
                 (only printable ASCII other than space, double quote and backslash)",
                u32::from(c)
            )));
        }
        if !seen.insert(token) {
            continue;
        }
        if token == API_FULL || token == API_FULL_UNSTABLE {
            has_api = true;
        } else if let Some(id) = token
            .strip_prefix(DEVICE_PREFIX)
            .or_else(|| token.strip_prefix(DEVICE_PREFIX_UNSTABLE))
        {
            check_device_id(id)?;
            match device_id {
                Some(first) if first != id => {
                    return Err(error(format!(
                        "the scope has more than one device token (device IDs {} and {}): \
                         exactly one {DEVICE_PREFIX}<device_id> is required",
                        quote(first),
                        quote(id)
                    )));
                }
                _ => device_id = Some(id),
            }
        } else if starts_with_ignore_case(token, "urn:matrix:") {
            return Err(error(format!(
                "the scope token {} is not one this server grants: it supports {API_FULL} and \
                 {DEVICE_PREFIX}<device_id> (or their unstable MSC2967 spellings)",
                quote(token)
            )));
        } else if starts_with_ignore_case(token, "urn:synapse:") {
            return Err(error(format!(
                "the scope token {} asks for administrative access, which this server never \
                 grants through OAuth",
                quote(token)
            )));
        } else {
            // Not ours to grant (openid, offline_access, ...): left out of the
            // granted scope, see the module documentation.
            continue;
        }
        tokens.push(token.to_owned());
    }
    if !has_api {
        return Err(error(format!(
            "the scope must contain {API_FULL}: it is the only access this server grants"
        )));
    }
    let Some(device_id) = device_id else {
        return Err(error(format!(
            "the scope must contain exactly one {DEVICE_PREFIX}<device_id> token; it has none"
        )));
    };
    Ok(MatrixScope {
        device_id: device_id.to_owned(),
        tokens,
    })
}

/// RFC 6749 section 3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_char(c: char) -> bool {
    matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

/// The spec asks clients for RFC 3986 unreserved characters and lets the
/// server refuse others; this server does, since device IDs end up in URL
/// paths (`/devices/{deviceId}`) and on screens where anything else is a
/// nuisance. It also lets servers refuse IDs that are "not long enough"; it
/// does not: device IDs are not secrets, uniqueness is per user and settled
/// when the device is allocated, and the legacy login accepts short IDs too.
/// So the length is 1 to [`DEVICE_ID_MAX_LEN`] bytes.
fn check_device_id(id: &str) -> Result<(), ScopeError> {
    if id.is_empty() {
        return Err(error(format!(
            "the device token {DEVICE_PREFIX}<device_id> has an empty device ID"
        )));
    }
    if id.len() > DEVICE_ID_MAX_LEN {
        return Err(error(format!(
            "the device ID is {} bytes long; at most {DEVICE_ID_MAX_LEN} are allowed",
            id.len()
        )));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        return Err(error(format!(
            "the device ID {} has characters outside A-Z a-z 0-9 - . _ ~ \
             (RFC 3986 unreserved), the only ones this server allows",
            quote(id)
        )));
    }
    Ok(())
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Backticked for an error description, shortened so that a hostile request
/// cannot make the error as large as itself. Callers pass only scope-token
/// characters (ASCII), so slicing at a byte index is safe.
fn quote(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        format!("`{s}`")
    } else {
        format!("`{}...`", &s[..MAX])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(scope: &str) -> MatrixScope {
        parse(scope).unwrap_or_else(|e| panic!("{scope:?}: {e}"))
    }

    fn err(scope: &str) -> String {
        match parse(scope) {
            Ok(s) => panic!("{scope:?} was accepted as {s:?}"),
            Err(e) => {
                // Every description must be valid as an OAuth error_description.
                assert!(
                    e.description.chars().all(|c| c == ' ' || is_scope_char(c)),
                    "{:?}",
                    e.description
                );
                e.description
            }
        }
    }

    #[test]
    fn the_stable_scope_parses() {
        let s = ok("urn:matrix:client:api:* urn:matrix:client:device:AABBCCDDEE");
        assert_eq!(s.device_id, "AABBCCDDEE");
        assert_eq!(
            s.tokens,
            [
                "urn:matrix:client:api:*",
                "urn:matrix:client:device:AABBCCDDEE"
            ]
        );
        assert_eq!(
            s.to_string(),
            "urn:matrix:client:api:* urn:matrix:client:device:AABBCCDDEE"
        );
    }

    #[test]
    fn the_unstable_msc2967_scope_parses_as_spelled() {
        let scope = "urn:matrix:org.matrix.msc2967.client:api:* \
                     urn:matrix:org.matrix.msc2967.client:device:x1Y2z3";
        let s = ok(scope);
        assert_eq!(s.device_id, "x1Y2z3");
        assert_eq!(s.to_string(), scope);
    }

    #[test]
    fn order_is_kept_and_duplicates_dropped() {
        let s = ok("urn:matrix:client:device:D urn:matrix:client:api:* \
             urn:matrix:client:device:D urn:matrix:client:api:*");
        assert_eq!(
            s.to_string(),
            "urn:matrix:client:device:D urn:matrix:client:api:*"
        );
    }

    #[test]
    fn the_same_device_in_both_spellings_is_one_device() {
        let s = ok(
            "urn:matrix:client:api:* urn:matrix:org.matrix.msc2967.client:api:* \
             urn:matrix:client:device:ABC urn:matrix:org.matrix.msc2967.client:device:ABC",
        );
        assert_eq!(s.device_id, "ABC");
        assert_eq!(s.tokens.len(), 4);
    }

    #[test]
    fn exactly_one_device_is_required() {
        assert!(err("urn:matrix:client:api:*").contains("has none"));
        let two = err("urn:matrix:client:api:* urn:matrix:client:device:A \
             urn:matrix:client:device:B");
        assert!(two.contains("more than one device"), "{two}");
        assert!(two.contains("`A`") && two.contains("`B`"), "{two}");
        assert!(err("urn:matrix:client:api:* urn:matrix:client:device:A \
             urn:matrix:org.matrix.msc2967.client:device:B")
        .contains("more than one device"));
    }

    #[test]
    fn full_api_access_is_required() {
        let e = err("urn:matrix:client:device:ABC");
        assert!(e.contains(API_FULL), "{e}");
        // Only the exact tokens count: no prefixes, no case folding.
        err("urn:matrix:client:api urn:matrix:client:device:ABC");
        err("URN:MATRIX:CLIENT:API:* urn:matrix:client:device:ABC");
        err("openid urn:matrix:client:device:ABC");
    }

    #[test]
    fn device_ids_are_checked() {
        let max = "a".repeat(DEVICE_ID_MAX_LEN);
        assert_eq!(
            ok(&format!(
                "urn:matrix:client:api:* urn:matrix:client:device:{max}"
            ))
            .device_id,
            max
        );
        ok("urn:matrix:client:api:* urn:matrix:client:device:a-b.c_d~e");
        ok("urn:matrix:client:api:* urn:matrix:client:device:X");
        assert!(
            err("urn:matrix:client:api:* urn:matrix:client:device:").contains("empty device ID")
        );
        let long = format!("urn:matrix:client:api:* urn:matrix:client:device:{max}a");
        assert!(err(&long).contains("at most 255"));
        // Allowed in a scope token, but not unreserved: refused.
        for id in ["a:b", "a/b", "a%20b", "a!b", "a@b", "a*", "[x]"] {
            let e = err(&format!(
                "urn:matrix:client:api:* urn:matrix:client:device:{id}"
            ));
            assert!(e.contains("unreserved"), "{id}: {e}");
        }
    }

    #[test]
    fn unknown_matrix_and_admin_tokens_are_refused() {
        let base = "urn:matrix:client:api:* urn:matrix:client:device:ABC";
        for extra in [
            "urn:matrix:client:api:read:*",
            "urn:matrix:client:com.example.msc9999.foo",
            "urn:matrix:org.matrix.msc2967.client:guest",
            "URN:Matrix:client:whatever",
        ] {
            let e = err(&format!("{base} {extra}"));
            assert!(e.contains("not one this server grants"), "{extra}: {e}");
        }
        for admin in ["urn:synapse:admin:*", "URN:SYNAPSE:admin:*"] {
            let e = err(&format!("{base} {admin}"));
            assert!(e.contains("administrative"), "{admin}: {e}");
        }
    }

    #[test]
    fn other_tokens_are_ignored_and_not_granted() {
        let s = ok("openid urn:matrix:client:api:* offline_access \
             urn:matrix:client:device:ABC profile urn:example:thing");
        assert_eq!(
            s.to_string(),
            "urn:matrix:client:api:* urn:matrix:client:device:ABC"
        );
    }

    #[test]
    fn the_scope_grammar_is_enforced() {
        assert!(err("").contains("empty"));
        for bad in [
            " urn:matrix:client:api:* urn:matrix:client:device:A",
            "urn:matrix:client:api:* urn:matrix:client:device:A ",
            "urn:matrix:client:api:*  urn:matrix:client:device:A",
            " ",
        ] {
            assert!(err(bad).contains("empty token"), "{bad:?}");
        }
        for bad in [
            "urn:matrix:client:api:*\turn:matrix:client:device:A",
            "urn:matrix:client:api:* urn:matrix:client:device:A\n",
            "urn:matrix:client:api:* \"x\" urn:matrix:client:device:A",
            "urn:matrix:client:api:* a\\b urn:matrix:client:device:A",
            "urn:matrix:client:api:* urn:matrix:client:device:é",
            "urn:matrix:client:api:* urn:matrix:client:device:A \u{202e}",
        ] {
            assert!(err(bad).contains("RFC 6749"), "{bad:?}");
        }
    }

    #[test]
    fn hostile_inputs_are_refused_quickly_and_briefly() {
        // A megabyte of one device token, repeated tokens and garbage.
        let huge_id = format!(
            "urn:matrix:client:api:* urn:matrix:client:device:{}",
            "a".repeat(1 << 20)
        );
        assert!(err(&huge_id).len() < 200);
        let many = "openid ".repeat(200_000) + "urn:matrix:client:api:* urn:matrix:client:device:A";
        assert_eq!(ok(&many).tokens.len(), 2);
        let huge_unknown = format!(
            "urn:matrix:client:api:* urn:matrix:client:device:A urn:matrix:{}",
            "x".repeat(1 << 20)
        );
        assert!(err(&huge_unknown).len() < 300);
        err("javascript:alert(1)");
        err("\0");
        err("😀 urn:matrix:client:api:* urn:matrix:client:device:A");
    }
}
