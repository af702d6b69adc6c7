//! The OAuth 2.0 API's machine endpoints (api/account/oauth.yaml and the
//! server metadata): discovery, dynamic client registration, the authorisation
//! endpoint, the device authorisation endpoint, the token endpoint and
//! revocation. The pages between the authorisation endpoint and the code are in
//! `oauth_pages.rs`; those where a person enters a device's user code and
//! allows it in `oauth_device.rs`.
//!
//! Tokens issued here are the legacy API's tokens on a device that belongs
//! to the client: every client API endpoint takes them, and the device scope
//! names the device, so reusing a device ID replaces its earlier tokens.

use http::StatusCode;
use matrix_api::account::oauth::{
    authorize, register_client, request_device_authorization, request_token, revoke_token, OAuthApi,
};
use matrix_api::account::oauth_discovery::{get_authorization_server_metadata, OAuthDiscoveryApi};
use matrix_api::client_server::oauth_server_metadata::{get_auth_metadata, OAuthServerMetadataApi};
use matrix_api::runtime::{Context, MatrixError, OAuthError};
use matrix_api::types::{AuthorizationServerMetadata, DeviceAuthorizationResponse, TokenResponse};

use super::oauth_pages::session_page;
use crate::config::RegistrationMode;
use crate::crypto;
use crate::oauth::callback::{callback_url, ResponseMode};
use crate::oauth::client_metadata::{self, ClientMetadata, GrantType};
use crate::oauth::{pkce, scope, user_code};
use crate::service::{internal, Server};
use crate::store::{
    now_ms, Authorization, CodeExchange, DeviceGrant, DevicePoll, HomeserverPart, LogoutDevices,
    OAuthGrant, Refreshed, StoreError,
};

/// Where this server's own endpoints live.
pub(super) const ACCOUNT_BASE: &str = "/_account/v1";
/// How long an authorisation request waits for the person to log in and
/// consent.
const AUTHORIZATION_LIFETIME_MS: i64 = 30 * 60 * 1000;
/// How long a code may wait for its exchange (RFC 6749 §4.1.2: at most ten
/// minutes).
pub(super) const CODE_LIFETIME_MS: i64 = 10 * 60 * 1000;
/// The grant type of RFC 8628.
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// How much sooner than the interval a device's poll may come without being
/// told `slow_down`: the server measures from when it handled the last poll,
/// before its answer travelled back, so only timers that fire early and the
/// clocks of several processes sharing a database can make a well-behaved
/// client seem early, and by far less than this.
const POLL_ALLOWANCE_MS: i64 = 250;

impl Server {
    /// The issuer identifier: the public base URL with a trailing slash.
    pub(super) fn issuer(&self) -> String {
        format!("{}/", self.public_base())
    }

    /// Whether the registration page can create accounts (and so whether
    /// `prompt=create` is offered): registration is open or by token. An
    /// email address the server requires is confirmed by the page's email
    /// stage (`oauth_registration.rs`).
    pub(super) fn page_registration_open(&self) -> bool {
        self.config.registration.mode != RegistrationMode::Disabled
    }

    pub(super) fn auth_metadata(&self) -> AuthorizationServerMetadata {
        let base = format!("{}{ACCOUNT_BASE}", self.public_base());
        let mut m = AuthorizationServerMetadata::new(
            self.issuer(),
            format!("{base}/oauth2/authorize"),
            format!("{base}/oauth2/token"),
            format!("{base}/oauth2/revoke"),
            format!("{base}/oauth2/register"),
            vec!["code".into()],
            vec![
                "authorization_code".into(),
                "refresh_token".into(),
                DEVICE_CODE_GRANT.into(),
            ],
            vec!["query".into(), "fragment".into()],
            vec!["S256".into()],
        );
        m.device_authorization_endpoint = Some(format!("{base}/oauth2/device_authorization"));
        m.prompt_values_supported = Some(match self.page_registration_open() {
            true => vec!["create".into()],
            false => vec![],
        });
        // RFC 8414 defaults the auth methods to `client_secret_basic`; the
        // clients here are public. Every authorisation response carries `iss`.
        m.token_endpoint_auth_methods_supported = Some(vec!["none".into()]);
        m.revocation_endpoint_auth_methods_supported = Some(vec!["none".into()]);
        m.authorization_response_iss_parameter_supported = Some(true);
        m.account_management_uri = Some(format!("{base}/account"));
        m.account_management_actions_supported = Some(
            super::account_management::supported_actions(self.synapse.is_some()),
        );
        m
    }

