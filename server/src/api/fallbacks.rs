//! The spec's fallback pages, for clients that cannot do a step themselves.
//!
//! The interactive-auth fallback ("Fallback"): a page a client opens when it
//! cannot do a stage itself. It asks for what the stage needs,
//! runs the stage in the client's session when its form is posted (CSRF
//! double submit, `303` back to the page), and once the stage is completed
//! loads the script that tells the client (`window.onAuthDone()` or
//! `postMessage("authDone")`). Stages: `m.login.password` (for a session of a
//! signed-in user), `m.login.registration_token`, `m.login.dummy`, and
//! `m.login.email.identity` (the page asks for the address and mails it a
//! link that leads back to the page; once it is confirmed, the page's button
//! completes the stage — the session then proves the address as the
//! client's own validation would).
//!
//! The login fallback ("Login Fallback"): a page that logs in and hands the
//! response to `window.matrixLogin.onLogin`.

use matrix_api::client_server::auth_fallback::{
    show_auth_fallback, submit_auth_fallback, AuthFallbackApi,
};
use matrix_api::client_server::login_fallback::{show_login_fallback, LoginFallbackApi};
use matrix_api::client_server::password_management::change_password;
use matrix_api::client_server::registration::register;
use matrix_api::runtime::{Context, Html, MatrixError};
use matrix_api::types::AuthData;
use serde_json::Value;

use super::pages::csrf_matches;
use crate::service::{internal, Server};
use crate::store::UiaSession;
use crate::uia::{DUMMY, EMAIL, PASSWORD, REGISTRATION_TOKEN};
use crate::validation::{Purpose, BASE};

/// The cookie the page sets and its form must echo.
const CSRF_COOKIE: &str = "auth_fallback_csrf";

/// The page's path for a stage (relative to the client API's base).
fn page_path(stage: &str) -> String {
    format!("/_matrix/client/v3/auth/{stage}/fallback/web")
}

impl Server {
    fn fallback_error(&self, message: &str) -> Result<Html, MatrixError> {
        self.page(
            "pages/auth_fallback.html",
            minijinja::context! {
                error => message,
                server_name => self.config.server_name,
                static_url => format!("{BASE}/static"),
            },
        )
    }
}

/// The stages with a fallback page here.
const FALLBACK_STAGES: [&str; 4] = [PASSWORD, REGISTRATION_TOKEN, DUMMY, EMAIL];

impl Server {
    /// Whether the address the email stage's page mailed (the session's
    /// validation session) is confirmed.
    async fn mailed_address_validated(&self, session: &UiaSession) -> Result<bool, MatrixError> {
        let Some(sid) = &session.threepid_sid else {
            return Ok(false);
        };
        let proved = self
            .store
            .validated_threepid_by_sid(sid)
            .await
            .map_err(internal)?;
        Ok(proved.is_some())
    }

    /// The email stage's form: with an address, mail it a link back to the
    /// page (for what the session's request is: a registration or a password
    /// reset); without one, complete the stage once that address is validated.
    async fn submit_email_fallback(
        &self,
        session: &mut UiaSession,
        b: &submit_auth_fallback::RequestBody,
        back: String,
    ) -> Result<submit_auth_fallback::Response, MatrixError> {
        let bad = |s: &Server, message: &str| {
            s.fallback_error(message)
                .map(submit_auth_fallback::Response::BadRequest)
        };
        if let Some(email) = &b.email {
            let purpose = if session.endpoint.ends_with(register::METADATA.path) {
                Purpose::Register
            } else if session.endpoint.ends_with(change_password::METADATA.path) {
                Purpose::PasswordReset
            } else {
                return bad(
                    self,
                    "This step has no web page for this request; go back to your app.",
                );
            };
            let next_link = format!("{}{back}", self.public_base());
            let sid = match self
                .request_email_for_page(purpose, email, &next_link)
                .await
            {
                Ok(sid) => sid,
                Err(e) if e.status == http::StatusCode::TOO_MANY_REQUESTS => return Err(e),
                Err(e) => return bad(self, &e.error),
            };
            session.threepid_sid = Some(sid);
            self.store
                .update_uia_session(session)
                .await
                .map_err(internal)?;
            return Ok(submit_auth_fallback::Response::SeeOther { location: back });
        }
        if !self.mailed_address_validated(session).await? {
            return bad(
                self,
                "The address is not confirmed yet: follow the link in the message first.",
            );
        }
        self.complete_stage(session, EMAIL).await?;
        Ok(submit_auth_fallback::Response::SeeOther { location: back })
    }
}

