//! Logging in and out: `GET/POST /login`, `/login/get_token`, `/logout`,
//! `/logout/all`, `/refresh`.

use http::StatusCode;
use matrix_api::client_server::login::{get_login_flows, login, LoginApi};
use matrix_api::client_server::login_token::{generate_login_token, LoginTokenApi};
use matrix_api::client_server::logout::{logout, logout_all, LogoutApi};
use matrix_api::client_server::refresh::{refresh, RefreshApi};
use matrix_api::runtime::{Context, MatrixError};
use serde_json::Value;

use super::well_known;
use crate::crypto;
use crate::ratelimit::{Action, Key};
use crate::service::{check_device_id, internal, known_user_id, locked, Caller, Server};
use crate::store::{now_ms, LogoutDevices, Refreshed, User};
use crate::uia::{Uia, UiaSpec, PASSWORD};
use crate::validation::{normalise_phone, stored_form};

impl Server {
    /// The user a password login names: `identifier` (`m.id.user`, or a 3PID the
    /// server knows) or the legacy `user` / `medium`+`address` fields.
    async fn login_user(&self, body: &login::RequestBody) -> Result<Option<String>, MatrixError> {
        let id = body.identifier.as_ref();
        let kind = id.map(|i| i.type_.as_str());
        let field = |k: &str| id.and_then(|i| i.extra.get(k)).and_then(Value::as_str);
        let name = match kind {
            Some("m.id.user") => field("user").map(str::to_string),
            Some("m.id.thirdparty") => {
                return self
                    .user_by_threepid(field("medium"), field("address"))
                    .await
            }
            Some("m.id.phone") => {
                let (Some(country), Some(phone)) = (field("country"), field("phone")) else {
                    return Err(MatrixError::missing_param(
                        "m.id.phone needs `country` and `phone`",
                    ));
                };
                let Ok(number) = normalise_phone(country, phone) else {
                    return Ok(None);
                };
                return self
                    .store
                    .threepid_owner("msisdn", &number)
                    .await
                    .map_err(internal);
            }
            Some(_) => {
                return Err(MatrixError::new(
                    StatusCode::BAD_REQUEST,
                    "M_UNKNOWN",
                    "Unknown identifier type",
                ))
            }
            None if body.user.is_some() => body.user.clone(),
            None => {
                return self
                    .user_by_threepid(body.medium.as_deref(), body.address.as_deref())
                    .await
            }
        };
        let Some(name) = name else {
            return Err(MatrixError::missing_param("The identifier names no user"));
        };
        Ok(self.resolve_user(&name).ok())
    }

    async fn user_by_threepid(
        &self,
        medium: Option<&str>,
        address: Option<&str>,
    ) -> Result<Option<String>, MatrixError> {
        let (Some(medium), Some(address)) = (medium, address) else {
            return Err(MatrixError::missing_param("No user identifier given"));
        };
        // Addresses are stored normalised; one that does not parse is bound to
        // nobody (and gets the same answer as a wrong password).
        let address = stored_form(medium, address);
        self.store
            .threepid_owner(medium, &address)
            .await
            .map_err(internal)
    }

    /// Checks a password login: the user it names, when the password is theirs.
    async fn password_login(
        &self,
        body: &login::RequestBody,
        password: &str,
    ) -> Result<Option<User>, MatrixError> {
        let user_id = self.login_user(body).await?;
        self.check_login_password(user_id, password).await
    }

    /// The user `user_id` names, when `password` is theirs (`POST /login` and
    /// the login page). Attempts are limited per account, and failures per
    /// account separately; an unknown user costs the same hash as a known one.
    pub(super) async fn check_login_password(
        &self,
        user_id: Option<String>,
        password: &str,
    ) -> Result<Option<User>, MatrixError> {
        let account: Vec<Key> = user_id.iter().map(|id| Key::User(id.clone())).collect();
        if user_id
            .as_ref()
            .is_some_and(|id| !self.limiter.exempt(id, false))
        {
            self.limiter.check(Action::LoginAccount, &account)?;
        }
        let user = match &user_id {
            Some(id) => self.store.user(id).await.map_err(internal)?,
            None => None,
        };
        let stored = user.as_ref().and_then(|u| u.password_hash.as_deref());
        let verified = self
            .verify_password(Action::LoginFailures, &account, Some(password), stored)
            .await?;
        Ok(user.filter(|_| verified))
    }
}

impl LoginApi for Server {
    async fn get_login_flows(
        &self,
        _ctx: Context<()>,
        _request: get_login_flows::Request,
    ) -> Result<get_login_flows::Response, MatrixError> {
        let password = get_login_flows::LoginFlow::new("m.login.password".to_string());
        let mut token = get_login_flows::LoginFlow::new("m.login.token".to_string());
        token.get_login_token = Some(true);
        let mut flows = vec![password, token];
        // With the OAuth 2.0 API on too, the server's pages are its single
        // sign-on, and OAuth 2.0 aware clients are told to prefer them.
        if self.config.oauth.enabled() {
            let mut sso = get_login_flows::LoginFlow::new("m.login.sso".to_string());
            sso.oauth_aware_preferred = Some(true);
            flows.push(sso);
        }
        let mut body = get_login_flows::OkBody::new();
        body.flows = Some(flows);
        Ok(body.into())
    }