    /// A registered client, or `None` for an unknown ID.
    async fn client(&self, client_id: &str) -> Result<Option<ClientMetadata>, MatrixError> {
        let Some(json) = self.store.oauth_client(client_id).await.map_err(internal)? else {
            return Ok(None);
        };
        match parse_client(&json) {
            Some(metadata) => Ok(Some(metadata)),
            None => {
                tracing::error!(client_id, "stored client metadata does not parse");
                Err(MatrixError::unknown("Internal server error"))
            }
        }
    }

    /// The tokens of a device just logged in (or refreshed) through the
    /// OAuth 2.0 API.
    fn token_response(
        access_token: String,
        refresh_token: String,
        expires_ms: Option<i64>,
        lifetime_ms: i64,
        scope: String,
    ) -> request_token::Response {
        let expires_in_ms = expires_ms.map_or(lifetime_ms, |e| e - now_ms()).max(0);
        let body = TokenResponse::new(
            access_token,
            "Bearer".into(),
            (expires_in_ms as u64).div_ceil(1000) as i64,
            refresh_token,
            scope,
        );
        request_token::Response::Ok {
            body,
            cache_control: "no-store".into(),
        }
    }

    async fn authorization_code_grant(
        &self,
        body: &request_token::RequestBody,
    ) -> Result<request_token::Response, OAuthError> {
        let (Some(client_id), Some(code), Some(redirect_uri), Some(verifier)) = (
            body.client_id.as_deref(),
            body.code.as_deref(),
            body.redirect_uri.as_deref(),
            body.code_verifier.as_deref(),
        ) else {
            return Err(OAuthError::invalid_request(
                "The authorization_code grant takes client_id, code, redirect_uri and code_verifier",
            ));
        };
        let exchange = self
            .store
            .exchange_code(code, |a| {
                if a.client_id != client_id {
                    Err("The code was issued to another client")
                } else if a.redirect_uri != redirect_uri {
                    Err("redirect_uri is not the one of the authorization request")
                } else if !pkce::verifier_is_valid(verifier)
                    || !pkce::verify(verifier, &a.code_challenge)
                {
                    Err("The code_verifier does not match the code_challenge")
                } else {
                    Ok(())
                }
            })
            .await
            .map_err(internal)?;
        let authorization = match exchange {
            CodeExchange::Taken(a) => a,
            CodeExchange::Unknown => return Err(invalid_grant("Unknown or expired code")),
            CodeExchange::Refused(why) => return Err(invalid_grant(why)),
            CodeExchange::Reused(a) => {
                // RFC 6749 §4.1.2: someone holds a copy of the code; what it gave
                // is revoked.
                self.revoke_reused_code(&a).await?;
                return Err(invalid_grant("The code was used already"));
            }
        };
        let Some(user_id) = authorization.user_id.as_deref() else {
            return Err(invalid_grant("Unknown or expired code"));
        };
        self.issue_tokens(
            user_id,
            &authorization.device_id,
            client_id,
            authorization.scope,
        )
        .await
    }

