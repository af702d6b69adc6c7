//! The registration page of the OAuth 2.0 pages (`prompt=create`, and the
//! device grant's "create an account"), and its email stage.
//!
//! Without an email address the form creates the account at once. With one
//! (required when `[email] require_for_registration`), the form's checks run
//! as before (username free, password policy, registration token), then the
//! password is hashed and the registration is kept on the server
//! (`oauth_pending_registrations`, named by a random value in the browser's
//! `account_registration` cookie), and the address is sent the usual
//! validation link ([`Server::request_email_for_page`], the 3PID machinery
//! the fallback pages use). The link's page (`/3pid/validate`) confirms the
//! address and leads back to the waiting page (`/register/email`), whose
//! button creates the account — the username and token checked again, the
//! address still free — binds the address ([`Server::bind_validated`]) and
//! goes on to consent. The password is never stored but as its hash.

use matrix_api::account::oauth_pages::{
    show_registration_email_page, submit_registration, submit_registration_email,
};
use matrix_api::runtime::{Html, MatrixError};

use super::oauth::ACCOUNT_BASE;
use super::oauth_pages::{session_page, ClientView};
use super::pages::{cookie, retry_after_secs};
use crate::config::RegistrationMode;
use crate::crypto;
use crate::service::{internal, Server};
use crate::store::{now_ms, PendingRegistration, StoreError};
use crate::validation::{normalise_email, Purpose};

/// The cookie naming the browser's waiting registration.
const REGISTRATION_COOKIE: &str = "account_registration";
/// How long a registration waits for its address (the validation link
/// itself may live longer; the authorisation request usually less).
const PENDING_LIFETIME_SECS: u64 = 60 * 60;

/// What the registration form's fields were, to show them again.
pub(super) struct RegistrationForm<'a> {
    pub(super) username: &'a str,
    pub(super) email: &'a str,
    pub(super) display_name: &'a str,
}

/// A registration form that passed its checks.
struct Checked {
    user_id: String,
    registration_token: Option<String>,
    /// For the delegating homeserver (`None`: its default).
    display_name: Option<String>,
}

/// What a registration form with an email address led to.
pub(super) enum EmailStarted {
    /// The link is sent: on to the waiting page with this `Set-Cookie`.
    Waiting {
        location: String,
        set_cookie: String,
    },
    /// The form again, with this message.
    Refused(String),
    /// Rate limited: the page saying when to try again.
    TooMany(Html),
}

/// What continuing on the waiting page led to.
pub(super) enum EmailFinished {
    /// The account exists, the address is bound: on to consent.
    Registered { user_id: String },
    /// Not yet: the waiting page, saying so.
    NotConfirmed(Html),
    /// The registration cannot be finished: the form again, saying why.
    Refused(Html),
    /// No registration waits in this browser for this request, or it was
    /// finished already.
    Gone(Html),
}

impl Server {
    /// Whether the registration form (and the account page) offers an email
    /// address field: the server sends email.
    pub(super) fn email_offered(&self) -> bool {
        self.mailer.is_some()
    }

    pub(super) fn registration_page(
        &self,
        session: &str,
        client: &ClientView,
        csrf: &str,
        form: &RegistrationForm<'_>,
        error: Option<&str>,
    ) -> Result<Html, MatrixError> {
        self.page(
            "pages/oauth_register.html",
            minijinja::context! {
                server_name => self.config.server_name,
                static_url => format!("{ACCOUNT_BASE}/static"),
                action => format!("{ACCOUNT_BASE}/register"),
                client_name => client.name,
                session,
                csrf,
                username => form.username,
                email => form.email,
                display_name => form.display_name,
                display_name_offered => self.synapse.is_some(),
                error,
                token_required => self.config.registration.mode == RegistrationMode::Token,
                email_offered => self.email_offered(),
                email_required => self.config.email.require_for_registration,
                login_url => Self::login_location(session),
            },
        )
    }

