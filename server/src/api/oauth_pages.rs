//! The pages of the OAuth 2.0 authorisation code grant
//! (api/account/oauth_pages.yaml): log in or create an account, then allow or
//! deny the client. The authorisation endpoint sends the browser to the
//! consent page (or, for `prompt=create`, the registration page); the consent
//! page sends it to the login page when nobody is logged in, and its form
//! sends it back to the client. What the registration form checks and
//! creates, and its email stage (`/register/email`), is in
//! `oauth_registration.rs`.
//!
//! The login and registration pages also serve the device authorisation grant
//! (`oauth_device.rs`): the `session` they carry names either kind of pending
//! request, told apart by its prefix ([`super::oauth_device::is_device_session`]),
//! and they continue to that kind's consent page. Both IDs are the server's
//! own random values, so nothing the browser sends chooses where a form leads.
//!
//! A login starts a browser session: a random cookie (`HttpOnly`,
//! `SameSite=Lax` so the client's navigation to the authorisation endpoint
//! carries it, `Secure` over https) stored as its SHA-256. Every form carries
//! a CSRF value that must match the CSRF cookie (double submit), and every
//! successful post answers `303`.

use matrix_api::account::oauth_pages::{
    show_consent_page, show_login_page, show_registration_email_page, show_registration_page,
    submit_consent, submit_login, submit_registration, submit_registration_email, OAuthPagesApi,
};
use matrix_api::runtime::{Context, Html, MatrixError, RequestInfo, PAGE_CSP};

use super::oauth::{parse_client, ACCOUNT_BASE, CODE_LIFETIME_MS};
use super::oauth_device;
use super::oauth_registration::{EmailFinished, EmailStarted, RegistrationForm};
use super::pages::{cookie, csrf_matches, retry_after_secs};
use super::sso::LOGIN_TOKEN_MODE;
use crate::crypto;
use crate::oauth::callback::{callback_url, ResponseMode};
use crate::ratelimit::{Action, Key};
use crate::service::{internal, Server};
use crate::store::{now_ms, Authorization};

/// The CSRF cookie of these pages' forms (and the device grant's).
pub(super) const CSRF_COOKIE: &str = "oauth_csrf";
/// The browser session's cookie.
pub(super) const SESSION_COOKIE: &str = "account_session";

/// What a page shows of the client it is about.
pub(super) struct ClientView {
    pub(super) name: String,
    pub(super) uri: Option<String>,
}

impl Server {
    /// The pending authorisation request `session` and its client, or the
    /// page saying it is gone.
    async fn pending(
        &self,
        session: &str,
    ) -> Result<Result<(Authorization, ClientView), Html>, MatrixError> {
        let pending = self
            .store
            .pending_authorization(session)
            .await
            .map_err(internal)?;
        let Some(a) = pending else {
            return Ok(Err(self.request_gone_page()?));
        };
        // A single sign-on request: no registered client, only where the
        // browser goes back to.
        if a.response_mode == LOGIN_TOKEN_MODE {
            let name = match url::Url::parse(&a.redirect_uri) {
                Ok(u) => u.host_str().unwrap_or(u.scheme()).to_string(),
                Err(_) => a.redirect_uri.clone(),
            };
            let uri = Some(a.redirect_uri.clone());
            return Ok(Ok((a, ClientView { name, uri })));
        }
        match self.client_view(&a.client_id).await? {
            Some(view) => Ok(Ok((a, view))),
            None => Ok(Err(self.request_gone_page()?)),
        }
    }

    /// The client of the pending request `session`, of either kind (see the
    /// module docs), or the page saying it is gone.
    async fn pending_client(&self, session: &str) -> Result<Result<ClientView, Html>, MatrixError> {
        Ok(if oauth_device::is_device_session(session) {
            self.pending_device(session)
                .await?
                .map(|(_, client)| client)
        } else {
            self.pending(session).await?.map(|(_, client)| client)
        })
    }

