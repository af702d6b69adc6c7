//! Authentication and operation metadata: each operation's `security` becomes a
//! [`Security`] constant; the router extracts the credential it names and asks the
//! implementation's [`Authenticator`] who it belongs to.

use std::future::Future;
use std::time::Duration;

use http::{Method, StatusCode};

use crate::error::MatrixError;
use crate::request::RequestInfo;

/// Where a security scheme carries its credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Authorization: <scheme> <credential>`; an empty scheme takes the whole value.
    Authorization(&'static str),
    /// A query parameter (the deprecated `access_token`).
    Query(&'static str),
    Header(&'static str),
}

/// An operation's `security`: any one of `schemes` authenticates; `optional` when
/// the spec also lists `{}` (anonymous callers are allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Security {
    pub optional: bool,
    pub schemes: &'static [(&'static str, AuthScheme)],
}

/// Facts about an operation, generated next to its types.
#[derive(Clone, Debug)]
pub struct Metadata {
    pub operation_id: &'static str,
    pub method: Method,
    /// The full path template, e.g. `/_matrix/client/v3/register`.
    pub path: &'static str,
    pub security: Security,
    pub rate_limited: bool,
    pub added_in: Option<&'static str>,
    pub deprecated: bool,
    /// A locked account may still call it (the spec's account-locking section:
    /// only the logout operations); everything else answers `401 M_USER_LOCKED`.
    pub lock_exempt: bool,
    /// The path under the pre-v1.1 prefix (`/_matrix/client/r0/...`) for an
    /// operation that existed then; the router serves it there too.
    pub legacy_path: Option<&'static str>,
    /// The operation uses user-interactive authentication: its body takes
    /// `auth`, and a `401` answers with the flows to complete.
    pub uia: bool,
    /// Renders a failure in the operation's error envelope (its API file's
    /// `x-error-envelope`): how the router answers for it before a typed
    /// handler exists (a body too large or unreadable).
    pub render_error: fn(MatrixError) -> crate::response::HttpResponse,
}

#[cfg(test)]
impl Metadata {
    /// An operation for the runtime's own tests: public, nothing special,
    /// Matrix errors; the builders below change what a test needs.
    pub(crate) const fn for_tests(method: Method, path: &'static str) -> Metadata {
        Metadata {
            operation_id: "test",
            method,
            path,
            security: Security {
                optional: false,
                schemes: &[],
            },
            rate_limited: false,
            added_in: None,
            deprecated: false,
            lock_exempt: false,
            legacy_path: None,
            uia: false,
            render_error: crate::error::render_error::<MatrixError>,
        }
    }

    pub(crate) const fn secured(mut self, schemes: &'static [(&'static str, AuthScheme)]) -> Self {
        self.security = Security {
            optional: false,
            schemes,
        };
        self
    }

    pub(crate) const fn named(mut self, operation_id: &'static str) -> Self {
        self.operation_id = operation_id;
        self
    }

    pub(crate) const fn legacy(mut self, legacy_path: &'static str) -> Self {
        self.legacy_path = Some(legacy_path);
        self
    }

    pub(crate) const fn rendering(
        mut self,
        render_error: fn(MatrixError) -> crate::response::HttpResponse,
    ) -> Self {
        self.render_error = render_error;
        self
    }
}

/// A credential found in a request, with the name of the scheme that found it
/// (`accessTokenBearer`, `accessTokenQuery`, ...).
#[derive(Clone, Copy, Debug)]
pub struct Credential<'a> {
    pub scheme: &'static str,
    pub token: &'a str,
    pub request: &'a RequestInfo,
}

/// Resolves credentials to the implementation's notion of a caller. Every route
/// trait extends it, so one implementation serves all of them.
pub trait Authenticator: Send + Sync + 'static {
    type Identity: Send + Sync + 'static;

    /// `Err` for a credential that is unknown, expired or not allowed here
    /// (usually [`MatrixError::unknown_token`]).
    fn authenticate(
        &self,
        credential: Credential<'_>,
    ) -> impl Future<Output = Result<Self::Identity, MatrixError>> + Send;

    /// Called by the router before each operation the spec marks rate-limited
    /// ([`Metadata::rate_limited`], `request.operation`), after authentication
    /// and before the request is parsed; never for the others, so a server
    /// answers `429` exactly where the API description documents it. `Err`
    /// (usually [`MatrixError::limit_exceeded`]) refuses the request. The
    /// implementation supplies the buckets and their keys (operation, caller,
    /// client address); by default nothing is limited.
    fn rate_limit(
        &self,
        request: &RequestInfo,
        caller: Option<&Self::Identity>,
    ) -> Result<(), MatrixError> {
        let _ = (request, caller);
        Ok(())
    }

    /// Called by the router once for every request it answered, with the
    /// operation it was routed to (`None` when none was: an unknown path
    /// (`404`), a known path with another method (`405`), a CORS preflight
    /// `OPTIONS`), the status answered and the time from receiving the request
    /// to the answer being ready (the request's body read, the response's body
    /// built). For metrics: it runs on every request, so it should be cheap
    /// and must not block; key anything per operation by the `&'static`
    /// metadata (its address or `operation_id`) rather than by the path, which
    /// carries user IDs and tokens. By default it does nothing.
    fn observe(&self, operation: Option<&'static Metadata>, status: StatusCode, elapsed: Duration) {
        let _ = (operation, status, elapsed);
    }
}

/// What a route-trait method receives besides its typed request: the caller
/// (`()` for public operations, `Option<Identity>` for optional auth, `Identity` for
/// required auth) and the request's metadata.
#[derive(Clone, Debug)]
pub struct Context<A> {
    pub auth: A,
    pub request: RequestInfo,
}

/// The first credential the operation's schemes find in the request.
#[cfg(feature = "server")]
pub(crate) fn find_credential<'a>(
    req: &'a crate::request::Incoming,
    security: &Security,
) -> Option<(&'static str, &'a str)> {
    for (name, scheme) in security.schemes {
        let found = match scheme {
            AuthScheme::Authorization(prefix) => req
                .info
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    if prefix.is_empty() {
                        return Some(v.trim());
                    }
                    let (scheme, rest) = v.split_once(' ')?;
                    scheme.eq_ignore_ascii_case(prefix).then(|| rest.trim())
                }),
            AuthScheme::Query(param) => req
                .query
                .iter()
                .find(|(k, _)| k == param)
                .map(|(_, v)| v.as_str()),
            AuthScheme::Header(header) => {
                req.info.headers.get(*header).and_then(|v| v.to_str().ok())
            }
        };
        if let Some(token) = found.filter(|t| !t.is_empty()) {
            return Some((name, token));
        }
    }
    None
}
