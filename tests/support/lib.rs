//! Helpers shared by the workspace-level tests.

pub mod server;
pub mod skip;
pub mod smtp;
