//! The server's state and what every API area shares: the authenticated caller,
//! user IDs, password policy, logging a device in, and error helpers.

use std::sync::Arc;

use http::StatusCode;
use matrix_api::runtime::{
    Authenticator, Credential, MatrixError, Metadata, RequestInfo, ServerName, UserId,
};

use crate::config::Config;
use crate::crypto::{self, PasswordHasherConfig};
use crate::email::Mailer;
use crate::homeserver::Synapse;
use crate::ratelimit::{self, Action, Key, RateLimiter};
use crate::sms::SmsSender;
use crate::store::{
    now_ms, HomeserverPart, LogoutDevices, NewSession, OAuthGrant, Refreshed, Store, StoreError,
    TokenOwner,
};
use crate::templates::Templates;

pub struct Server {
    pub config: Config,
    /// `config.server_name`, parsed (the configuration check guarantees it).
    pub server_name: ServerName,
    pub store: Store,
    pub hasher: PasswordHasherConfig,
    pub limiter: RateLimiter,
    /// `[email]`'s SMTP transport, when email is configured.
    pub mailer: Option<Mailer>,
    /// `[sms]`'s gateway, when text messages are configured.
    pub sms: Option<SmsSender>,
    /// `[email] allowed_addresses`, compiled.
    pub allowed_addresses: Vec<regex::Regex>,
    pub templates: Templates,
    /// The address the HTTP server listens on (the port may be 0 in the
    /// configuration), once it does.
    pub listening_on: std::sync::OnceLock<std::net::SocketAddr>,
    /// The Synapse this server authenticates for (`[homeserver] kind =
    /// "synapse"`), if any.
    pub synapse: Option<Synapse>,
}

/// A logged-in device and its tokens, as login and registration return them.
pub struct Session {
    pub device_id: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in_ms: Option<i64>,
}

/// A refresh token exchanged (see [`Server::rotate`]): the new pair, valid
/// only when the outcome is `Rotated`.
pub struct Rotation {
    pub outcome: Refreshed,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_ms: Option<i64>,
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: String,
    pub device_id: String,
    pub is_admin: bool,
    pub is_guest: bool,
    pub suspended: bool,
    /// The token was issued through the OAuth 2.0 API (its device belongs to
    /// a client), which cannot do interactive authentication.
    pub via_oauth: bool,
}

impl Caller {
    /// The delegating homeserver, on the operations only it may call (its
    /// shared secret is their only security scheme): no user, no device.
    pub fn homeserver() -> Caller {
        Caller {
            user_id: String::new(),
            device_id: String::new(),
            is_admin: false,
            is_guest: false,
            suspended: false,
            via_oauth: false,
        }
    }
}

impl Server {
    pub async fn new(config: Config) -> Result<Arc<Server>, String> {
        let auth_cache = std::time::Duration::from_millis(config.auth_cache_ms);
        let store = Store::open(&config.database, auth_cache).await?;
        let hasher = PasswordHasherConfig::new(&config.passwords)?;
        let server_name =
            ServerName::parse(&config.server_name).map_err(|e| format!("server_name: {e}"))?;
        let mailer = match config.email.enabled() {
            true => Some(Mailer::new(&config.email).map_err(|e| format!("email.smtp_url: {e}"))?),
            false => None,
        };
        let allowed_addresses = config
            .email
            .allowed_addresses
            .iter()
            .map(|p| regex::Regex::new(p).map_err(|e| format!("email.allowed_addresses: {e}")))
            .collect::<Result<_, _>>()?;
        let templates = Templates::new(config.email.templates_dir.as_deref())?;
        let config_sms = config.sms.enabled().then(|| SmsSender::new(&config.sms));
        let synapse = Synapse::from_config(&config.homeserver)?;
        Ok(Arc::new(Server {
            server_name,
            limiter: RateLimiter::new(config.rate_limits.clone()),
            config,
            store,
            hasher,
            mailer,
            sms: config_sms,
            allowed_addresses,
            templates,
            listening_on: std::sync::OnceLock::new(),
            synapse,
        }))
    }