    /// The waiting page of `pending` (`None`: no registration waits in this
    /// browser, which then is told to continue where it started).
    fn registration_email_page(
        &self,
        session: &str,
        client: &ClientView,
        csrf: &str,
        pending: Option<(&PendingRegistration, bool)>,
        error: Option<&str>,
    ) -> Result<Html, MatrixError> {
        self.page(
            "pages/oauth_register_email.html",
            minijinja::context! {
                server_name => self.config.server_name,
                static_url => format!("{ACCOUNT_BASE}/static"),
                action => format!("{ACCOUNT_BASE}/register/email"),
                client_name => client.name,
                session,
                csrf,
                waiting => pending.is_some(),
                user_id => pending.map(|(p, _)| p.user_id.clone()),
                address => pending.map(|(p, _)| p.address.clone()),
                confirmed => pending.is_some_and(|(_, confirmed)| confirmed),
                error,
                register_url => session_page("register", session),
            },
        )
    }

    /// The checks of a registration form, before anything is created or
    /// sent: what passed them, or the message the form shows again.
    async fn check_registration_form(
        &self,
        body: &submit_registration::RequestBody,
    ) -> Result<Result<Checked, String>, MatrixError> {
        let user_id = match self.user_id_for(&body.username.to_lowercase()) {
            Ok(id) => id,
            Err(e) => return Ok(Err(e.error)),
        };
        // Only a delegating homeserver keeps profiles; Synapse's limit.
        let display_name = body
            .display_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty() && self.synapse.is_some());
        if display_name.is_some_and(|n| n.chars().count() > 256) {
            return Ok(Err("A display name has at most 256 characters.".into()));
        }
        if let Err(e) = self.check_password_policy(&body.password) {
            return Ok(Err(e.error));
        }
        let token = match self.config.registration.mode {
            RegistrationMode::Token => {
                let Some(token) = body.registration_token.as_deref().filter(|t| !t.is_empty())
                else {
                    return Ok(Err("This server needs a registration token.".into()));
                };
                let valid = self
                    .store
                    .registration_token(token)
                    .await
                    .map_err(internal)?
                    .is_some_and(|t| t.usable(now_ms()));
                if !valid {
                    return Ok(Err("That registration token is not valid.".into()));
                }
                Some(token.to_string())
            }
            _ => None,
        };
        if self.store.user(&user_id).await.map_err(internal)?.is_some() {
            return Ok(Err("That username is taken.".into()));
        }
        // The homeserver's refusal (a name it has, or reserves) or its absence.
        if let Err(e) = self.check_homeserver_localpart(&user_id).await {
            return Ok(Err(e.error));
        }
        Ok(Ok(Checked {
            user_id,
            registration_token: token,
            display_name: display_name.map(str::to_string),
        }))
    }

    /// Creates an account of the registration page (the username and the
    /// token are checked again by the store): `Ok(())`, or the message.
    async fn create_page_account(
        &self,
        user_id: &str,
        password_hash: &str,
        token: Option<&str>,
    ) -> Result<Result<(), String>, MatrixError> {
        match self
            .store
            .create_user(user_id, Some(password_hash), false, false, token)
            .await
        {
            Ok(true) => {
                tracing::info!(user_id, "registered on the registration page");
                Ok(Ok(()))
            }
            Ok(false) => Ok(Err("That registration token is no longer valid.".into())),
            Err(StoreError::Conflict) => Ok(Err("That username is taken.".into())),
            Err(e) => Err(internal(e)),
        }
    }

    /// Creates the account a registration form without an email address
    /// asks for: `Ok(user_id)`, or the message the form shows again.
    pub(super) async fn register_from_page(
        &self,
        body: &submit_registration::RequestBody,
    ) -> Result<Result<String, String>, MatrixError> {
        let checked = match self.check_registration_form(body).await? {
            Ok(checked) => checked,
            Err(message) => return Ok(Err(message)),
        };
        let (user_id, token) = (checked.user_id, checked.registration_token.as_deref());
        let hash = self.hasher.hash(&body.password).await?;
        if let Err(message) = self.create_page_account(&user_id, &hash, token).await? {
            return Ok(Err(message));
        }
        let display_name = checked.display_name.as_deref();
        if let Err(e) = self.provision_user(&user_id, token, display_name).await {
            return Ok(Err(e.error));
        }
        Ok(Ok(user_id))
    }

    /// A registration form with an email address: the form's checks, then
    /// the password's hash kept with the registration and the link sent.
    pub(super) async fn start_email_registration(
        &self,
        body: &submit_registration::RequestBody,
        email: &str,
        cookie_header: Option<&str>,
    ) -> Result<EmailStarted, MatrixError> {
        if !self.email_offered() {
            return Ok(EmailStarted::Refused(
                "This server does not send email; leave the address empty.".into(),
            ));
        }
        let checked = match self.check_registration_form(body).await? {
            Ok(checked) => checked,
            Err(message) => return Ok(EmailStarted::Refused(message)),
        };
        let address = match normalise_email(email) {
            Ok(address) => address,
            Err(_) => {
                return Ok(EmailStarted::Refused(
                    "That is not an email address.".into(),
                ))
            }
        };
        let password_hash = self.hasher.hash(&body.password).await?;
        let location = session_page("register/email", &body.session);
        let next_link = format!("{}{location}", self.public_base());
        let sid = match self
            .request_email_for_page(Purpose::Register, &address, &next_link)
            .await
        {
            Ok(sid) => sid,
            Err(e) if e.status == http::StatusCode::TOO_MANY_REQUESTS => {
                let seconds = retry_after_secs(&e);
                let message =
                    format!("Too many emails to this address. Try again in {seconds} seconds.");
                return Ok(EmailStarted::TooMany(self.oauth_page_error(&message)?));
            }
            Err(e) => return Ok(EmailStarted::Refused(address_refusal(&e))),
        };
        // One waiting registration per browser: a new form replaces the last.
        if let Some(earlier) = cookie(cookie_header, REGISTRATION_COOKIE) {
            self.store
                .drop_pending_registration(earlier)
                .await
                .map_err(internal)?;
        }
        let id = crypto::new_token("opr");
        let pending = PendingRegistration {
            user_id: checked.user_id,
            password_hash,
            registration_token: checked.registration_token,
            address,
            threepid_sid: sid,
            display_name: checked.display_name,
        };
        let expires_ms = now_ms() + (PENDING_LIFETIME_SECS * 1000) as i64;
        self.store
            .create_pending_registration(&id, &body.session, &pending, expires_ms)
            .await
            .map_err(internal)?;
        tracing::info!(
            user_id = pending.user_id,
            "registration waits for its email address"
        );
        let set_cookie = self.cookie_header(
            REGISTRATION_COOKIE,
            &id,
            "Strict",
            Some(PENDING_LIFETIME_SECS),
        );
        Ok(EmailStarted::Waiting {
            location,
            set_cookie,
        })
    }

    /// The registration this browser's cookie names for `session`, if it
    /// waits; with the cookie's value.
    async fn waiting_registration(
        &self,
        session: &str,
        cookie_header: Option<&str>,
    ) -> Result<Option<(String, PendingRegistration)>, MatrixError> {
        let Some(id) = cookie(cookie_header, REGISTRATION_COOKIE) else {
            return Ok(None);
        };
        let pending = self
            .store
            .pending_registration(id, session)
            .await
            .map_err(internal)?;
        Ok(pending.map(|p| (id.to_string(), p)))
    }

    /// Whether the validation session `sid` of an address waiting on a page
    /// (a registration's, or one the account page adds) is confirmed.
    pub(super) async fn address_confirmed(&self, sid: &str) -> Result<bool, MatrixError> {
        let validated = self
            .store
            .validated_threepid_by_sid(sid)
            .await
            .map_err(internal)?;
        Ok(validated.is_some())
    }

    /// The waiting page for `session` in the browser of `cookie_header`.
    pub(super) async fn show_waiting_registration(
        &self,
        session: &str,
        client: &ClientView,
        cookie_header: Option<&str>,
    ) -> Result<show_registration_email_page::Response, MatrixError> {
        let (csrf, set_cookie) = self.page_csrf(cookie_header);
        let body = match self.waiting_registration(session, cookie_header).await? {
            Some((_, pending)) => {
                let confirmed = self.address_confirmed(&pending.threepid_sid).await?;
                self.registration_email_page(
                    session,
                    client,
                    &csrf,
                    Some((&pending, confirmed)),
                    None,
                )?
            }
            None => self.registration_email_page(session, client, &csrf, None, None)?,
        };
        Ok(show_registration_email_page::Response::Ok { body, set_cookie })
    }

    /// The waiting page's button: once the address is confirmed, the account
    /// (with the kept password hash; the username, the token and the address
    /// checked again) and the address bound to it.
    pub(super) async fn finish_email_registration(
        &self,
        body: &submit_registration_email::RequestBody,
        client: &ClientView,
        cookie_header: Option<&str>,
    ) -> Result<EmailFinished, MatrixError> {
        let session = body.session.as_str();
        let Some((id, pending)) = self.waiting_registration(session, cookie_header).await? else {
            return Ok(EmailFinished::Gone(self.oauth_page_error(
                "No registration is waiting in this browser. If you confirmed your address elsewhere, continue where you started.",
            )?));
        };
        if !self.address_confirmed(&pending.threepid_sid).await? {
            let message = format!(
                "{} is not confirmed yet: follow the link in the message we sent first.",
                pending.address
            );
            let page = self.registration_email_page(
                session,
                client,
                &body.csrf,
                Some((&pending, false)),
                Some(&message),
            )?;
            return Ok(EmailFinished::NotConfirmed(page));
        }
        // Taken once: of two racing posts, one finishes the registration.
        if !self
            .store
            .drop_pending_registration(&id)
            .await
            .map_err(internal)?
        {
            return Ok(EmailFinished::Gone(
                self.oauth_page_error("This registration was already finished.")?,
            ));
        }
        let refused = |message: &str| -> Result<EmailFinished, MatrixError> {
            let localpart = pending
                .user_id
                .trim_start_matches('@')
                .split(':')
                .next()
                .unwrap_or_default();
            let form = RegistrationForm {
                username: localpart,
                email: &pending.address,
                display_name: pending.display_name.as_deref().unwrap_or_default(),
            };
            let page = self.registration_page(session, client, &body.csrf, &form, Some(message))?;
            Ok(EmailFinished::Refused(page))
        };
        if let Err(e) = self.check_validated_free(&pending.threepid_sid).await {
            return match e.errcode.as_str() {
                "M_THREEPID_IN_USE" | "M_SESSION_EXPIRED" => refused(&address_refusal(&e)),
                _ => Err(e),
            };
        }
        let user_id = pending.user_id.as_str();
        let created = self
            .create_page_account(
                user_id,
                &pending.password_hash,
                pending.registration_token.as_deref(),
            )
            .await?;
        if let Err(message) = created {
            return refused(&message);
        }
        if let Err(e) = self.bind_validated(user_id, &pending.threepid_sid).await {
            // Another account took the address between the check and now: the
            // account stays, without it (as for the legacy API's stage).
            tracing::warn!(user_id, errcode = e.errcode, "address not bound");
            if e.status != http::StatusCode::BAD_REQUEST {
                return Err(e);
            }
            return Ok(EmailFinished::Gone(self.oauth_page_error(&format!(
                "Your account {user_id} was created, but {} was taken by another account meanwhile. Sign in to continue.",
                pending.address
            ))?));
        }
        // With the address bound, so that the homeserver gets it too.
        let token = pending.registration_token.as_deref();
        if let Err(e) = self
            .provision_user(user_id, token, pending.display_name.as_deref())
            .await
        {
            return refused(&e.error);
        }
        Ok(EmailFinished::Registered {
            user_id: pending.user_id.clone(),
        })
    }
}

/// What the registration form (and the account page) says of an address the
/// validation machinery refused (its Matrix error).
pub(super) fn address_refusal(e: &MatrixError) -> String {
    match e.errcode.as_str() {
        "M_THREEPID_IN_USE" => "That email address is already in use by another account.".into(),
        "M_THREEPID_DENIED" => "This server does not accept that email address.".into(),
        "M_THREEPID_MEDIUM_NOT_SUPPORTED" => {
            "This server does not send email; leave the address empty.".into()
        }
        "M_SESSION_EXPIRED" => {
            "The confirmation of your email address expired; start again.".into()
        }
        _ => e.error.clone(),
    }
}