    /// What a page shows of a registered client; `None` if it is not.
    pub(super) async fn client_view(
        &self,
        client_id: &str,
    ) -> Result<Option<ClientView>, MatrixError> {
        let client = self.store.oauth_client(client_id).await.map_err(internal)?;
        Ok(client
            .as_deref()
            .and_then(parse_client)
            .map(|m| ClientView {
                name: m
                    .display_name(None)
                    .map(str::to_string)
                    .unwrap_or_else(|| m.client_uri.clone()),
                uri: Some(m.client_uri.clone()),
            }))
    }

    /// The page of a pending request that has expired or was answered.
    pub(super) fn request_gone_page(&self) -> Result<Html, MatrixError> {
        self.oauth_page_error("This sign-in request has expired or was already answered.")
    }

    pub(super) fn oauth_page_error(&self, message: &str) -> Result<Html, MatrixError> {
        self.page(
            "pages/oauth_error.html",
            minijinja::context! {
                message,
                server_name => self.config.server_name,
                static_url => format!("{ACCOUNT_BASE}/static"),
            },
        )
    }

    /// The CSRF value for a page's form: the one the browser already holds
    /// (so two open tabs both work), or a fresh one with its `Set-Cookie`.
    pub(super) fn page_csrf(&self, cookie_header: Option<&str>) -> (String, String) {
        match cookie(cookie_header, CSRF_COOKIE).filter(|v| v.starts_with("csrf_") && v.len() > 40)
        {
            Some(value) => {
                let value = value.to_string();
                let set_cookie = self.cookie_header(CSRF_COOKIE, &value, "Strict", None);
                (value, set_cookie)
            }
            None => self.csrf_cookie(CSRF_COOKIE, ACCOUNT_BASE),
        }
    }

    /// A `Set-Cookie` for the pages under [`ACCOUNT_BASE`].
    pub(super) fn cookie_header(
        &self,
        name: &str,
        value: &str,
        same_site: &str,
        max_age: Option<u64>,
    ) -> String {
        self.set_cookie(name, value, ACCOUNT_BASE, same_site, max_age)
    }

    /// Starts a browser session for `user_id`; its `Set-Cookie`.
    pub(super) async fn start_browser_session(&self, user_id: &str) -> Result<String, MatrixError> {
        let value = crypto::new_token("abs");
        let lifetime = self.config.oauth.browser_session_lifetime_secs;
        self.store
            .create_browser_session(&value, user_id, now_ms() + (lifetime * 1000) as i64)
            .await
            .map_err(internal)?;
        Ok(self.cookie_header(SESSION_COOKIE, &value, "Lax", Some(lifetime)))
    }

    /// The logged-in user of the browser, if any.
    pub(super) async fn browser_user(
        &self,
        cookie_header: Option<&str>,
    ) -> Result<Option<String>, MatrixError> {
        match cookie(cookie_header, SESSION_COOKIE) {
            Some(value) => self
                .store
                .browser_session_user(value)
                .await
                .map_err(internal),
            None => Ok(None),
        }
    }

    /// A page-level rate limit: `None` when allowed, else the page saying
    /// when to try again.
    fn page_limit(&self, action: Action, keys: &[Key]) -> Result<Option<Html>, MatrixError> {
        match self.limiter.check(action, keys) {
            Ok(()) => Ok(None),
            Err(e) => {
                let seconds = retry_after_secs(&e);
                let message = format!("Too many attempts. Try again in {seconds} seconds.");
                Ok(Some(self.oauth_page_error(&message)?))
            }
        }
    }

    pub(super) fn address_keys(&self, info: &RequestInfo) -> Vec<Key> {
        self.client_key(info).into_iter().collect()
    }

    fn login_page(
        &self,
        session: &str,
        client: &ClientView,
        csrf: &str,
        username: &str,
        error: Option<&str>,
        allow_register: bool,
    ) -> Result<Html, MatrixError> {
        self.page(
            "pages/oauth_login.html",
            minijinja::context! {
                server_name => self.config.server_name,
                static_url => format!("{ACCOUNT_BASE}/static"),
                action => format!("{ACCOUNT_BASE}/login"),
                client_name => client.name,
                session,
                csrf,
                username,
                error,
                register_url => allow_register.then(|| session_page("register", session)),
            },
        )
    }

