//! The OAuth 2.0 API (Matrix spec v1.19, "OAuth 2.0 API"): the pure parts —
//! client registration metadata, scope parsing and PKCE — that the endpoints
//! build on.

pub mod client_metadata;
pub mod pkce;
pub mod scope;
