//! A server written against v1's generated crate, the way implementers are meant
//! to write one: constructors and field assignment, never struct literals or
//! exhaustive patterns. `tests/compat.rs` builds it against v1 and against v2,
//! which adds optional fields and an optional parameter.

use std::sync::Arc;

use api::account::profile::{set_display_name, ProfileApi};
use api::runtime::{Authenticator, Context, Credential, MatrixError, RouterConfig};
use api::types::Settings;

pub struct Server;

impl Authenticator for Server {
    type Identity = String;

    async fn authenticate(&self, _credential: Credential<'_>) -> Result<String, MatrixError> {
        Ok("@alice:example.org".to_string())
    }
}

impl ProfileApi for Server {
    async fn set_display_name(
        &self,
        ctx: Context<String>,
        request: set_display_name::Request,
    ) -> Result<set_display_name::Response, MatrixError> {
        if ctx.auth != request.user_id {
            return Err(MatrixError::forbidden("Not your profile"));
        }
        let mut settings = Settings::default();
        settings.public = Some(true);
        let mut body = set_display_name::OkBody::new(request.body.displayname);
        body.settings = Some(settings);
        Ok(body.into())
    }
}

/// What a test of this server builds.
pub fn sample_request() -> set_display_name::Request {
    let body = set_display_name::RequestBody::new("Alice".to_string());
    set_display_name::Request::new("@alice:example.org".to_string(), body)
}

pub fn service() -> impl Sized {
    api::router(Arc::new(Server), RouterConfig::default())
}