    /// Where the consent page of `session` is: the code grant's, or the
    /// device grant's for a device authorisation.
    fn consent_location(session: &str) -> String {
        match oauth_device::is_device_session(session) {
            true => session_page("device/consent", session),
            false => session_page("consent", session),
        }
    }

    /// Where the login page of `session` (of either kind) is.
    pub(super) fn login_location(session: &str) -> String {
        session_page("login", session)
    }
}

impl Server {
    /// The consent form's answer to a single sign-on request (see `sso.rs`):
    /// allowed, a login token in the redirect URL's query; denied, the bare
    /// redirect URL, which gives the client its control back without one.
    async fn answer_sso(
        &self,
        session: &str,
        action: &str,
        sso: &Authorization,
        user_id: &str,
    ) -> Result<submit_consent::Response, MatrixError> {
        if action != "allow" {
            self.store
                .drop_authorization(session)
                .await
                .map_err(internal)?;
            return Ok(submit_consent::Response::SeeOther {
                location: sso.redirect_uri.clone(),
            });
        }
        let token = crypto::new_token("mlt");
        let expires_ms = now_ms() + (self.config.tokens.login_token_lifetime_secs * 1000) as i64;
        // Marks the request answered (once: a second post finds it gone) before
        // the token exists.
        let answered = self
            .store
            .grant_authorization(session, user_id, &token, expires_ms)
            .await
            .map_err(internal)?;
        if !answered {
            let page = self.oauth_page_error("This sign-in request was already answered.")?;
            return Ok(submit_consent::Response::BadRequest(page));
        }
        self.store
            .create_login_token(&crypto::token_hash(&token), user_id, expires_ms)
            .await
            .map_err(internal)?;
        tracing::info!(user_id, "signed in for a legacy client (single sign-on)");
        Ok(submit_consent::Response::SeeOther {
            location: callback_url(
                &sso.redirect_uri,
                ResponseMode::Query,
                &[("loginToken", &token)],
            ),
        })
    }
}

/// What a consent page shows: the kind of request (`client`, an application's
/// authorisation request; `sso`, a legacy client's single sign-on; `device`,
/// a device's code), where its form posts (below [`ACCOUNT_BASE`]), and what
/// is being allowed to whom.
pub(super) struct ConsentPage<'a> {
    pub(super) kind: &'static str,
    pub(super) action: &'static str,
    pub(super) client: &'a ClientView,
    pub(super) user_id: &'a str,
    /// Empty for a single sign-on: its client chooses the device at `/login`.
    pub(super) device_id: &'a str,
    pub(super) session: &'a str,
    pub(super) csrf: &'a str,
}

impl Server {
    /// The consent page of every kind of request (one template).
    pub(super) fn consent_page(&self, p: &ConsentPage<'_>) -> Result<Html, MatrixError> {
        self.page(
            "pages/oauth_consent.html",
            minijinja::context! {
                server_name => self.config.server_name,
                static_url => format!("{ACCOUNT_BASE}/static"),
                action => format!("{ACCOUNT_BASE}/{}", p.action),
                kind => p.kind,
                client_name => p.client.name,
                client_uri => p.client.uri,
                user_id => p.user_id,
                device_id => p.device_id,
                session => p.session,
                csrf => p.csrf,
            },
        )
    }
}

/// The address of one of these pages (`login`, `consent`, …, below
/// [`ACCOUNT_BASE`]) for the pending request `session`.
pub(super) fn session_page(page: &str, session: &str) -> String {
    let session = form_urlencoded::byte_serialize(session.as_bytes()).collect::<String>();
    format!("{ACCOUNT_BASE}/{page}?session={session}")
}

