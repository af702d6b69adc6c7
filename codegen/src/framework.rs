//! The answers the generated router gives by itself, per operation.
//!
//! The runtime (`runtime/router.rs`, `request.rs`, `auth.rs`) parses, authenticates
//! and limits requests before an implementation sees them, and answers the
//! failures with standard Matrix errors. The client-server API lists these error
//! codes as ones "any API endpoint" may return ("Common error codes": `M_BAD_JSON`,
//! `M_NOT_JSON`, `M_MISSING_TOKEN`, `M_UNKNOWN_TOKEN`, `M_LIMIT_EXCEEDED`,
//! `M_USER_LOCKED`; and `M_MISSING_PARAM`, `M_INVALID_PARAM`, `M_TOO_LARGE`), so
//! upstream does not repeat them on each operation. Tooling that holds a server to
//! its description (the bundled OpenAPI document of `cargo xtask openapi`, which a
//! fuzzer reads) needs them per operation: this module is the one place that
//! knows which operation can get which.
//!
//! They concern the operations the service serves only: a file with
//! `x-served: false` (an API the service calls) has no route, so the router
//! never answers for its operations, and the bundle leaves them out.
//!
//! They are documentation, not types: the generated `Response` enums do not gain
//! variants for them (the router sends them as `MatrixError`s). An API file with
//! OAuth's error envelope gets them in OAuth's terms, as the runtime converts
//! them (`OAuthError::from(MatrixError)`): the code of their status.

use crate::ir::{Api, Body, Content, Envelope, Operation, Status, Ty, TypeKind};
use crate::versions::Version;

/// One status the router may answer for an operation, with the error codes it
/// uses for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameworkResponse {
    pub status: u16,
    /// The `errcode`s, in the order the router checks for them.
    pub errcodes: Vec<&'static str>,
    /// When the router answers this, for the response's description.
    pub description: String,
}

/// Operations a locked account may still call (client-server API, "Account
/// locking": every API but these answers `401 M_USER_LOCKED`).
const LOCK_EXEMPT: &[&str] = &["logout", "logout_all"];

/// Whether a locked account may still call `op`: the generated `METADATA` says so
/// (`lock_exempt`), so an authenticator reads it instead of comparing names.
pub fn lock_exempt(op: &Operation) -> bool {
    LOCK_EXEMPT.contains(&op.operation_id.as_str())
}

/// Whether `op` uses user-interactive authentication: its JSON body has an
/// `auth` field and it documents a `401` that is not an error envelope (the
/// challenge with `flows`, `session`, `completed`). The generated `METADATA`
/// says so (`uia`), for an implementation to check its own use against.
pub fn uses_uia(api: &Api, op: &Operation) -> bool {
    let body_has_auth = match op.body.as_ref().map(|b| &b.content) {
        Some(Content::Json(Ty::Named(id) | Ty::Boxed(id))) => matches!(
            &api.types[*id].kind,
            TypeKind::Struct { fields, .. } if fields.iter().any(|f| f.wire == "auth")
        ),
        _ => false,
    };
    body_has_auth && op.variants().any(|r| r.status == Status::Code(401))
}

/// The client-server base path of the releases before v1.1, and the one that
/// replaced it.
const LEGACY_CLIENT_BASE: &str = "/_matrix/client/r0";
const CLIENT_BASE: &str = "/_matrix/client/v3";

/// The base path the operation was also served under before v1.1, when it
/// has one: the spec renamed `/_matrix/client/r0` to `/v3` in v1.1, so an
/// operation that predates v1.1 (no `x-addedInMatrixVersion`, or an earlier
/// one) was served there and clients of that time still call it; one added
/// since never was. Its legacy path is this base and its own path.
pub fn legacy_base(base_path: &str, op: &Operation) -> Option<&'static str> {
    let predates_v1_1 = match &op.doc.added_in {
        None => true,
        Some(v) => Version::parse(v).is_some_and(|v| v < Version::FIRST),
    };
    (base_path == CLIENT_BASE && predates_v1_1).then_some(LEGACY_CLIENT_BASE)
}

/// The statuses the router (with the implementation's authenticator) can answer
/// for `op` without the implementation's operation being called, in status
/// order, with the codes of the file's error `envelope`: for Matrix's,
///
/// - `400` for operations with parameters or a JSON body: a body that is not JSON
///   (`M_NOT_JSON`), JSON of the wrong shape (`M_BAD_JSON`), a missing required
///   field or parameter (`M_MISSING_PARAM`), a parameter value of the wrong type
///   (`M_INVALID_PARAM`);
/// - `401` for operations with security: no credential where one is needed
///   (`M_MISSING_TOKEN`; with optional security, the implementation decides), a credential the authenticator does not know
///   (`M_UNKNOWN_TOKEN`) or whose account is locked (`M_USER_LOCKED`, except on
///   the logout operations);
/// - `413 M_TOO_LARGE` for operations with a body;
/// - `429 M_LIMIT_EXCEEDED` for rate-limited operations.
pub fn framework_responses(op: &Operation, envelope: Envelope) -> Vec<FrameworkResponse> {
    let matrix = matrix_framework_responses(op);
    match envelope {
        Envelope::Matrix => matrix,
        Envelope::OAuth => matrix.into_iter().map(in_oauth_terms).collect(),
    }
}

