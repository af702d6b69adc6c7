//! What a delegating homeserver calls on this server (api/account/delegation.yaml):
//! the server metadata at the OpenID Connect discovery address, and token
//! introspection (RFC 7662), which Synapse asks about every access token its
//! clients present. The other direction, this server telling Synapse about
//! accounts and devices, is `homeserver.rs`.

use matrix_api::account::delegation::{get_open_id_configuration, introspect_token, DelegationApi};
use matrix_api::runtime::{Context, OAuthError};
use matrix_api::types::IntrospectionResponse;

use crate::homeserver::localpart;
use crate::oauth::scope::{API_FULL, API_FULL_UNSTABLE, DEVICE_PREFIX};
use crate::service::{Caller, Server};
use crate::store::now_ms;

/// The security scheme of the operations only the homeserver may call.
pub const HOMESERVER_SCHEME: &str = "homeserverSecret";
/// Synapse's scope for its admin API: the account is a server admin.
const SYNAPSE_ADMIN: &str = "urn:synapse:admin:*";

impl DelegationApi for Server {
    async fn get_open_id_configuration(
        &self,
        _ctx: Context<()>,
        _request: get_open_id_configuration::Request,
    ) -> Result<get_open_id_configuration::Response, OAuthError> {
        Ok(self.auth_metadata().into())
    }

    async fn introspect_token(
        &self,
        _ctx: Context<Caller>,
        request: introspect_token::Request,
    ) -> Result<introspect_token::Response, OAuthError> {
        // Refresh tokens are not in the access tokens' table: inactive, as
        // Synapse must not take them. So are tokens of locked accounts, which
        // Synapse does not check itself. A failure here (the database) is an
        // error, not "inactive": Synapse then answers its client 503, where
        // "inactive" would have logged the client out.
        let owner = match self.live_token(&request.body.token, false).await {
            Ok((_, owner)) => owner,
            Err(e) if e.status.is_server_error() => return Err(e.into()),
            Err(_) => return Ok(IntrospectionResponse::new(false).into()),
        };
        let mut scope = vec![
            API_FULL.to_string(),
            // Older Synapse versions know only the unstable spelling.
            API_FULL_UNSTABLE.to_string(),
            format!("{DEVICE_PREFIX}{}", owner.device_id),
        ];
        if owner.is_admin {
            scope.push(SYNAPSE_ADMIN.to_string());
        }
        let mut answer = IntrospectionResponse::new(true);
        answer.scope = Some(scope.join(" "));
        answer.username = localpart(&owner.user_id).ok();
        answer.sub = Some(owner.user_id);
        answer.device_id = Some(owner.device_id);
        answer.token_type = Some("access_token".into());
        // Whole seconds, rounded down: Synapse wants an integer, and must not
        // believe the token outlives its expiry.
        answer.expires_in = owner.expires_ms.map(|e| (e - now_ms()).max(0) / 1000);
        Ok(answer.into())
    }
}
