//! The pages of the OAuth 2.0 device authorisation grant
//! (api/account/oauth_device.yaml, RFC 8628 §3.3): the verification page
//! where a person types the code their device shows, the consent page that
//! allows or denies the device's client, and the page that sends them back to
//! the device, which learns the answer by polling the token endpoint
//! (`oauth.rs`). Nothing here redirects off this server.
//!
//! A user code is short, so it is only ever looked up by a rate-limited form
//! post; a code found there gives the device authorisation a random ID (prefix
//! `ods_`) that the following pages carry as `session`, like the code grant's
//! authorisation requests (`oar_`). The login and registration pages of
//! `oauth_pages.rs` take either kind of ID and continue to the matching
//! consent page; the prefix tells them apart. The browser session and the
//! CSRF double submit are those of `oauth_pages.rs`.

use matrix_api::account::oauth_device::{
    show_device_code_page, show_device_consent_page, show_device_done_page, submit_device_code,
    submit_device_consent, OAuthDeviceApi,
};
use matrix_api::runtime::{Context, Html, MatrixError};

use super::oauth::ACCOUNT_BASE;
use super::oauth_pages::{session_page, ClientView, ConsentPage, CSRF_COOKIE};
use super::pages::{csrf_matches, retry_after_secs};
use crate::crypto;
use crate::oauth::user_code;
use crate::ratelimit::Action;
use crate::service::{internal, Server};
use crate::store::DeviceGrant;

/// The prefix of the IDs the pages carry for a device authorisation.
const SESSION_PREFIX: &str = "ods";

/// Whether a page's `session` names a device authorisation (rather than an
/// authorisation request of the code grant).
pub(super) fn is_device_session(session: &str) -> bool {
    session
        .strip_prefix(SESSION_PREFIX)
        .is_some_and(|rest| rest.starts_with('_'))
}

/// The longest text the code form shows again: a user code is nine
/// characters; whatever else was typed is cut rather than echoed at length.
const MAX_ECHO: usize = 32;

impl Server {
    /// The pending device authorisation `session` and its client, or the page
    /// saying it is gone.
    pub(super) async fn pending_device(
        &self,
        session: &str,
    ) -> Result<Result<(DeviceGrant, ClientView), Html>, MatrixError> {
        let grant = self
            .store
            .pending_device_grant(session)
            .await
            .map_err(internal)?;
        let client = match &grant {
            Some(g) => self.client_view(&g.client_id).await?,
            None => None,
        };
        match (grant, client) {
            (Some(g), Some(view)) => Ok(Ok((g, view))),
            _ => Ok(Err(self.request_gone_page()?)),
        }
    }

    fn device_code_page(
        &self,
        csrf: &str,
        code: &str,
        error: Option<&str>,
    ) -> Result<Html, MatrixError> {
        let code: String = code.chars().take(MAX_ECHO).collect();
        self.page(
            "pages/oauth_device.html",
            minijinja::context! {
                server_name => self.config.server_name,
                static_url => format!("{ACCOUNT_BASE}/static"),
                action => format!("{ACCOUNT_BASE}/device"),
                csrf,
                code,
                error,
            },
        )
    }
}

impl OAuthDeviceApi for Server {
    async fn show_device_code_page(
        &self,
        _ctx: Context<()>,
        request: show_device_code_page::Request,
    ) -> Result<show_device_code_page::Response, MatrixError> {
        let (csrf, set_cookie) = self.page_csrf(request.cookie.as_deref());
        // Filled in as sent (the link of `verification_uri_complete`); it is
        // only looked up when the person posts the form.
        let code = request.code.as_deref().unwrap_or_default();
        let code =
            user_code::normalize(code).map_or_else(|| code.to_string(), |c| user_code::display(&c));
        let body = self.device_code_page(&csrf, &code, None)?;
        Ok(show_device_code_page::Response::Ok { body, set_cookie })
    }

