//! The route traits, one module per API area. Each method checks, calls the store
//! and builds the typed response; routing, parsing and error envelopes are the
//! generated router's.

mod account;
mod account_management;
mod admin;
mod delegation;
mod discovery;
mod fallbacks;
mod login;
mod oauth;
mod oauth_device;
mod oauth_pages;
mod oauth_registration;
mod openid;
mod pages;
mod rate_limits;
mod registration;
mod sso;
mod threepid;
mod validation;

pub use delegation::HOMESERVER_SCHEME;

/// The client discovery information for a server at `base`: in `/.well-known`
/// and in login responses.
fn well_known(base: &str) -> matrix_api::types::DiscoveryInfo {
    matrix_api::types::DiscoveryInfo::new(matrix_api::types::Homeserver::new(base.to_string()))
}
