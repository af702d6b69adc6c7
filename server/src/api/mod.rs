//! The route traits, one module per API area. Each method checks, calls the store
//! and builds the typed response; routing, parsing and error envelopes are the
//! generated router's.

mod account;
mod admin;
mod discovery;
mod login;
mod openid;
mod registration;
mod threepid;

/// The client discovery information for a server at `base`: in `/.well-known`
/// and in login responses.
fn well_known(base: &str) -> matrix_api::types::Full {
    matrix_api::types::Full::new(matrix_api::types::Homeserver::new(base.to_string()))
}

/// A typed error body, for the error responses an operation's spec lists.
fn error(errcode: &str, message: &str) -> matrix_api::types::Error {
    let mut body = matrix_api::types::Error::new(errcode.to_string());
    body.error = Some(message.to_string());
    body
}
