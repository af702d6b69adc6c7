//! Registration: `POST /register` (with interactive auth), username availability,
//! registration-token validity, and the registration requestToken endpoints.

use http::StatusCode;
use matrix_api::client_server::registration::{
    check_username_availability, register, request_token_to_register_email,
    request_token_to_register_msisdn, RegistrationApi,
};
use matrix_api::client_server::registration_tokens::{
    registration_token_validity, RegistrationTokensApi,
};
use matrix_api::runtime::{Context, MatrixError};

use super::error;
use crate::config::RegistrationMode;
use crate::crypto;
use crate::service::{internal, medium_not_supported, Server, Session};
use crate::store::now_ms;
use crate::uia::{Uia, UiaSpec, DUMMY, REGISTRATION_TOKEN};

impl Server {
    /// `M_USER_IN_USE` when the ID was ever taken (deactivated IDs stay taken).
    async fn check_free(&self, user_id: &str) -> Result<(), MatrixError> {
        if self.store.user(user_id).await.map_err(internal)?.is_some() {
            return Err(MatrixError::new(
                StatusCode::BAD_REQUEST,
                "M_USER_IN_USE",
                "That user ID is taken",
            ));
        }
        Ok(())
    }

    async fn register_guest(
        &self,
        body: &register::RequestBody,
    ) -> Result<register::Response, MatrixError> {
        if !self.config.registration.allow_guests {
            return Err(MatrixError::new(
                StatusCode::FORBIDDEN,
                "M_GUEST_ACCESS_FORBIDDEN",
                "Guest access is disabled",
            ));
        }
        let user_id = self.user_id_for(&format!("guest-{}", crypto::new_id().to_lowercase()))?;
        self.store
            .create_user(&user_id, None, true, false, None)
            .await
            .map_err(internal)?;
        // Guests never choose their device.
        let session = self
            .open_session(
                &user_id,
                None,
                body.initial_device_display_name.as_deref(),
                false,
            )
            .await?;
        Ok(register::Response::Ok(ok_body(
            &self.config.server_name,
            user_id,
            Some(session),
        )))
    }
}

fn ok_body(server_name: &str, user_id: String, session: Option<Session>) -> register::OkBody {
    let (device_id, access_token, refresh_token, expires_in_ms) = match session {
        Some(s) => (
            Some(s.device_id),
            Some(s.access_token),
            s.refresh_token,
            s.expires_in_ms,
        ),
        None => (None, None, None, None),
    };
    register::OkBody {
        user_id,
        access_token,
        refresh_token,
        expires_in_ms,
        home_server: Some(server_name.to_string()),
        device_id,
    }
}

