//! The same server written with struct literals and exhaustive patterns: it would
//! stop compiling when v2 adds a field, so `#[non_exhaustive]` must reject it
//! against v1 already (`tests/compat.rs` expects this build to fail).

use api::account::profile::set_display_name;
use api::types::Error;

pub fn forbidden() -> Error {
    Error { errcode: "M_FORBIDDEN".to_string(), error: None }
}

pub fn ok(request: set_display_name::Request) -> set_display_name::OkBody {
    let set_display_name::Request { user_id: _, body } = request;
    set_display_name::OkBody { displayname: body.displayname, settings: None }
}