impl AuthFallbackApi for Server {
    async fn show_auth_fallback(
        &self,
        _ctx: Context<()>,
        request: show_auth_fallback::Request,
    ) -> Result<show_auth_fallback::Response, MatrixError> {
        let stage = request.auth_type.as_str();
        if !FALLBACK_STAGES.contains(&stage) {
            let page =
                self.fallback_error("This step has no web page here; go back to your app.")?;
            return Ok(show_auth_fallback::Response::BadRequest(page));
        }
        let session = self
            .store
            .uia_session(&request.session)
            .await
            .map_err(internal)?;
        let Some(session) = session else {
            let page = self.fallback_error("This sign-in has expired; start again in your app.")?;
            return Ok(show_auth_fallback::Response::BadRequest(page));
        };
        let done = session.completed.iter().any(|c| c == stage);
        // The email stage: ask for the address, wait for its link, continue.
        let mailed = stage == EMAIL && session.threepid_sid.is_some();
        let validated = mailed && self.mailed_address_validated(&session).await?;
        let (csrf, set_cookie) = self.csrf_cookie(CSRF_COOKIE, "/_matrix/client/v3/auth");
        let page = self.page(
            "pages/auth_fallback.html",
            minijinja::context! {
                stage,
                done,
                needs_password => stage == PASSWORD,
                needs_token => stage == REGISTRATION_TOKEN,
                needs_email => stage == EMAIL && !mailed,
                email_sent => stage == EMAIL && mailed && !validated,
                email_validated => stage == EMAIL && validated,
                user_id => session.user_id,
                session => request.session,
                csrf,
                action => page_path(stage),
                server_name => self.config.server_name,
                static_url => format!("{BASE}/static"),
            },
        )?;
        let set_cookie = (!done).then_some(set_cookie);
        Ok(show_auth_fallback::Response::Ok {
            body: page,
            set_cookie,
        })
    }

    async fn submit_auth_fallback(
        &self,
        ctx: Context<()>,
        request: submit_auth_fallback::Request,
    ) -> Result<submit_auth_fallback::Response, MatrixError> {
        let b = &request.body;
        if !csrf_matches(request.cookie.as_deref(), CSRF_COOKIE, &b.csrf) {
            let page = self.fallback_error(
                "This form did not come from the sign-in page. Open it again from your app.",
            )?;
            return Ok(submit_auth_fallback::Response::Forbidden(page));
        }
        let stage = request.auth_type.as_str();
        let session = self.store.uia_session(&b.session).await.map_err(internal)?;
        let (Some(mut session), true) = (session, FALLBACK_STAGES.contains(&stage)) else {
            let page = self.fallback_error("This sign-in has expired; start again in your app.")?;
            return Ok(submit_auth_fallback::Response::BadRequest(page));
        };
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("session", &b.session)
            .finish();
        let back = format!("{}?{query}", page_path(stage));
        if stage == EMAIL {
            return self.submit_email_fallback(&mut session, b, back).await;
        }
        let mut auth = AuthData::new();
        auth.type_ = Some(stage.to_string());
        if let Some(p) = &b.password {
            auth.extra
                .insert("password".into(), Value::String(p.clone()));
        }
        if let Some(t) = &b.token {
            auth.extra.insert("token".into(), Value::String(t.clone()));
        }
        let outcome = self
            .fallback_stage(
                &mut session,
                stage,
                &auth,
                &ctx.request,
                &submit_auth_fallback::METADATA,
            )
            .await;
        match outcome {
            Ok(Ok(())) => Ok(submit_auth_fallback::Response::SeeOther { location: back }),
            Ok(Err(message)) => Ok(submit_auth_fallback::Response::BadRequest(
                self.fallback_error(&message)?,
            )),
            // A missing field is the form's fault: say so on the page.
            Err(e) if e.status == http::StatusCode::BAD_REQUEST => Ok(
                submit_auth_fallback::Response::BadRequest(self.fallback_error(&e.error)?),
            ),
            Err(e) => Err(e),
        }
    }
}

/// The login fallback (the spec's "Login Fallback"): a page whose script
/// (`login.js`) logs in through `POST /login` and hands the response to
/// `window.matrixLogin.onLogin`.
impl LoginFallbackApi for Server {
    async fn show_login_fallback(
        &self,
        _ctx: Context<()>,
        _request: show_login_fallback::Request,
    ) -> Result<show_login_fallback::Response, MatrixError> {
        let page = self.page(
            "pages/login.html",
            minijinja::context! {
                server_name => self.config.server_name,
                static_url => format!("{BASE}/static"),
            },
        )?;
        Ok(page.into())
    }
}