/// The pages' Content-Security-Policy with `form-action` limited to this
/// server and where the consent form's redirect goes: Chrome applies
/// `form-action` to the redirects that follow a post, so `'self'` alone would
/// block the way back to the client.
fn consent_csp(redirect_uri: &str) -> String {
    let target = match url::Url::parse(redirect_uri) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u.origin().ascii_serialization(),
        Ok(u) => format!("{}:", u.scheme()),
        Err(_) => String::new(),
    };
    format!("{PAGE_CSP}; form-action 'self' {target}")
}

impl OAuthPagesApi for Server {
    async fn show_login_page(
        &self,
        _ctx: Context<()>,
        request: show_login_page::Request,
    ) -> Result<show_login_page::Response, MatrixError> {
        let client = match self.pending_client(&request.session).await? {
            Ok(found) => found,
            Err(page) => return Ok(show_login_page::Response::BadRequest(page)),
        };
        let (csrf, set_cookie) = self.page_csrf(request.cookie.as_deref());
        let body = self.login_page(
            &request.session,
            &client,
            &csrf,
            "",
            None,
            self.page_registration_open(),
        )?;
        Ok(show_login_page::Response::Ok { body, set_cookie })
    }

    async fn submit_login(
        &self,
        ctx: Context<()>,
        request: submit_login::Request,
    ) -> Result<submit_login::Response, MatrixError> {
        let b = &request.body;
        if !csrf_matches(request.cookie.as_deref(), CSRF_COOKIE, &b.csrf) {
            let page = self.oauth_page_error(
                "This form did not come from this server's sign-in page. Go back to your app and sign in again.",
            )?;
            return Ok(submit_login::Response::Forbidden(page));
        }
        if let Some(page) =
            self.page_limit(Action::LoginAddress, &self.address_keys(&ctx.request))?
        {
            return Ok(submit_login::Response::TooManyRequests(page));
        }
        let client = match self.pending_client(&b.session).await? {
            Ok(found) => found,
            Err(page) => return Ok(submit_login::Response::BadRequest(page)),
        };
        let user_id = self.resolve_user(b.username.trim()).ok();
        let checked = match self.check_login_password(user_id, &b.password).await {
            Ok(user) => user,
            Err(e) if e.status == http::StatusCode::TOO_MANY_REQUESTS => {
                let page = self.oauth_page_error(
                    "Too many failed attempts on this account. Try again later.",
                )?;
                return Ok(submit_login::Response::TooManyRequests(page));
            }
            Err(e) => return Err(e),
        };
        let error = match &checked {
            None => Some("Wrong username or password."),
            Some(u) if u.deactivated => Some("This account has been deactivated."),
            Some(u) if u.locked => Some("This account has been locked."),
            Some(_) => None,
        };
        if let Some(error) = error {
            let page = self.login_page(
                &b.session,
                &client,
                &b.csrf,
                &b.username,
                Some(error),
                self.page_registration_open(),
            )?;
            return Ok(match checked {
                None => submit_login::Response::Unauthorized(page),
                Some(_) => submit_login::Response::Forbidden(page),
            });
        }
        let user_id = checked.map(|u| u.user_id).unwrap_or_default();
        let set_cookie = self.start_browser_session(&user_id).await?;
        tracing::info!(user_id, "signed in on the login page");
        Ok(submit_login::Response::SeeOther {
            location: Self::consent_location(&b.session),
            set_cookie,
        })
    }

    async fn show_registration_page(
        &self,
        _ctx: Context<()>,
        request: show_registration_page::Request,
    ) -> Result<show_registration_page::Response, MatrixError> {
        if !self.page_registration_open() {
            let page =
                self.oauth_page_error("This server does not let people create accounts here.")?;
            return Ok(show_registration_page::Response::Forbidden(page));
        }
        let client = match self.pending_client(&request.session).await? {
            Ok(found) => found,
            Err(page) => return Ok(show_registration_page::Response::BadRequest(page)),
        };
        let (csrf, set_cookie) = self.page_csrf(request.cookie.as_deref());
        let form = RegistrationForm {
            username: "",
            email: "",
            display_name: "",
        };
        let body = self.registration_page(&request.session, &client, &csrf, &form, None)?;
        Ok(show_registration_page::Response::Ok { body, set_cookie })
    }