    /// The operations the configured authentication APIs leave out (see
    /// `[oauth] apis`): the router answers them `404 M_UNRECOGNIZED`, the
    /// spec's answer for an API a server does not offer.
    pub fn switched_off(&self) -> Vec<&'static str> {
        use matrix_api::account::{
            account_management, oauth, oauth_device, oauth_discovery, oauth_pages,
        };
        use matrix_api::client_server::{
            login, login_token, oauth_server_metadata, refresh, registration, sso_login_redirect,
        };
        let mut off = Vec::new();
        if !self.config.oauth.enabled() {
            off.extend([
                oauth_server_metadata::get_auth_metadata::METADATA.operation_id,
                oauth_discovery::get_authorization_server_metadata::METADATA.operation_id,
                oauth::register_client::METADATA.operation_id,
                oauth::authorize::METADATA.operation_id,
                oauth::request_device_authorization::METADATA.operation_id,
                oauth::request_token::METADATA.operation_id,
                oauth::revoke_token::METADATA.operation_id,
                oauth_pages::show_login_page::METADATA.operation_id,
                oauth_pages::submit_login::METADATA.operation_id,
                oauth_pages::show_registration_page::METADATA.operation_id,
                oauth_pages::submit_registration::METADATA.operation_id,
                oauth_pages::show_registration_email_page::METADATA.operation_id,
                oauth_pages::submit_registration_email::METADATA.operation_id,
                oauth_pages::show_consent_page::METADATA.operation_id,
                oauth_pages::submit_consent::METADATA.operation_id,
                account_management::show_account_page::METADATA.operation_id,
                account_management::show_account_login_page::METADATA.operation_id,
                account_management::submit_account_login::METADATA.operation_id,
                account_management::submit_account_logout::METADATA.operation_id,
                account_management::submit_password_change::METADATA.operation_id,
                account_management::submit_device_deletion::METADATA.operation_id,
                account_management::submit_threepid_addition::METADATA.operation_id,
                account_management::show_threepid_confirmation_page::METADATA.operation_id,
                account_management::submit_threepid_confirmation::METADATA.operation_id,
                account_management::submit_threepid_removal::METADATA.operation_id,
                account_management::submit_account_deactivation::METADATA.operation_id,
                oauth_device::show_device_code_page::METADATA.operation_id,
                oauth_device::submit_device_code::METADATA.operation_id,
                oauth_device::show_device_consent_page::METADATA.operation_id,
                oauth_device::submit_device_consent::METADATA.operation_id,
                oauth_device::show_device_done_page::METADATA.operation_id,
            ]);
        }
        if self.synapse.is_none() {
            use matrix_api::account::delegation;
            off.extend([
                delegation::get_open_id_configuration::METADATA.operation_id,
                delegation::introspect_token::METADATA.operation_id,
            ]);
        }
        // The single sign-on redirect needs both: the OAuth 2.0 API's pages,
        // and the legacy API's `m.login.token` at the end.
        if !self.config.oauth.enabled() || !self.config.oauth.legacy_enabled() {
            off.push(sso_login_redirect::redirect_to_sso::METADATA.operation_id);
        }
        if !self.config.oauth.legacy_enabled() {
            // Logging in, registering and refreshing: what an OAuth 2.0 client
            // does through the authorisation server instead.
            off.extend([
                login::get_login_flows::METADATA.operation_id,
                login::login::METADATA.operation_id,
                login_token::generate_login_token::METADATA.operation_id,
                refresh::refresh::METADATA.operation_id,
                registration::register::METADATA.operation_id,
                registration::check_username_availability::METADATA.operation_id,
                registration::request_token_to_register_email::METADATA.operation_id,
                registration::request_token_to_register_msisdn::METADATA.operation_id,
            ]);
        }
        off
    }

    /// `@localpart:server_name` of the current grammar (the runtime's `UserId`),
    /// or `M_INVALID_USERNAME`.
    pub fn user_id_for(&self, localpart: &str) -> Result<String, MatrixError> {
        UserId::new(localpart, &self.server_name)
            .map(String::from)
            .map_err(|e| {
                MatrixError::new(
                    StatusCode::BAD_REQUEST,
                    "M_INVALID_USERNAME",
                    format!("{e} (and at most 255 bytes in all)"),
                )
            })
    }

    /// A user ID given in full (`@alice:example.org`) or as a localpart.
    pub fn resolve_user(&self, name: &str) -> Result<String, MatrixError> {
        if !name.starts_with('@') {
            return self.user_id_for(&name.to_lowercase());
        }
        match UserId::parse(name) {
            Ok(id) if id.server_name() == self.server_name.as_str() => {
                self.user_id_for(id.localpart())
            }
            _ => Err(MatrixError::forbidden("Unknown user")),
        }
    }

    /// `M_WEAK_PASSWORD` for passwords the configured policy refuses.
    pub fn check_password_policy(&self, password: &str) -> Result<(), MatrixError> {
        let p = &self.config.passwords;
        let weak = |msg: String| {
            Err(MatrixError::new(
                StatusCode::BAD_REQUEST,
                "M_WEAK_PASSWORD",
                msg,
            ))
        };
        if password.chars().count() < p.min_length {
            return weak(format!(
                "Passwords must be at least {} characters long",
                p.min_length
            ));
        }
        if p.require_mixed {
            let letter = password.chars().any(char::is_alphabetic);
            let digit = password.chars().any(|c| c.is_ascii_digit());
            let symbol = password.chars().any(|c| !c.is_alphanumeric());
            if !(letter && digit && symbol) {
                return weak("Passwords must contain a letter, a digit and a symbol".into());
            }
        }
        Ok(())
    }

    /// Logs a device in: the client's `device_id` (its old tokens revoked) or a new
    /// one, with a fresh access token and, if asked, a refresh token. A password
    /// login passes the hash it checked: if the password changed (or the account
    /// was deactivated) since, nothing is created and the answer is `403`.
    pub async fn open_session(
        &self,
        user_id: &str,
        device_id: Option<&str>,
        display_name: Option<&str>,
        with_refresh: bool,
        checked_hash: Option<&str>,
    ) -> Result<Session, MatrixError> {
        self.open_session_for(
            user_id,
            device_id,
            display_name,
            with_refresh,
            checked_hash,
            None,
        )
        .await
    }

    /// [`open_session`](Self::open_session), for a legacy login (`oauth`
    /// `None`) or one through the OAuth 2.0 API, whose device then belongs to
    /// the client authorised.
    pub async fn open_session_for(
        &self,
        user_id: &str,
        device_id: Option<&str>,
        display_name: Option<&str>,
        with_refresh: bool,
        checked_hash: Option<&str>,
        oauth: Option<OAuthGrant<'_>>,
    ) -> Result<Session, MatrixError> {
        if let Some(id) = device_id {
            check_device_id(id)?;
        }
        let device_id = device_id.map_or_else(crypto::new_id, str::to_string);
        let device_id = device_id.as_str();
        // A delegating homeserver refuses tokens of devices it does not know.
        self.upsert_device(user_id, device_id, display_name).await?;
        let access = crypto::new_token("mat");
        let refresh = with_refresh.then(|| crypto::new_token("mar"));
        let now = now_ms();
        let tokens = &self.config.tokens;
        let session_ends_ms = (tokens.session_lifetime_secs > 0)
            .then(|| now + tokens.session_lifetime_secs as i64 * 1000);
        // Refreshable access tokens expire; any access token ends with its session.
        let lifetime_ms = (tokens.access_token_lifetime_secs * 1000) as i64;
        let expires_ms = match (with_refresh.then_some(now + lifetime_ms), session_ends_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let refresh_hash = refresh.as_deref().map(crypto::token_hash);
        let created = self
            .store
            .create_session(&NewSession {
                user_id,
                device_id,
                display_name,
                access_hash: &crypto::token_hash(&access),
                expires_ms,
                refresh_hash: refresh_hash.as_deref(),
                session_ends_ms,
                checked_hash,
                oauth,
            })
            .await
            .map_err(internal)?;
        if !created {
            return Err(MatrixError::forbidden(
                "The account's password changed, or it was deactivated, during this login",
            ));
        }
        Ok(Session {
            device_id: device_id.to_string(),
            access_token: access,
            refresh_token: refresh,
            // Only a client that can refresh is told; the others meet the end of
            // their session as a soft logout.
            expires_in_ms: with_refresh.then(|| expires_ms.map_or(lifetime_ms, |e| e - now)),
        })
    }

    /// Logs devices out, here and on the delegating homeserver (if any).
    pub async fn log_out(&self, user_id: &str, which: LogoutDevices) -> Result<(), MatrixError> {
        self.store.logout(user_id, which).await.map_err(internal)?;
        self.tell_homeserver(user_id, HomeserverPart::Devices).await;
        Ok(())
    }

    /// Sets a new password (its `hash`) and, with `logout`, logs those devices
    /// out, here and on the delegating homeserver. Browser sessions of the
    /// account's pages end too, but the one of the cookie `keep_browser`
    /// (the page the change was made on): one signed in with the old password
    /// could still authorise new clients. `false`: there is no such active
    /// account.
    pub async fn change_password(
        &self,
        user_id: &str,
        hash: &str,
        logout: Option<LogoutDevices>,
        keep_browser: Option<&str>,
    ) -> Result<bool, MatrixError> {
        let logs_out = logout.is_some();
        let changed = self
            .store
            .change_password(user_id, hash, logout)
            .await
            .map_err(internal)?;
        if !changed {
            return Ok(false);
        }
        if logs_out {
            self.tell_homeserver(user_id, HomeserverPart::Devices).await;
        }
        self.store
            .end_browser_sessions(user_id, keep_browser)
            .await
            .map_err(internal)?;
        Ok(true)
    }

    /// Locks or unlocks an account, here and (for its own records) on the
    /// delegating homeserver. `false`: there is no such active account.
    pub async fn set_locked(&self, user_id: &str, locked: bool) -> Result<bool, MatrixError> {
        let changed = self
            .store
            .set_locked(user_id, locked)
            .await
            .map_err(internal)?;
        if changed {
            self.tell_homeserver(user_id, HomeserverPart::Lock).await;
        }
        Ok(changed)
    }

    /// Deactivates an account for good: first on the delegating homeserver
    /// (if it refuses, nothing changed), then here, with its devices, tokens,
    /// addresses and browser sessions. `false`: there is no such account.
    pub async fn deactivate(&self, user_id: &str, erase: bool) -> Result<bool, MatrixError> {
        self.delete_homeserver_user(user_id, erase).await?;
        self.store
            .deactivate(user_id, erase)
            .await
            .map_err(internal)
    }

    /// Exchanges a refresh token for a new pair (`POST /refresh` and the OAuth
    /// 2.0 token endpoint): see `Store::refresh` for rotation, the retry window
    /// and what a replay does.
    pub async fn rotate(&self, refresh_token: &str) -> Result<Rotation, MatrixError> {
        let access = crypto::new_token("mat");
        let refresh = crypto::new_token("mar");
        let lifetime_ms = (self.config.tokens.access_token_lifetime_secs * 1000) as i64;
        let (outcome, expires_ms) = self
            .store
            .refresh(
                &crypto::token_hash(refresh_token),
                &crypto::token_hash(&access),
                &crypto::token_hash(&refresh),
                lifetime_ms,
            )
            .await
            .map_err(internal)?;
        match &outcome {
            Refreshed::Rotated { user_id, device_id } => {
                tracing::debug!(user_id, device_id, "refreshed");
            }
            // Someone else holds a copy of this token.
            Refreshed::Replayed { user_id } => {
                tracing::warn!(
                    user_id,
                    "a retired refresh token was replayed; its device is logged out"
                );
                self.tell_homeserver(user_id, HomeserverPart::Devices).await;
            }
            Refreshed::SessionOver { user_id } => {
                self.tell_homeserver(user_id, HomeserverPart::Devices).await
            }
            _ => {}
        }
        Ok(Rotation {
            outcome,
            access_token: access,
            refresh_token: refresh,
            expires_ms,
        })
    }

    /// The owner of an access token that may be used now: not unknown,
    /// expired, of a deactivated account, or (unless `lock_exempt`) of a
    /// locked one. Its first use retires the refresh token it replaced.
    /// Returns the token's hash with its owner.
    pub async fn live_token(
        &self,
        token: &str,
        lock_exempt: bool,
    ) -> Result<(String, TokenOwner), MatrixError> {
        let hash = crypto::token_hash(token);
        let owner = self
            .store
            .token_owner(&hash)
            .await
            .map_err(internal)?
            .ok_or_else(|| MatrixError::unknown_token(false))?;
        if owner.deactivated {
            return Err(MatrixError::unknown_token(false));
        }
        if owner.expires_ms.is_some_and(|e| e <= now_ms()) {
            // Expired, not revoked: the client may refresh and keep its state.
            return Err(MatrixError::unknown_token(true));
        }
        // A locked user may still log out (the generated metadata says where).
        if owner.locked && !lock_exempt {
            return Err(locked());
        }
        if owner.retires_predecessor {
            if let Some(refresh) = &owner.refresh_hash {
                self.store
                    .retire_predecessor(refresh)
                    .await
                    .map_err(internal)?;
            }
        }
        Ok((hash, owner))
    }

    /// The delegating homeserver, known by the shared secret (compared in
    /// constant time).
    fn authenticate_homeserver(&self, secret: &str) -> Result<Caller, MatrixError> {
        let expected = self
            .synapse
            .as_ref()
            .map(|s| s.secret())
            .unwrap_or_default();
        let same: bool =
            subtle::ConstantTimeEq::ct_eq(secret.as_bytes(), expected.as_bytes()).into();
        if expected.is_empty() || !same {
            return Err(MatrixError::unknown_token(false));
        }
        Ok(Caller::homeserver())
    }

    /// The rate-limit key of the client's address (see `ratelimit::client_address`).
    pub fn client_key(&self, info: &RequestInfo) -> Option<Key> {
        ratelimit::client_address(info, &self.config.rate_limits.trusted_proxies)
    }

    /// Rate-limits an action by the client's address.
    pub fn limit_address(&self, action: Action, info: &RequestInfo) -> Result<(), MatrixError> {
        if !self.limiter.is_active(action) {
            return Ok(());
        }
        let keys: Vec<Key> = self.client_key(info).into_iter().collect();
        self.limiter.check(action, &keys)
    }

    /// Rate-limits a `requestToken` call by the email address or phone number
    /// it would message (the router's hook has limited it by client address).
    pub fn limit_threepid(&self, threepid: &str) -> Result<(), MatrixError> {
        self.limiter.check(
            Action::RequestTokenThreepid,
            &[Key::Threepid(threepid.trim().to_lowercase())],
        )
    }

    /// Checks a password against a stored hash under a failure-counting limit
    /// (`login_failures`, `password_failures`): the attempt takes a token from
    /// each key's bucket first and gives it back unless the password was wrong,
    /// so only failures count and parallel guesses cannot all pass. No password is a
    /// failure; no stored hash (an unknown user) costs a dummy hash all the same.
    pub async fn verify_password(
        &self,
        action: Action,
        keys: &[Key],
        password: Option<&str>,
        stored: Option<&str>,
    ) -> Result<bool, MatrixError> {
        self.limiter.check(action, keys)?;
        let Some(password) = password else {
            return Ok(false);
        };
        let verified = self.hasher.verify(password, stored).await;
        // Only a wrong password counts: a right one, or a check that could not
        // run (the hash queue was full), gives its token back.
        if !matches!(verified, Ok(false)) {
            self.limiter.refund(action, keys);
        }
        Ok(verified?)
    }

    /// Rate-limits an action by the signed-in caller, unless the caller is exempt.
    pub fn limit_caller(&self, action: Action, caller: &Caller) -> Result<(), MatrixError> {
        if self.limiter.exempt(&caller.user_id, caller.is_admin) {
            return Ok(());
        }
        self.limiter
            .check(action, &[Key::User(caller.user_id.clone())])
    }
}