impl RegistrationApi for Server {
    async fn register(
        &self,
        ctx: Context<()>,
        request: register::Request,
    ) -> Result<register::Response, MatrixError> {
        let body = &request.body;
        if self.config.registration.mode == RegistrationMode::Disabled {
            return Ok(register::Response::Forbidden(error(
                "M_FORBIDDEN",
                "Registration is disabled",
            )));
        }
        self.limit("register", &ctx.request, None)?;
        if request.kind == register::Kind::Guest {
            return self.register_guest(body).await;
        }
        if request.kind != register::Kind::User {
            return Err(MatrixError::invalid_param("Unknown kind of account"));
        }
        // Checks that need no authentication come first, so a client learns about
        // a taken name or weak password before doing the stages.
        let localpart = match &body.username {
            Some(name) => name.clone(),
            None => crypto::new_id().to_lowercase(),
        };
        let user_id = self.user_id_for(&localpart)?;
        self.check_free(&user_id).await?;
        if let Some(p) = &body.password {
            self.check_password_policy(p)?;
        }
        let flows = match self.config.registration.mode {
            RegistrationMode::Token => vec![vec![REGISTRATION_TOKEN]],
            _ => vec![vec![DUMMY], vec![REGISTRATION_TOKEN]],
        };
        let password = body.password.as_deref().unwrap_or("");
        let inhibit = if body.inhibit_login { "1" } else { "0" };
        let spec = UiaSpec {
            operation: &register::METADATA,
            // A generated name is not bound: it is drawn anew per request.
            binding: &[body.username.as_deref().unwrap_or(""), password, inhibit],
            user_id: None,
            flows,
        };
        let session = match self
            .user_interactive_auth(&spec, body.auth.as_ref())
            .await?
        {
            Uia::Passed(s) => s,
            Uia::Challenge(c) => return Ok(register::Response::Unauthorized(c)),
        };
        // The password is hashed once, after authentication succeeded.
        let hash = match &body.password {
            Some(p) => Some(self.hasher.hash(p).await.map_err(MatrixError::unknown)?),
            None => None,
        };
        let created = self
            .store
            .create_user(
                &user_id,
                hash.as_deref(),
                false,
                false,
                session.registration_token.as_deref(),
            )
            .await;
        match created {
            Ok(true) => {}
            Ok(false) => {
                return Ok(register::Response::Forbidden(error(
                    "M_FORBIDDEN",
                    "The registration token is no longer valid",
                )))
            }
            Err(crate::store::StoreError::Conflict) => {
                return Ok(register::Response::BadRequest(error(
                    "M_USER_IN_USE",
                    "That user ID is taken",
                )))
            }
            Err(e) => return Err(internal(e)),
        }
        self.store
            .delete_uia_session(&session.session_id)
            .await
            .map_err(internal)?;
        tracing::info!(user_id, "registered");
        if body.inhibit_login {
            return Ok(register::Response::Ok(ok_body(
                &self.config.server_name,
                user_id,
                None,
            )));
        }
        let session = self
            .open_session(
                &user_id,
                body.device_id.as_deref(),
                body.initial_device_display_name.as_deref(),
                body.refresh_token == Some(true),
            )
            .await?;
        Ok(register::Response::Ok(ok_body(
            &self.config.server_name,
            user_id,
            Some(session),
        )))
    }

    async fn request_token_to_register_email(
        &self,
        ctx: Context<()>,
        _request: request_token_to_register_email::Request,
    ) -> Result<request_token_to_register_email::Response, MatrixError> {
        self.limit("request_token", &ctx.request, None)?;
        Err(medium_not_supported())
    }

    async fn request_token_to_register_msisdn(
        &self,
        ctx: Context<()>,
        _request: request_token_to_register_msisdn::Request,
    ) -> Result<request_token_to_register_msisdn::Response, MatrixError> {
        self.limit("request_token", &ctx.request, None)?;
        Err(medium_not_supported())
    }

    async fn check_username_availability(
        &self,
        ctx: Context<()>,
        request: check_username_availability::Request,
    ) -> Result<check_username_availability::Response, MatrixError> {
        self.limit("available", &ctx.request, None)?;
        let user_id = self.user_id_for(&request.username)?;
        self.check_free(&user_id).await?;
        Ok(check_username_availability::Response::Ok(
            check_username_availability::OkBody {
                available: Some(true),
            },
        ))
    }
}

impl RegistrationTokensApi for Server {
    async fn registration_token_validity(
        &self,
        ctx: Context<()>,
        request: registration_token_validity::Request,
    ) -> Result<registration_token_validity::Response, MatrixError> {
        if self.config.registration.mode == RegistrationMode::Disabled {
            return Ok(registration_token_validity::Response::Forbidden(error(
                "M_FORBIDDEN",
                "Registration is disabled",
            )));
        }
        self.limit("token_validity", &ctx.request, None)?;
        let token = self
            .store
            .registration_token(&request.token)
            .await
            .map_err(internal)?;
        let valid = token.is_some_and(|t| t.usable(now_ms()));
        Ok(registration_token_validity::Response::Ok(
            registration_token_validity::OkBody { valid },
        ))
    }
}
