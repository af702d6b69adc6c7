//! What a client asks before anything else: versions, capabilities, well-known.

use matrix_api::client_server::capabilities::{get_capabilities, CapabilitiesApi};
use matrix_api::client_server::versions::{get_versions, VersionsApi};
use matrix_api::client_server::wellknown::{get_wellknown, WellKnownApi};
use matrix_api::runtime::{Context, MatrixError};
use matrix_api::types::BooleanCapability;

use super::well_known;
use crate::service::{Caller, Server};

impl VersionsApi for Server {
    async fn get_versions(
        &self,
        _ctx: Context<Option<Caller>>,
        _request: get_versions::Request,
    ) -> Result<get_versions::Response, MatrixError> {
        // Exactly what the generated API supports: derived from the release
        // api/ pins and its version annotations (see `matrix_api::SUPPORTED_VERSIONS`).
        let versions = matrix_api::SUPPORTED_VERSIONS.iter().map(|v| v.to_string());
        let mut body = get_versions::OkBody::new(versions.collect());
        body.unstable_features = Some(Default::default());
        Ok(body.into())
    }
}

impl CapabilitiesApi for Server {
    async fn get_capabilities(
        &self,
        ctx: Context<Caller>,
        _request: get_capabilities::Request,
    ) -> Result<get_capabilities::Response, MatrixError> {
        let enabled = |enabled| Some(BooleanCapability::new(enabled));
        let admin = ctx.auth.is_admin;
        let mut moderation = get_capabilities::AccountModerationCapability::new();
        moderation.suspend = Some(admin);
        moderation.lock = Some(admin);
        let mut capabilities = get_capabilities::Capabilities::new();
        capabilities.m_change_password = enabled(!ctx.auth.is_guest);
        // Adding an address needs a way to validate it: email delivery.
        capabilities.m_3pid_changes = enabled(self.mailer.is_some() && !ctx.auth.is_guest);
        capabilities.m_get_login_token = enabled(!ctx.auth.is_guest);
        capabilities.m_account_moderation = Some(moderation);
        Ok(get_capabilities::OkBody::new(capabilities).into())
    }
}

impl WellKnownApi for Server {
    async fn get_wellknown(
        &self,
        _ctx: Context<()>,
        _request: get_wellknown::Request,
    ) -> Result<get_wellknown::Response, MatrixError> {
        match &self.config.public_baseurl {
            Some(base) => Ok(well_known(base).into()),
            None => Err(MatrixError::not_found(
                "No discovery information is configured",
            )),
        }
    }
}
