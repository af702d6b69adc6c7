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

/// A typed error body, for the error responses an operation's spec lists.
fn error(errcode: &str, message: &str) -> matrix_api::types::Error {
    matrix_api::types::Error {
        errcode: errcode.to_string(),
        error: Some(message.to_string()),
    }
}