    /// Logs `user_id` in on `device_id` for `client_id`, which was granted
    /// `scope` (by a code or a device authorisation): the token response.
    async fn issue_tokens(
        &self,
        user_id: &str,
        device_id: &str,
        client_id: &str,
        scope: String,
    ) -> Result<request_token::Response, OAuthError> {
        let session = self
            .open_session_for(
                user_id,
                Some(device_id),
                None,
                true,
                None,
                Some(OAuthGrant {
                    client_id,
                    scope: &scope,
                }),
            )
            .await
            .map_err(|e| match e.status {
                StatusCode::FORBIDDEN => invalid_grant("The account was deactivated"),
                _ => OAuthError::from(e),
            })?;
        tracing::info!(
            user_id,
            device_id = session.device_id,
            client_id,
            "logged in through OAuth 2.0"
        );
        let lifetime_ms = (self.config.tokens.access_token_lifetime_secs * 1000) as i64;
        Ok(Self::token_response(
            session.access_token,
            session.refresh_token.unwrap_or_default(),
            session.expires_in_ms.map(|ms| now_ms() + ms),
            lifetime_ms,
            scope,
        ))
    }

    /// RFC 8628 §3.4: a device polls with its device code until the person
    /// has answered on the pages; then it gets the tokens, once (a racing
    /// second poll is `invalid_grant`; unlike a reused code, it revokes
    /// nothing: it is the device itself).
    async fn device_code_grant(
        &self,
        body: &request_token::RequestBody,
    ) -> Result<request_token::Response, OAuthError> {
        let (Some(client_id), Some(device_code)) =
            (body.client_id.as_deref(), body.device_code.as_deref())
        else {
            return Err(OAuthError::invalid_request(
                "The device_code grant takes client_id and device_code",
            ));
        };
        let interval = self.config.oauth.device_poll_interval_secs;
        let min_gap_ms = (interval * 1000) as i64 - POLL_ALLOWANCE_MS;
        let poll = self
            .store
            .poll_device_grant(device_code, client_id, min_gap_ms)
            .await
            .map_err(internal)?;
        let grant = match poll {
            DevicePoll::Taken(grant) => grant,
            DevicePoll::Unknown => return Err(invalid_grant("Unknown device code")),
            DevicePoll::WrongClient => {
                return Err(invalid_grant(
                    "The device code was issued to another client",
                ))
            }
            DevicePoll::Exchanged => return Err(invalid_grant("The device code was used already")),
            DevicePoll::Expired => {
                return Err(device_error(
                    "expired_token",
                    "The device code has expired: start again",
                ))
            }
            DevicePoll::Denied => {
                return Err(device_error("access_denied", "The user denied the request"))
            }
            DevicePoll::Pending => {
                return Err(device_error(
                    "authorization_pending",
                    "The user has not answered yet",
                ))
            }
            DevicePoll::TooSoon => {
                return Err(device_error(
                    "slow_down",
                    &format!("Poll at most every {interval} seconds"),
                ))
            }
        };
        let Some(user_id) = grant.user_id.as_deref() else {
            return Err(invalid_grant("Unknown device code"));
        };
        self.issue_tokens(user_id, &grant.device_id, client_id, grant.scope.clone())
            .await
    }

    /// Logs out the device a reused code logged in, if it is still that
    /// client's.
    async fn revoke_reused_code(&self, a: &Authorization) -> Result<(), OAuthError> {
        let Some(user_id) = &a.user_id else {
            return Ok(());
        };
        let revoked = self
            .store
            .logout_client_device(user_id, &a.device_id, &a.client_id)
            .await
            .map_err(internal)?;
        if revoked {
            tracing::warn!(
                user_id,
                device_id = a.device_id,
                "an authorization code was reused; its device is logged out"
            );
            self.tell_homeserver(user_id, HomeserverPart::Devices).await;
        }
        Ok(())
    }

