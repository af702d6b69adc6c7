//! The spec's fallback pages, for clients that cannot do a step themselves.
//!
//! The interactive-auth fallback ("Fallback"): a page a client opens when it
//! cannot do a stage itself. It asks for what the stage needs,
//! runs the stage in the client's session when its form is posted (CSRF
//! double submit, `303` back to the page), and once the stage is completed
//! loads the script that tells the client (`window.onAuthDone()` or
//! `postMessage("authDone")`). Stages: `m.login.password` (for a session of a
//! signed-in user), `m.login.registration_token`, `m.login.dummy`.
//!
//! The login fallback ("Login Fallback"): a page that logs in and hands the
//! response to `window.matrixLogin.onLogin`.

use matrix_api::client_server::auth_fallback::{
    show_auth_fallback, submit_auth_fallback, AuthFallbackApi,
};
use matrix_api::client_server::login_fallback::{show_login_fallback, LoginFallbackApi};
use matrix_api::runtime::{Context, Html, MatrixError};
use matrix_api::types::AuthData;
use serde_json::Value;

use crate::crypto;
use crate::service::{internal, Server};
use crate::uia::{DUMMY, PASSWORD, REGISTRATION_TOKEN};
use crate::validation::BASE;

/// The cookie the page sets and its form must echo.
const CSRF_COOKIE: &str = "auth_fallback_csrf";

/// The page's path for a stage (relative to the client API's base).
fn page_path(stage: &str) -> String {
    format!("/_matrix/client/v3/auth/{stage}/fallback/web")
}

impl Server {
    fn fallback_page(&self, context: minijinja::Value) -> Result<Html, MatrixError> {
        self.templates
            .render("pages/auth_fallback.html", context)
            .map(Html)
            .map_err(|e| {
                tracing::error!(error = e, "template failed");
                MatrixError::unknown("Internal server error")
            })
    }

    fn fallback_error(&self, message: &str) -> Result<Html, MatrixError> {
        self.fallback_page(minijinja::context! {
            error => message,
            server_name => self.config.server_name,
            static_url => format!("{BASE}/static"),
        })
    }
}

/// The value of one cookie in a `Cookie` header.
fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl AuthFallbackApi for Server {
    async fn show_auth_fallback(
        &self,
        _ctx: Context<()>,
        request: show_auth_fallback::Request,
    ) -> Result<show_auth_fallback::Response, MatrixError> {
        let stage = request.auth_type.as_str();
        if ![PASSWORD, REGISTRATION_TOKEN, DUMMY].contains(&stage) {
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
        let csrf = crypto::new_token("csrf");
        let page = self.fallback_page(minijinja::context! {
            stage,
            done,
            needs_password => stage == PASSWORD,
            needs_token => stage == REGISTRATION_TOKEN,
            user_id => session.user_id,
            session => request.session,
            csrf,
            action => page_path(stage),
            server_name => self.config.server_name,
            static_url => format!("{BASE}/static"),
        })?;
        let set_cookie =
            (!done).then(|| {
                format!(
                "{CSRF_COOKIE}={csrf}; Path=/_matrix/client/v3/auth; HttpOnly; SameSite=Strict{}",
                if self.public_base().starts_with("https://") { "; Secure" } else { "" }
            )
            });
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
        let expected = cookie(request.cookie.as_deref(), CSRF_COOKIE);
        if !expected.is_some_and(|c| crypto::secrets_equal(c, &b.csrf)) {
            let page = self.fallback_error(
                "This form did not come from the sign-in page. Open it again from your app.",
            )?;
            return Ok(submit_auth_fallback::Response::Forbidden(page));
        }
        let stage = request.auth_type.as_str();
        let session = self.store.uia_session(&b.session).await.map_err(internal)?;
        let (Some(mut session), true) = (
            session,
            [PASSWORD, REGISTRATION_TOKEN, DUMMY].contains(&stage),
        ) else {
            let page = self.fallback_error("This sign-in has expired; start again in your app.")?;
            return Ok(submit_auth_fallback::Response::BadRequest(page));
        };
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
            Ok(Ok(())) => {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("session", &b.session)
                    .finish();
                Ok(submit_auth_fallback::Response::SeeOther {
                    location: format!("{}?{query}", page_path(stage)),
                })
            }
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
        let page = self
            .templates
            .render(
                "pages/login.html",
                minijinja::context! {
                    server_name => self.config.server_name,
                    static_url => format!("{BASE}/static"),
                },
            )
            .map_err(|e| {
                tracing::error!(error = e, "template failed");
                MatrixError::unknown("Internal server error")
            })?;
        Ok(Html(page).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_cookie_is_found_among_others() {
        assert_eq!(
            cookie(Some("a=1; auth_fallback_csrf=x"), CSRF_COOKIE),
            Some("x")
        );
        assert_eq!(cookie(Some("auth_fallback_csrfx=1"), CSRF_COOKIE), None);
    }
}
