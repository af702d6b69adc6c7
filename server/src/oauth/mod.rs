//! The OAuth 2.0 API (Matrix spec v1.19, "OAuth 2.0 API"): the pure parts —
//! client registration metadata, scope parsing, PKCE and the callback address —
//! that the endpoints (`api/oauth.rs`, `api/oauth_pages.rs`) build on.

pub mod callback;
pub mod client_metadata;
pub mod pkce;
pub mod scope;