    async fn refresh_token_grant(
        &self,
        body: &request_token::RequestBody,
    ) -> Result<request_token::Response, OAuthError> {
        let (Some(client_id), Some(refresh_token)) =
            (body.client_id.as_deref(), body.refresh_token.as_deref())
        else {
            return Err(OAuthError::invalid_request(
                "The refresh_token grant takes client_id and refresh_token",
            ));
        };
        let device = self
            .store
            .token_device(&crypto::token_hash(refresh_token))
            .await
            .map_err(internal)?;
        // A token of another client, or of a legacy login, is not this
        // client's to refresh.
        let Some(scope) = device
            .filter(|d| d.client_id.as_deref() == Some(client_id))
            .and_then(|d| d.scope)
        else {
            return Err(invalid_grant("Unknown or already used refresh token"));
        };
        let rotation = self.rotate(refresh_token).await?;
        match rotation.outcome {
            Refreshed::Rotated { .. } => {}
            Refreshed::Unknown | Refreshed::Replayed { .. } => {
                return Err(invalid_grant("Unknown or already used refresh token"))
            }
            Refreshed::SessionOver { .. } => {
                return Err(invalid_grant("The session has ended: log in again"))
            }
            Refreshed::Locked => return Err(invalid_grant("The account is locked")),
        }
        let lifetime_ms = (self.config.tokens.access_token_lifetime_secs * 1000) as i64;
        Ok(Self::token_response(
            rotation.access_token,
            rotation.refresh_token,
            rotation.expires_ms,
            lifetime_ms,
            scope,
        ))
    }
}

/// A client's stored registration (as [`ClientMetadata::to_json`] wrote it).
pub(super) fn parse_client(json: &str) -> Option<ClientMetadata> {
    ClientMetadata::from_json(&serde_json::from_str(json).ok()?)
}

/// `400 invalid_grant` (RFC 6749 §5.2): the code or refresh token is not
/// (or no longer) good for this client.
fn invalid_grant(description: &str) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant").described(description)
}

/// One of RFC 8628 §3.5's answers to a poll, all `400`.
fn device_error(error: &str, description: &str) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, error).described(description)
}

impl OAuthServerMetadataApi for Server {
    async fn get_auth_metadata(
        &self,
        _ctx: Context<()>,
        _request: get_auth_metadata::Request,
    ) -> Result<get_auth_metadata::Response, MatrixError> {
        Ok(self.auth_metadata().into())
    }
}

impl OAuthDiscoveryApi for Server {
    async fn get_authorization_server_metadata(
        &self,
        _ctx: Context<()>,
        _request: get_authorization_server_metadata::Request,
    ) -> Result<get_authorization_server_metadata::Response, MatrixError> {
        Ok(self.auth_metadata().into())
    }
}

impl OAuthApi for Server {
    async fn register_client(
        &self,
        _ctx: Context<()>,
        request: register_client::Request,
    ) -> Result<register_client::Response, OAuthError> {
        let body = serde_json::to_value(&request.body)
            .map_err(|e| OAuthError::invalid_request(e.to_string()))?;
        let metadata = client_metadata::validate(&body).map_err(|e| {
            OAuthError::new(StatusCode::BAD_REQUEST, e.error).described(e.description)
        })?;
        let client_id = crypto::new_id();
        // Stored as the registration answers it; `parse_client` reads it back.
        let answer = metadata.to_json(&client_id);
        self.store
            .create_oauth_client(&client_id, &answer.to_string())
            .await
            .map_err(internal)?;
        tracing::info!(client_id, "client registered");
        let created = serde_json::from_value(answer).map_err(|e| {
            tracing::error!(error = %e, "registration answer does not fit its type");
            OAuthError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error")
        })?;
        Ok(register_client::Response::Created(created))
    }

