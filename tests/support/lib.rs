//! Helpers shared by the workspace-level tests.

pub mod recording_api;
pub mod server;
pub mod skip;