    async fn submit_device_code(
        &self,
        ctx: Context<()>,
        request: submit_device_code::Request,
    ) -> Result<submit_device_code::Response, MatrixError> {
        let b = &request.body;
        if !csrf_matches(request.cookie.as_deref(), CSRF_COOKIE, &b.csrf) {
            let page = self.oauth_page_error(
                "This form did not come from this server's device sign-in page. Open it again and type the code your device shows.",
            )?;
            return Ok(submit_device_code::Response::Forbidden(page));
        }
        // Every entry takes from the address's bucket; a code that is found
        // gives it back, so only wrong codes count.
        let keys = self.address_keys(&ctx.request);
        if let Err(e) = self.limiter.check(Action::DeviceCodeEntry, &keys) {
            let seconds = retry_after_secs(&e);
            let message = format!("Too many wrong codes. Try again in {seconds} seconds.");
            let page = self.device_code_page(&b.csrf, &b.user_code, Some(&message))?;
            return Ok(submit_device_code::Response::TooManyRequests(page));
        }
        if let Some(code) = user_code::normalize(&b.user_code) {
            let session = crypto::new_token(SESSION_PREFIX);
            if self
                .store
                .enter_user_code(&code, &session)
                .await
                .map_err(internal)?
            {
                self.limiter.refund(Action::DeviceCodeEntry, &keys);
                return Ok(submit_device_code::Response::SeeOther {
                    location: session_page("device/consent", &session),
                });
            }
        }
        let page = self.device_code_page(
            &b.csrf,
            &b.user_code,
            Some("That code is not known, has expired or was already used. Check the code your device shows."),
        )?;
        Ok(submit_device_code::Response::BadRequest(page))
    }

    async fn show_device_consent_page(
        &self,
        _ctx: Context<()>,
        request: show_device_consent_page::Request,
    ) -> Result<show_device_consent_page::Response, MatrixError> {
        let (grant, client) = match self.pending_device(&request.session).await? {
            Ok(found) => found,
            Err(page) => return Ok(show_device_consent_page::Response::BadRequest(page)),
        };
        let Some(user_id) = self.browser_user(request.cookie.as_deref()).await? else {
            return Ok(show_device_consent_page::Response::SeeOther {
                location: Self::login_location(&request.session),
            });
        };
        let (csrf, set_cookie) = self.page_csrf(request.cookie.as_deref());
        let body = self.consent_page(&ConsentPage {
            kind: "device",
            action: "device/consent",
            client: &client,
            user_id: &user_id,
            device_id: &grant.device_id,
            session: &request.session,
            csrf: &csrf,
        })?;
        Ok(show_device_consent_page::Response::Ok { body, set_cookie })
    }

    async fn submit_device_consent(
        &self,
        _ctx: Context<()>,
        request: submit_device_consent::Request,
    ) -> Result<submit_device_consent::Response, MatrixError> {
        let b = &request.body;
        if !csrf_matches(request.cookie.as_deref(), CSRF_COOKIE, &b.csrf) {
            let page = self.oauth_page_error(
                "This form did not come from this server's consent page. Open the device sign-in page again.",
            )?;
            return Ok(submit_device_consent::Response::Forbidden(page));
        }
        let (grant, _) = match self.pending_device(&b.session).await? {
            Ok(found) => found,
            Err(page) => return Ok(submit_device_consent::Response::BadRequest(page)),
        };
        let Some(user_id) = self.browser_user(request.cookie.as_deref()).await? else {
            return Ok(submit_device_consent::Response::SeeOther {
                location: Self::login_location(&b.session),
            });
        };
        let allow = b.action == "allow";
        let answered = self
            .store
            .answer_device_grant(&b.session, allow.then_some(user_id.as_str()))
            .await
            .map_err(internal)?;
        if !answered {
            let page = self.oauth_page_error("This sign-in request was already answered.")?;
            return Ok(submit_device_consent::Response::BadRequest(page));
        }
        tracing::info!(
            user_id,
            client_id = grant.client_id,
            device_id = grant.device_id,
            allow,
            "answered a device authorisation"
        );
        let result = if allow { "allowed" } else { "denied" };
        Ok(submit_device_consent::Response::SeeOther {
            location: format!("{ACCOUNT_BASE}/device/done?result={result}"),
        })
    }

    async fn show_device_done_page(
        &self,
        _ctx: Context<()>,
        request: show_device_done_page::Request,
    ) -> Result<show_device_done_page::Response, MatrixError> {
        let result = match request.result.as_deref() {
            Some("allowed") => "allowed",
            Some("denied") => "denied",
            _ => "",
        };
        let body = self.page(
            "pages/oauth_device_done.html",
            minijinja::context! {
                server_name => self.config.server_name,
                static_url => format!("{ACCOUNT_BASE}/static"),
                result,
            },
        )?;
        Ok(show_device_done_page::Response::Ok(body))
    }
}