    async fn submit_registration(
        &self,
        ctx: Context<()>,
        request: submit_registration::Request,
    ) -> Result<submit_registration::Response, MatrixError> {
        let b = &request.body;
        if !csrf_matches(request.cookie.as_deref(), CSRF_COOKIE, &b.csrf) {
            let page = self.oauth_page_error(
                "This form did not come from this server's registration page. Go back to your app and start again.",
            )?;
            return Ok(submit_registration::Response::Forbidden(page));
        }
        if !self.page_registration_open() {
            let page =
                self.oauth_page_error("This server does not let people create accounts here.")?;
            return Ok(submit_registration::Response::Forbidden(page));
        }
        if let Some(page) =
            self.page_limit(Action::Registration, &self.address_keys(&ctx.request))?
        {
            return Ok(submit_registration::Response::TooManyRequests(page));
        }
        let client = match self.pending_client(&b.session).await? {
            Ok(found) => found,
            Err(page) => return Ok(submit_registration::Response::BadRequest(page)),
        };
        let form = RegistrationForm {
            username: &b.username,
            email: b.email.as_deref().unwrap_or(""),
            display_name: b.display_name.as_deref().unwrap_or(""),
        };
        let refused = |message: &str| -> Result<submit_registration::Response, MatrixError> {
            let page =
                self.registration_page(&b.session, &client, &b.csrf, &form, Some(message))?;
            Ok(submit_registration::Response::BadRequest(page))
        };
        let email = form.email.trim();
        if email.is_empty() && self.config.email.require_for_registration {
            return refused("This server needs an email address to create an account.");
        }
        if !email.is_empty() {
            return match self
                .start_email_registration(b, email, request.cookie.as_deref())
                .await?
            {
                EmailStarted::Waiting {
                    location,
                    set_cookie,
                } => Ok(submit_registration::Response::SeeOther {
                    location,
                    set_cookie,
                }),
                EmailStarted::Refused(message) => refused(&message),
                EmailStarted::TooMany(page) => {
                    Ok(submit_registration::Response::TooManyRequests(page))
                }
            };
        }
        let user_id = match self.register_from_page(b).await? {
            Ok(user_id) => user_id,
            Err(message) => return refused(&message),
        };
        let set_cookie = self.start_browser_session(&user_id).await?;
        Ok(submit_registration::Response::SeeOther {
            location: Self::consent_location(&b.session),
            set_cookie,
        })
    }

    async fn show_registration_email_page(
        &self,
        _ctx: Context<()>,
        request: show_registration_email_page::Request,
    ) -> Result<show_registration_email_page::Response, MatrixError> {
        if !self.page_registration_open() {
            let page =
                self.oauth_page_error("This server does not let people create accounts here.")?;
            return Ok(show_registration_email_page::Response::Forbidden(page));
        }
        let client = match self.pending_client(&request.session).await? {
            Ok(found) => found,
            Err(page) => return Ok(show_registration_email_page::Response::BadRequest(page)),
        };
        self.show_waiting_registration(&request.session, &client, request.cookie.as_deref())
            .await
    }

    async fn submit_registration_email(
        &self,
        _ctx: Context<()>,
        request: submit_registration_email::Request,
    ) -> Result<submit_registration_email::Response, MatrixError> {
        let b = &request.body;
        if !csrf_matches(request.cookie.as_deref(), CSRF_COOKIE, &b.csrf) {
            let page = self.oauth_page_error(
                "This form did not come from this server's registration page. Go back to your app and start again.",
            )?;
            return Ok(submit_registration_email::Response::Forbidden(page));
        }
        if !self.page_registration_open() {
            let page =
                self.oauth_page_error("This server does not let people create accounts here.")?;
            return Ok(submit_registration_email::Response::Forbidden(page));
        }
        let client = match self.pending_client(&b.session).await? {
            Ok(found) => found,
            Err(page) => return Ok(submit_registration_email::Response::BadRequest(page)),
        };
        let user_id = match self
            .finish_email_registration(b, &client, request.cookie.as_deref())
            .await?
        {
            EmailFinished::Registered { user_id } => user_id,
            EmailFinished::NotConfirmed(page)
            | EmailFinished::Refused(page)
            | EmailFinished::Gone(page) => {
                return Ok(submit_registration_email::Response::BadRequest(page))
            }
        };
        let set_cookie = self.start_browser_session(&user_id).await?;
        Ok(submit_registration_email::Response::SeeOther {
            location: Self::consent_location(&b.session),
            set_cookie,
        })
    }

