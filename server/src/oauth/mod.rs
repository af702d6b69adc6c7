//! The OAuth 2.0 API (Matrix spec v1.19, "OAuth 2.0 API"): the pure parts —
//! client registration metadata, scope parsing, PKCE, the callback address and
//! the device grant's user codes — that the endpoints (`api/oauth.rs`,
//! `api/oauth_pages.rs`, `api/oauth_device.rs`) build on.

pub mod callback;
pub mod client_metadata;
pub mod pkce;
pub mod scope;
pub mod user_code;