    async fn login(
        &self,
        _ctx: Context<()>,
        request: login::Request,
    ) -> Result<login::Response, MatrixError> {
        let body = &request.body;
        if let Some(device_id) = &body.device_id {
            check_device_id(device_id)?;
        }
        // The user, and for a password login the hash the password was checked
        // against (the login fails if it changes before the device is created).
        let (user, checked_hash) = match body.type_.as_str() {
            "m.login.password" => {
                let Some(password) = body.password.as_deref() else {
                    return Err(MatrixError::missing_param("Missing `password`"));
                };
                match self.password_login(body, password).await? {
                    Some(user) => {
                        let hash = user.password_hash.clone();
                        (Some(user), hash)
                    }
                    None => return Err(MatrixError::forbidden("Invalid username or password")),
                }
            }
            "m.login.token" => {
                let Some(token) = body.token.as_deref() else {
                    return Err(MatrixError::missing_param("Missing `token`"));
                };
                match self
                    .store
                    .take_login_token(&crypto::token_hash(token))
                    .await
                    .map_err(internal)?
                {
                    Some(user_id) => (self.store.user(&user_id).await.map_err(internal)?, None),
                    None => return Err(MatrixError::forbidden("Invalid or expired login token")),
                }
            }
            _ => {
                return Err(MatrixError::new(
                    StatusCode::BAD_REQUEST,
                    "M_UNKNOWN",
                    "Unknown login type",
                ))
            }
        };
        let Some(user) = user else {
            // A login token of an account that is gone.
            return Err(MatrixError::forbidden("Invalid or expired login token"));
        };
        // Said only to whoever proved the password (or holds a login token), so
        // it reveals nothing to someone probing for accounts.
        if user.deactivated {
            return Err(MatrixError::new(
                StatusCode::FORBIDDEN,
                "M_USER_DEACTIVATED",
                "This account has been deactivated",
            ));
        }
        if user.locked {
            return Err(locked());
        }
        let user_id = user.user_id;
        let session = self
            .open_session(
                &user_id,
                body.device_id.as_deref(),
                body.initial_device_display_name.as_deref(),
                body.refresh_token == Some(true),
                checked_hash.as_deref(),
            )
            .await?;
        tracing::info!(user_id, device_id = session.device_id, "logged in");
        let mut body = login::OkBody::new(
            known_user_id(&user_id)?,
            session.access_token,
            session.device_id,
        );
        body.refresh_token = session.refresh_token;
        body.expires_in_ms = session.expires_in_ms;
        body.home_server = Some(self.server_name.clone());
        body.well_known = self.config.public_baseurl.as_deref().map(well_known);
        Ok(body.into())
    }
}

impl LoginTokenApi for Server {
    async fn generate_login_token(
        &self,
        ctx: Context<Caller>,
        request: generate_login_token::Request,
    ) -> Result<generate_login_token::Response, MatrixError> {
        let spec = UiaSpec {
            operation: &generate_login_token::METADATA,
            binding: &[],
            user_id: Some(&ctx.auth.user_id),
            via_oauth: ctx.auth.via_oauth,
            flows: vec![vec![PASSWORD]],
            request: &ctx.request,
            result_on_retry: false,
        };
        let session = match self
            .user_interactive_auth(&spec, request.body.auth.as_ref())
            .await?
        {
            Uia::Passed(s) => s,
            Uia::Challenge(c) => return Ok(c.into()),
        };
        let token = crypto::new_token("mlt");
        let lifetime_ms = (self.config.tokens.login_token_lifetime_secs * 1000) as i64;
        self.store
            .create_login_token(
                &crypto::token_hash(&token),
                &ctx.auth.user_id,
                now_ms() + lifetime_ms,
            )
            .await
            .map_err(internal)?;
        self.complete_uia(session, &ctx.auth.user_id).await?;
        Ok(generate_login_token::OkBody::new(token, lifetime_ms).into())
    }
}

impl LogoutApi for Server {
    async fn logout(
        &self,
        ctx: Context<Caller>,
        _request: logout::Request,
    ) -> Result<logout::Response, MatrixError> {
        self.log_out(
            &ctx.auth.user_id,
            LogoutDevices::One(ctx.auth.device_id.clone()),
        )
        .await?;
        Ok(logout::Response::Ok(Default::default()))
    }

    async fn logout_all(
        &self,
        ctx: Context<Caller>,
        _request: logout_all::Request,
    ) -> Result<logout_all::Response, MatrixError> {
        self.log_out(&ctx.auth.user_id, LogoutDevices::All).await?;
        Ok(logout_all::Response::Ok(Default::default()))
    }
}

impl RefreshApi for Server {
    async fn refresh(
        &self,
        _ctx: Context<()>,
        request: refresh::Request,
    ) -> Result<refresh::Response, MatrixError> {
        let rotation = self.rotate(&request.body.refresh_token).await?;
        let refused = |message| {
            Err(MatrixError::new(
                StatusCode::UNAUTHORIZED,
                "M_UNKNOWN_TOKEN",
                message,
            ))
        };
        match rotation.outcome {
            Refreshed::Rotated { .. } => {}
            Refreshed::Unknown | Refreshed::Replayed { .. } => {
                return refused("Unknown or already used refresh token")
            }
            Refreshed::SessionOver { .. } => return refused("The session has ended: log in again"),
            Refreshed::Locked => return Err(locked()),
        }
        let mut body = refresh::OkBody::new(rotation.access_token);
        body.refresh_token = Some(rotation.refresh_token);
        body.expires_in_ms = rotation.expires_ms.map(|e| e - now_ms());
        Ok(body.into())
    }
}