/// A client-chosen device ID: 1–255 bytes, no control characters. (An empty ID
/// once created a device that "log out everywhere" did not reach.)
pub fn check_device_id(device_id: &str) -> Result<(), MatrixError> {
    if device_id.is_empty() || device_id.len() > 255 || device_id.chars().any(char::is_control) {
        return Err(MatrixError::invalid_param(
            "device_id must be 1 to 255 bytes long, without control characters",
        ));
    }
    Ok(())
}

/// A user ID the server stored or built itself, as the runtime's type. It is
/// valid by construction, so a failure is the server's (`500`), not the client's.
pub fn known_user_id(user_id: &str) -> Result<UserId, MatrixError> {
    UserId::parse(user_id).map_err(|e| {
        tracing::error!(user_id, error = %e, "a stored user ID does not parse");
        MatrixError::unknown("Internal server error")
    })
}

/// `401 M_USER_LOCKED`: the client keeps its state (`soft_logout`) and may log in
/// again once an administrator unlocks the account.
pub fn locked() -> MatrixError {
    MatrixError::new(
        StatusCode::UNAUTHORIZED,
        "M_USER_LOCKED",
        "This account has been locked",
    )
    .with("soft_logout", true)
}

/// A storage failure: logged with detail, answered as `500 M_UNKNOWN`.
pub fn internal(e: StoreError) -> MatrixError {
    tracing::error!(error = %e, "storage failure");
    MatrixError::unknown("Internal server error")
}

