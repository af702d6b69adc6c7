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
use matrix_api::runtime::{Context, MatrixError, ServerName};

use crate::config::RegistrationMode;
use crate::crypto;
use crate::service::{check_device_id, internal, known_user_id, Server, Session};
use crate::store::{now_ms, UiaSession};
use crate::uia::{Uia, UiaSpec, DUMMY, EMAIL, MSISDN, REGISTRATION_TOKEN};
use crate::validation::Purpose;

impl Server {
    /// The registration flows: a registration token where the mode needs one,
    /// the email stage where email is configured (alone when it is required).
    fn registration_flows(&self) -> Vec<Vec<&'static str>> {
        let email = &self.config.email;
        let token_mode = self.config.registration.mode == RegistrationMode::Token;
        let mut flows = match (token_mode, email.enabled(), email.require_for_registration) {
            (false, false, _) => vec![vec![DUMMY], vec![REGISTRATION_TOKEN]],
            (false, true, false) => vec![vec![DUMMY], vec![REGISTRATION_TOKEN], vec![EMAIL]],
            (false, true, true) => vec![vec![EMAIL]],
            (true, false, _) => vec![vec![REGISTRATION_TOKEN]],
            (true, true, false) => vec![vec![REGISTRATION_TOKEN], vec![REGISTRATION_TOKEN, EMAIL]],
            (true, true, true) => vec![vec![REGISTRATION_TOKEN, EMAIL]],
        };
        // A phone number may stand in for what the mode asks, unless an email
        // address is required.
        if self.sms.is_some() && !email.require_for_registration {
            flows.push(if token_mode {
                vec![REGISTRATION_TOKEN, MSISDN]
            } else {
                vec![MSISDN]
            });
        }
        flows
    }

    /// `M_USER_IN_USE` when the ID was ever taken (deactivated IDs stay taken).
    async fn check_free(&self, user_id: &str) -> Result<(), MatrixError> {
        if self.store.user_exists(user_id).await.map_err(internal)? {
            return Err(user_in_use());
        }
        self.check_homeserver_localpart(user_id).await
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
        self.provision_user(&user_id, None, None).await?;
        // Guests never choose their device.
        let session = self
            .open_session(
                &user_id,
                None,
                body.initial_device_display_name.as_deref(),
                false,
                None,
            )
            .await?;
        Ok(register::Response::Ok(ok_body(
            &self.server_name,
            &user_id,
            Some(session),
        )?))
    }
}

impl Server {
    /// The answer to a registration that created (or, retried, had created)
    /// `user_id`: logged in on a device unless the client inhibited it.
    async fn registered(
        &self,
        body: &register::RequestBody,
        user_id: String,
    ) -> Result<register::Response, MatrixError> {
        let session = if body.inhibit_login {
            None
        } else {
            Some(
                self.open_session(
                    &user_id,
                    body.device_id.as_deref(),
                    body.initial_device_display_name.as_deref(),
                    body.refresh_token == Some(true),
                    None,
                )
                .await?,
            )
        };
        Ok(register::Response::Ok(ok_body(
            &self.server_name,
            &user_id,
            session,
        )?))
    }
}

fn ok_body(
    server_name: &ServerName,
    user_id: &str,
    session: Option<Session>,
) -> Result<register::OkBody, MatrixError> {
    let (device_id, access_token, refresh_token, expires_in_ms) = match session {
        Some(s) => (
            Some(s.device_id),
            Some(s.access_token),
            s.refresh_token,
            s.expires_in_ms,
        ),
        None => (None, None, None, None),
    };
    let mut body = register::OkBody::new(known_user_id(user_id)?);
    body.access_token = access_token;
    body.refresh_token = refresh_token;
    body.expires_in_ms = expires_in_ms;
    body.home_server = Some(server_name.clone());
    body.device_id = device_id;
    Ok(body)
}

