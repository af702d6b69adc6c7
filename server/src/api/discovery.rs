//! What a client asks before anything else: versions, capabilities, well-known.

use matrix_api::client_server::capabilities::{get_capabilities, CapabilitiesApi};
use matrix_api::client_server::versions::{get_versions, VersionsApi};
use matrix_api::client_server::wellknown::{get_wellknown, WellknownApi};
use matrix_api::runtime::{Context, MatrixError};
use matrix_api::types::BooleanCapability;

use crate::service::{Caller, Server};

impl VersionsApi for Server {
    async fn get_versions(
        &self,
        _ctx: Context<Option<Caller>>,
        _request: get_versions::Request,
    ) -> Result<get_versions::Response, MatrixError> {
        // Exactly what the generated API supports: derived from the release
        // api/ pins and its version annotations (see `matrix_api::SUPPORTED_VERSIONS`).
        Ok(get_versions::Response::Ok(get_versions::OkBody {
            versions: matrix_api::SUPPORTED_VERSIONS
                .iter()
                .map(|v| v.to_string())
                .collect(),
            unstable_features: Some(Default::default()),
        }))
    }
}

impl CapabilitiesApi for Server {
    async fn get_capabilities(
        &self,
        ctx: Context<Caller>,
        _request: get_capabilities::Request,
    ) -> Result<get_capabilities::Response, MatrixError> {
        let enabled = |enabled| Some(BooleanCapability { enabled });
        let admin = ctx.auth.is_admin;
        Ok(get_capabilities::Response::Ok(get_capabilities::OkBody {
            capabilities: get_capabilities::Capabilities {
                m_change_password: enabled(!ctx.auth.is_guest),
                m_forget_forced_upon_leave: None,
                m_room_versions: None,
                m_set_displayname: None,
                m_set_avatar_url: None,
                // No email or SMS delivery is configured, so no 3PID can be added.
                m_3pid_changes: enabled(false),
                m_get_login_token: enabled(!ctx.auth.is_guest),
                m_profile_fields: None,
                m_account_moderation: Some(get_capabilities::AccountModerationCapability {
                    suspend: Some(admin),
                    lock: Some(admin),
                }),
                extra: Default::default(),
            },
        }))
    }
}

impl WellknownApi for Server {
    async fn get_wellknown(
        &self,
        _ctx: Context<()>,
        _request: get_wellknown::Request,
    ) -> Result<get_wellknown::Response, MatrixError> {
        match &self.config.public_baseurl {
            Some(base) => Ok(get_wellknown::Response::Ok(matrix_api::types::Full {
                m_homeserver: matrix_api::types::Homeserver {
                    base_url: base.clone(),
                },
                m_identity_server: None,
                extra: Default::default(),
            })),
            None => Err(MatrixError::not_found(
                "No discovery information is configured",
            )),
        }
    }
}