/// Answer for the 3PID flows this server cannot deliver (no email or SMS sender).
pub fn medium_not_supported() -> MatrixError {
    MatrixError::new(
        StatusCode::BAD_REQUEST,
        "M_THREEPID_MEDIUM_NOT_SUPPORTED",
        "This server cannot send validation messages to this medium",
    )
}

impl Authenticator for Server {
    type Identity = Caller;

    fn rate_limit(
        &self,
        request: &RequestInfo,
        caller: Option<&Caller>,
    ) -> Result<(), MatrixError> {
        self.rate_limit_operation(request, caller)
    }

    fn observe(
        &self,
        operation: Option<&'static Metadata>,
        status: StatusCode,
        elapsed: std::time::Duration,
    ) {
        crate::metrics::observe_request(operation, status, elapsed);
    }

    async fn authenticate(&self, credential: Credential<'_>) -> Result<Caller, MatrixError> {
        if credential.scheme == crate::api::HOMESERVER_SCHEME {
            return self.authenticate_homeserver(credential.token);
        }
        let (hash, owner) = self
            .live_token(credential.token, credential.request.operation.lock_exempt)
            .await?;
        let now = now_ms();
        // Activity for `whois`, at most once a minute per device.
        if owner.last_seen_ms.is_none_or(|t| now - t > 60_000) {
            let ip = credential.request.remote_addr.map(|a| a.ip().to_string());
            let ua = credential
                .request
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok());
            if let Err(e) = self
                .store
                .touch_device(&owner.user_id, &owner.device_id, ip.as_deref(), ua)
                .await
            {
                tracing::warn!(error = %e, "could not record device activity");
            }
            self.store.forget_cached_token(&hash);
        }
        Ok(Caller {
            user_id: owner.user_id,
            device_id: owner.device_id,
            is_admin: owner.is_admin,
            is_guest: owner.is_guest,
            suspended: owner.suspended,
            via_oauth: owner.via_oauth,
        })
    }
}