    async fn authorize(
        &self,
        _ctx: Context<()>,
        r: authorize::Request,
    ) -> Result<authorize::Response, OAuthError> {
        // Until the client and its redirect URI are known good, problems are
        // shown to the person: sending the browser to an unchecked address
        // would make this server an open redirector.
        let client = match r.client_id.as_deref() {
            Some(id) => self.client(id).await?,
            None => None,
        };
        let Some(client) = client else {
            let page = self.oauth_page_error(
                "The application that sent you here is not registered with this server.",
            )?;
            return Ok(authorize::Response::BadRequest(page));
        };
        let redirect_uri = match r.redirect_uri.as_deref() {
            Some(uri) if client.redirect_uri_matches(uri) => uri.to_string(),
            _ => {
                let page = self.oauth_page_error(
                    "The application that sent you here asked to be sent back to an address it did not register.",
                )?;
                return Ok(authorize::Response::BadRequest(page));
            }
        };
        let client_id = r.client_id.unwrap_or_default();
        let state = r.state.clone();
        let issuer = self.issuer();
        let mode = ResponseMode::parse(r.response_mode.as_deref());
        // From here on, every refusal goes back to the client.
        let refuse = |error: &str, description: &str| {
            let mut params = vec![("error", error), ("error_description", description)];
            if let Some(state) = state.as_deref() {
                params.push(("state", state));
            }
            params.push(("iss", issuer.as_str()));
            Ok(authorize::Response::SeeOther {
                location: callback_url(&redirect_uri, mode.unwrap_or(ResponseMode::Query), &params),
            })
        };
        let Some(mode) = mode else {
            return refuse("invalid_request", "response_mode must be query or fragment");
        };
        if r.response_type.as_deref() != Some("code") {
            return refuse("unsupported_response_type", "response_type must be code");
        }
        if !client.has_grant_type(GrantType::AuthorizationCode) {
            return refuse(
                "unauthorized_client",
                "The client did not register for the authorization_code grant",
            );
        }
        let challenge = match (
            r.code_challenge.as_deref(),
            r.code_challenge_method.as_deref(),
        ) {
            (Some(c), Some("S256")) if pkce::challenge_is_valid(c) => c.to_string(),
            (Some(_), Some("S256")) => {
                return refuse("invalid_request", "code_challenge is not an S256 challenge")
            }
            _ => {
                return refuse(
                    "invalid_request",
                    "PKCE is required: code_challenge with code_challenge_method S256",
                )
            }
        };
        let scope = match r.scope.as_deref().map(scope::parse) {
            Some(Ok(scope)) => scope,
            Some(Err(e)) => return refuse("invalid_scope", &e.description),
            None => return refuse("invalid_scope", "scope is required"),
        };
        let prompt = r.prompt.as_deref().filter(|p| *p == "create");
        if prompt.is_some() && !self.page_registration_open() {
            return refuse(
                "invalid_request",
                "Registration is not open on this server (prompt=create)",
            );
        }
        let id = crypto::new_token("oar");
        let authorization = Authorization {
            client_id,
            redirect_uri: redirect_uri.clone(),
            scope: scope.to_string(),
            device_id: scope.device_id.clone(),
            state: r.state.clone(),
            response_mode: mode.as_str().into(),
            code_challenge: challenge,
            prompt: prompt.map(str::to_string),
            user_id: None,
            expires_ms: now_ms() + AUTHORIZATION_LIFETIME_MS,
        };
        self.store
            .create_authorization(&id, &authorization)
            .await
            .map_err(internal)?;
        // The consent page sends the browser on to the login page when there
        // is no browser session.
        let page = if prompt.is_some() {
            "register"
        } else {
            "consent"
        };
        Ok(authorize::Response::SeeOther {
            location: session_page(page, &id),
        })
    }