impl RegistrationApi for Server {
    async fn register(
        &self,
        ctx: Context<()>,
        request: register::Request,
    ) -> Result<register::Response, MatrixError> {
        let body = &request.body;
        if self.config.registration.mode == RegistrationMode::Disabled {
            return Err(registration_disabled());
        }
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
        if let Some(device_id) = &body.device_id {
            check_device_id(device_id)?;
        }
        // A taken name is reported before the stages — unless the request continues
        // a session, which may be a completed registration of this very name.
        let taken = self.check_free(&user_id).await.err();
        let continuing = body.auth.as_ref().is_some_and(|a| a.session.is_some());
        if let Some(e) = taken.clone().filter(|_| !continuing) {
            return Err(e);
        }
        if let Some(p) = &body.password {
            self.check_password_policy(p)?;
        }
        let flows = self.registration_flows();
        let password = body.password.as_deref().unwrap_or("");
        let inhibit = if body.inhibit_login { "1" } else { "0" };
        let spec = UiaSpec {
            operation: &register::METADATA,
            // A generated name is not bound: it is drawn anew per request.
            binding: &[body.username.as_deref().unwrap_or(""), password, inhibit],
            user_id: None,
            via_oauth: false,
            flows,
            request: &ctx.request,
            result_on_retry: true,
        };
        let uia = self
            .user_interactive_auth(&spec, body.auth.as_ref())
            .await?;
        let session = match (uia, taken) {
            // The spec: a client retrying a completed session gets the result of
            // the call — here, the account that session made, logged in anew.
            (
                Uia::Passed(UiaSession {
                    result_user_id: Some(done),
                    ..
                }),
                _,
            ) => return self.registered(body, done).await,
            (_, Some(taken)) => return Err(taken),
            (Uia::Passed(s), None) => s,
            (Uia::Challenge(c), None) => return Ok(c.into()),
        };
        if let Some(sid) = &session.threepid_sid {
            self.check_validated_free(sid).await?;
        }
        // The password is hashed once, after authentication succeeded.
        let hash = match &body.password {
            Some(p) => Some(self.hasher.hash(p).await?),
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
                return Err(MatrixError::forbidden(
                    "The registration token is no longer valid",
                ))
            }
            Err(crate::store::StoreError::Conflict) => return Err(user_in_use()),
            Err(e) => return Err(internal(e)),
        }
        if let Some(sid) = &session.threepid_sid {
            self.bind_validated(&user_id, sid).await?;
        }
        self.provision_user(&user_id, session.registration_token.as_deref(), None)
            .await?;
        self.complete_uia(session, &user_id).await?;
        tracing::info!(user_id, "registered");
        self.registered(body, user_id).await
    }

    async fn request_token_to_register_email(
        &self,
        _ctx: Context<()>,
        request: request_token_to_register_email::Request,
    ) -> Result<request_token_to_register_email::Response, MatrixError> {
        if self.config.registration.mode == RegistrationMode::Disabled {
            return Err(registration_disabled());
        }
        self.request_email_token(Purpose::Register, &request.body)
            .await
            .map(Into::into)
    }

    async fn request_token_to_register_msisdn(
        &self,
        _ctx: Context<()>,
        request: request_token_to_register_msisdn::Request,
    ) -> Result<request_token_to_register_msisdn::Response, MatrixError> {
        self.request_msisdn_token(Purpose::Register, &request.body)
            .await
            .map(Into::into)
    }

    async fn check_username_availability(
        &self,
        _ctx: Context<()>,
        request: check_username_availability::Request,
    ) -> Result<check_username_availability::Response, MatrixError> {
        let user_id = self.user_id_for(&request.username)?;
        self.check_free(&user_id).await?;
        let mut body = check_username_availability::OkBody::new();
        body.available = Some(true);
        Ok(body.into())
    }
}

impl RegistrationTokensApi for Server {
    async fn registration_token_validity(
        &self,
        _ctx: Context<()>,
        request: registration_token_validity::Request,
    ) -> Result<registration_token_validity::Response, MatrixError> {
        if self.config.registration.mode == RegistrationMode::Disabled {
            return Err(registration_disabled());
        }
        let token = self
            .store
            .registration_token(&request.token)
            .await
            .map_err(internal)?;
        let valid = token.is_some_and(|t| t.usable(now_ms()));
        Ok(registration_token_validity::OkBody::new(valid).into())
    }
}

fn user_in_use() -> MatrixError {
    MatrixError::new(
        StatusCode::BAD_REQUEST,
        "M_USER_IN_USE",
        "That user ID is taken",
    )
}

fn registration_disabled() -> MatrixError {
    MatrixError::forbidden("Registration is disabled")
}
