//! Helpers shared by the workspace-level tests.

pub mod browser;
pub mod oauth_client;
pub mod relay;
pub mod server;
pub mod skip;
pub mod smtp;
pub mod synapse;