    async fn request_device_authorization(
        &self,
        _ctx: Context<()>,
        request: request_device_authorization::Request,
    ) -> Result<request_device_authorization::Response, OAuthError> {
        let body = &request.body;
        let Some(client) = self.client(&body.client_id).await? else {
            return Err(OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client")
                .described("No client of that client_id is registered"));
        };
        if !client.has_grant_type(GrantType::DeviceCode) {
            return Err(
                OAuthError::new(StatusCode::BAD_REQUEST, "unauthorized_client").described(format!(
                    "The client did not register the {DEVICE_CODE_GRANT} grant"
                )),
            );
        }
        let invalid_scope = |description: &str| {
            OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope").described(description)
        };
        let scope = match body.scope.as_deref().map(scope::parse) {
            Some(Ok(scope)) => scope,
            Some(Err(e)) => return Err(invalid_scope(&e.description)),
            None => return Err(invalid_scope("scope is required")),
        };
        let lifetime_secs = self.config.oauth.device_code_lifetime_secs;
        let grant = DeviceGrant {
            client_id: body.client_id.clone(),
            scope: scope.to_string(),
            device_id: scope.device_id.clone(),
            user_id: None,
            denied: false,
            exchanged: false,
            last_poll_ms: None,
            expires_ms: now_ms() + (lifetime_secs * 1000) as i64,
        };
        let device_code = crypto::new_token("odc");
        // A user code names one stored authorisation; a clash (with a live
        // one, or an expired one not yet purged) is drawn again.
        let mut clashes = 0;
        let user_code = loop {
            let user_code = user_code::generate();
            match self
                .store
                .create_device_grant(&device_code, &user_code, &grant)
                .await
            {
                Ok(()) => break user_code,
                Err(StoreError::Conflict) if clashes < 5 => clashes += 1,
                Err(e) => return Err(internal(e).into()),
            }
        };
        tracing::info!(
            client_id = body.client_id,
            device_id = grant.device_id,
            "device authorisation started"
        );
        let shown = user_code::display(&user_code);
        let verification_uri = format!("{}{ACCOUNT_BASE}/device", self.public_base());
        let verification_uri_complete = format!("{verification_uri}?code={shown}");
        Ok(request_device_authorization::Response::Ok {
            body: DeviceAuthorizationResponse::new(
                device_code,
                shown,
                verification_uri,
                verification_uri_complete,
                lifetime_secs as i64,
                self.config.oauth.device_poll_interval_secs as i64,
            ),
            cache_control: "no-store".into(),
        })
    }

    async fn request_token(
        &self,
        _ctx: Context<()>,
        request: request_token::Request,
    ) -> Result<request_token::Response, OAuthError> {
        let body = &request.body;
        match body.grant_type.as_str() {
            "authorization_code" => self.authorization_code_grant(body).await,
            "refresh_token" => self.refresh_token_grant(body).await,
            DEVICE_CODE_GRANT => self.device_code_grant(body).await,
            _ => Err(
                OAuthError::new(StatusCode::BAD_REQUEST, "unsupported_grant_type")
                    .described(format!("Unsupported grant_type {}", body.grant_type)),
            ),
        }
    }

    async fn revoke_token(
        &self,
        _ctx: Context<()>,
        request: revoke_token::Request,
    ) -> Result<revoke_token::Response, OAuthError> {
        let body = &request.body;
        let Some(client_id) = body.client_id.as_deref() else {
            return Err(OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client")
                .described("client_id is required"));
        };
        let device = self
            .store
            .token_device(&crypto::token_hash(&body.token))
            .await
            .map_err(internal)?;
        // RFC 7009 §2.2: an invalid token is no error.
        let Some(device) = device else {
            return Ok(revoke_token::Response::Ok(Default::default()));
        };
        if device.client_id.as_deref() != Some(client_id) {
            return Err(
                OAuthError::new(StatusCode::UNAUTHORIZED, "unauthorized_client")
                    .described("The token was not issued to this client"),
            );
        }
        self.log_out(
            &device.user_id,
            LogoutDevices::One(device.device_id.clone()),
        )
        .await?;
        tracing::info!(
            user_id = device.user_id,
            device_id = device.device_id,
            client_id,
            "revoked"
        );
        Ok(revoke_token::Response::Ok(Default::default()))
    }
}