/// A framework answer as an OAuth file's operations get it: the runtime turns
/// the router's Matrix error into the OAuth code of its status (RFC 6749
/// §5.2's `invalid_request`, RFC 6750's `invalid_token`, and
/// `temporarily_unavailable` for a rate limit, with `Retry-After`).
fn in_oauth_terms(fr: FrameworkResponse) -> FrameworkResponse {
    let (code, description) = match fr.status {
        401 => (
            "invalid_token",
            "The caller is not authenticated (`invalid_token`): no access token, or an unknown, revoked or expired one.",
        ),
        413 => (
            "invalid_request",
            "The request body is larger than the server accepts (`invalid_request`).",
        ),
        429 => (
            "temporarily_unavailable",
            "Rate limited (`temporarily_unavailable`): wait the `Retry-After` header's seconds before trying again.",
        ),
        _ => (
            "invalid_request",
            "The request is malformed (`invalid_request`): a body or parameter that cannot be read, or a missing required one.",
        ),
    };
    FrameworkResponse {
        status: fr.status,
        errcodes: vec![code],
        description: description.into(),
    }
}

fn matrix_framework_responses(op: &Operation) -> Vec<FrameworkResponse> {
    let mut out = Vec::new();
    let json_body = matches!(
        op.body,
        Some(Body {
            content: Content::Json(_),
            ..
        })
    );
    let form_body = matches!(
        op.body,
        Some(Body {
            content: Content::Form(_),
            ..
        })
    );
    let required_param = op.params.iter().any(|p| p.required);
    let mut bad_request = Vec::new();
    if json_body {
        bad_request.extend(["M_NOT_JSON", "M_BAD_JSON"]);
    }
    if json_body || form_body || required_param {
        bad_request.push("M_MISSING_PARAM");
    }
    if !op.params.is_empty() || form_body {
        bad_request.push("M_INVALID_PARAM");
    }
    if !bad_request.is_empty() {
        let mut what = Vec::new();
        if json_body {
            what.push(
                "a body that is not JSON (`M_NOT_JSON`) or JSON of the wrong shape (`M_BAD_JSON`)",
            );
        }
        if bad_request.contains(&"M_MISSING_PARAM") {
            what.push(if (json_body || form_body) && required_param {
                "a missing required field or parameter (`M_MISSING_PARAM`)"
            } else if json_body || form_body {
                "a missing required field (`M_MISSING_PARAM`)"
            } else {
                "a missing required parameter (`M_MISSING_PARAM`)"
            });
        }
        if form_body {
            what.push("a form field that is not valid for its type (`M_INVALID_PARAM`)");
        } else if !op.params.is_empty() {
            what.push("a parameter value that is not valid for its type (`M_INVALID_PARAM`)");
        }
        out.push(FrameworkResponse {
            status: 400,
            errcodes: bad_request,
            description: format!("The request is malformed: {}.", join_or(&what)),
        });
    }
    if !op.security.schemes.is_empty() {
        let mut codes = Vec::new();
        let mut what = Vec::new();
        // Where security is optional the router lets a request without a token
        // through, but an implementation that supports no token-less flow (a
        // password reset by email it cannot send, say) still answers this.
        codes.push("M_MISSING_TOKEN");
        what.push(if op.security.optional {
            "no access token where the server needs one (`M_MISSING_TOKEN`)"
        } else {
            "no access token (`M_MISSING_TOKEN`)"
        });
        codes.push("M_UNKNOWN_TOKEN");
        what.push("an unknown, revoked or expired access token (`M_UNKNOWN_TOKEN`, with `soft_logout` when it expired)");
        if !lock_exempt(op) {
            codes.push("M_USER_LOCKED");
            what.push("the token's account is locked (`M_USER_LOCKED`, with `soft_logout: true`)");
        }
        out.push(FrameworkResponse {
            status: 401,
            errcodes: codes,
            description: format!("The caller is not authenticated: {}.", join_or(&what)),
        });
    }
    if op.body.is_some() {
        out.push(FrameworkResponse {
            status: 413,
            errcodes: vec!["M_TOO_LARGE"],
            description: "The request body is larger than the server accepts (`M_TOO_LARGE`)."
                .into(),
        });
    }
    if op.rate_limited {
        out.push(FrameworkResponse {
            status: 429,
            errcodes: vec!["M_LIMIT_EXCEEDED"],
            description: "Rate limited (`M_LIMIT_EXCEEDED`): wait `retry_after_ms` (or the `Retry-After` header's seconds) before trying again.".into(),
        });
    }
    out
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{}, or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    /// The router's error codes are the ones the runtime constructs (the
    /// authenticator's `M_USER_LOCKED` is the implementation's).
    #[test]
    fn errcodes_are_the_runtimes() {
        let runtime = include_str!("../runtime/src/error.rs");
        for code in [
            "M_NOT_JSON",
            "M_BAD_JSON",
            "M_MISSING_PARAM",
            "M_INVALID_PARAM",
            "M_MISSING_TOKEN",
            "M_UNKNOWN_TOKEN",
            "M_TOO_LARGE",
            "M_LIMIT_EXCEEDED",
        ] {
            assert!(
                runtime.contains(&format!("\"{code}\"")),
                "{code} is not in runtime/error.rs"
            );
        }
    }

    /// The OAuth codes are the ones the runtime converts the router's errors
    /// to.
    #[test]
    fn oauth_codes_are_the_runtimes() {
        let runtime = include_str!("../runtime/src/oauth_error.rs");
        for status in [400, 401, 413, 429] {
            let fr = super::in_oauth_terms(super::FrameworkResponse {
                status,
                errcodes: vec![],
                description: String::new(),
            });
            let code = fr.errcodes[0];
            assert!(
                runtime.contains(&format!("=> \"{code}\"")),
                "{code} is not a conversion in runtime/oauth_error.rs"
            );
            assert!(fr.description.contains(code), "{}", fr.description);
        }
    }
}
