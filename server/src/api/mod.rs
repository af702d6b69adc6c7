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