    async fn show_consent_page(
        &self,
        _ctx: Context<()>,
        request: show_consent_page::Request,
    ) -> Result<show_consent_page::Response, MatrixError> {
        let (authorization, client) = match self.pending(&request.session).await? {
            Ok(found) => found,
            Err(page) => return Ok(show_consent_page::Response::BadRequest(page)),
        };
        let Some(user_id) = self.browser_user(request.cookie.as_deref()).await? else {
            return Ok(show_consent_page::Response::SeeOther {
                location: Self::login_location(&request.session),
            });
        };
        let (csrf, set_cookie) = self.page_csrf(request.cookie.as_deref());
        let sso = authorization.response_mode == LOGIN_TOKEN_MODE;
        let body = self.consent_page(&ConsentPage {
            kind: if sso { "sso" } else { "client" },
            action: "consent",
            client: &client,
            user_id: &user_id,
            device_id: &authorization.device_id,
            session: &request.session,
            csrf: &csrf,
        })?;
        Ok(show_consent_page::Response::Ok {
            body,
            set_cookie,
            content_security_policy: consent_csp(&authorization.redirect_uri),
        })
    }

    async fn submit_consent(
        &self,
        _ctx: Context<()>,
        request: submit_consent::Request,
    ) -> Result<submit_consent::Response, MatrixError> {
        let b = &request.body;
        if !csrf_matches(request.cookie.as_deref(), CSRF_COOKIE, &b.csrf) {
            let page = self.oauth_page_error(
                "This form did not come from this server's consent page. Go back to your app and sign in again.",
            )?;
            return Ok(submit_consent::Response::Forbidden(page));
        }
        let (authorization, _) = match self.pending(&b.session).await? {
            Ok(found) => found,
            Err(page) => return Ok(submit_consent::Response::BadRequest(page)),
        };
        let Some(user_id) = self.browser_user(request.cookie.as_deref()).await? else {
            return Ok(submit_consent::Response::SeeOther {
                location: Self::login_location(&b.session),
            });
        };
        if authorization.response_mode == LOGIN_TOKEN_MODE {
            return self
                .answer_sso(&b.session, &b.action, &authorization, &user_id)
                .await;
        }
        let mode =
            ResponseMode::parse(Some(&authorization.response_mode)).unwrap_or(ResponseMode::Query);
        let issuer = self.issuer();
        let mut params: Vec<(&str, &str)> = Vec::new();
        let code = crypto::new_token("oac");
        match b.action.as_str() {
            "allow" => {
                let granted = self
                    .store
                    .grant_authorization(&b.session, &user_id, &code, now_ms() + CODE_LIFETIME_MS)
                    .await
                    .map_err(internal)?;
                if !granted {
                    let page =
                        self.oauth_page_error("This sign-in request was already answered.")?;
                    return Ok(submit_consent::Response::BadRequest(page));
                }
                tracing::info!(
                    user_id,
                    client_id = authorization.client_id,
                    "authorised a client"
                );
                params.push(("code", &code));
            }
            _ => {
                self.store
                    .drop_authorization(&b.session)
                    .await
                    .map_err(internal)?;
                params.push(("error", "access_denied"));
                params.push(("error_description", "The user denied the request"));
            }
        }
        if let Some(state) = authorization.state.as_deref() {
            params.push(("state", state));
        }
        params.push(("iss", &issuer));
        Ok(submit_consent::Response::SeeOther {
            location: callback_url(&authorization.redirect_uri, mode, &params),
        })
    }
}
