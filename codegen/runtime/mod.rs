//! The runtime every generated crate carries: the Matrix error envelope, request
//! extraction, authentication, response building and the router. It is written by
//! hand once (in the generator's `runtime/` folder) and copied verbatim, so the
//! generated modules stay small and a generated crate builds on its own.

mod auth;
mod error;
mod identifiers;
mod macros;
mod request;
mod response;
mod router;
#[doc(hidden)]
pub mod testing;

pub use auth::{AuthScheme, Authenticator, Context, Credential, Metadata, Security};
pub use error::MatrixError;
pub use identifiers::{EventId, IdError, RoomAlias, RoomId, ServerName, UserId};
#[allow(unused_imports)] // which macros a crate uses depends on its spec
pub(crate) use macros::{default_fns, string_enum};
pub use request::{FromParam, FromRequest, Incoming, RemoteAddr, RequestInfo};
pub use response::{
    binary, empty, json, set_header, status, Binary, HttpResponse, IntoResponse, ResponseBuilder,
};
pub use router::{
    handle_optional, handle_public, handle_required, BoxFuture, Dispatch, Route, Router,
    RouterConfig, Seg,
};
