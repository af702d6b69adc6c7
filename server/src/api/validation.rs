//! This server's own validation endpoints (api/account/validation.yaml): the
//! `submit_url` clients post tokens to, the pages the emailed link opens, and
//! the files the pages load.
//! The page only shows what is being confirmed; the button posts a form, so a
//! link-preview bot that fetches the link validates nothing. The form carries
//! a CSRF value that must match the cookie the page set (double submit).

use bytes::Bytes;
use matrix_api::account::validation::{
    confirm_validation, get_static_file, show_validated_page, show_validation_page,
    submit_validation_token, ValidationApi,
};
use matrix_api::runtime::{Binary, Context, Html, MatrixError};

use super::pages::csrf_matches;
use crate::crypto;
use crate::service::{internal, Server};
use crate::templates::static_file;
use crate::validation::{check_secret_grammar, BASE};

/// The cookie the validation page sets and its form must echo.
const CSRF_COOKIE: &str = "validation_csrf";

impl Server {
    fn error_page(&self, message: &str) -> Result<Html, MatrixError> {
        self.page(
            "pages/validation_error.html",
            minijinja::context! {
                message,
                server_name => self.config.server_name,
                static_url => format!("{BASE}/static"),
            },
        )
    }
}

impl ValidationApi for Server {
    async fn submit_validation_token(
        &self,
        _ctx: Context<()>,
        request: submit_validation_token::Request,
    ) -> Result<submit_validation_token::Response, MatrixError> {
        let b = &request.body;
        check_secret_grammar("sid", &b.sid)?;
        check_secret_grammar("client_secret", &b.client_secret)?;
        self.submit_token(&b.sid, &b.client_secret, &b.token)
            .await?;
        Ok(submit_validation_token::OkBody::new(true).into())
    }

    async fn show_validation_page(
        &self,
        _ctx: Context<()>,
        request: show_validation_page::Request,
    ) -> Result<show_validation_page::Response, MatrixError> {
        let grammar = check_secret_grammar("sid", &request.sid)
            .and_then(|()| check_secret_grammar("client_secret", &request.client_secret));
        let session = match grammar {
            Ok(()) => self
                .store
                .validation_session(
                    &request.sid,
                    &crypto::token_hash(&request.client_secret),
                    self.config.email.max_token_failures,
                )
                .await
                .map_err(internal)?,
            Err(_) => None,
        };
        let Some(session) = session else {
            let page = self.error_page("This link is not valid, has expired, or was used too many times with a wrong code.")?;
            return Ok(show_validation_page::Response::BadRequest(page));
        };
        let (csrf, set_cookie) = self.csrf_cookie(CSRF_COOKIE, &format!("{BASE}/3pid"));
        let page = self.page(
            "pages/validate.html",
            minijinja::context! {
                server_name => self.config.server_name,
                static_url => format!("{BASE}/static"),
                action => format!("{BASE}/3pid/validate"),
                purpose => session.purpose,
                medium_name => if session.medium == "email" { "email address" } else { "phone number" },
                address => session.address,
                sid => request.sid,
                client_secret => request.client_secret,
                token => request.token,
                csrf,
            },
        )?;
        Ok(show_validation_page::Response::Ok {
            body: page,
            set_cookie,
        })
    }

    async fn confirm_validation(
        &self,
        _ctx: Context<()>,
        request: confirm_validation::Request,
    ) -> Result<confirm_validation::Response, MatrixError> {
        let b = &request.body;
        if !csrf_matches(request.cookie.as_deref(), CSRF_COOKIE, &b.csrf) {
            let page = self.error_page(
                "This form did not come from the confirmation page. Open the link from the message again.",
            )?;
            return Ok(confirm_validation::Response::Forbidden(page));
        }
        let grammar = check_secret_grammar("sid", &b.sid)
            .and_then(|()| check_secret_grammar("client_secret", &b.client_secret));
        let outcome = match grammar {
            Ok(()) => self.submit_token(&b.sid, &b.client_secret, &b.token).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(next_link) => Ok(confirm_validation::Response::SeeOther {
                location: next_link.unwrap_or_else(|| format!("{BASE}/3pid/validated")),
            }),
            Err(e) if e.status == http::StatusCode::BAD_REQUEST => {
                let message = match e.errcode.as_str() {
                    "M_TOKEN_INCORRECT" => "The code in this link is wrong.",
                    "M_SESSION_EXPIRED" => {
                        "This link has expired or was used too many times with a wrong code."
                    }
                    _ => "This link is not valid.",
                };
                Ok(confirm_validation::Response::BadRequest(
                    self.error_page(message)?,
                ))
            }
            Err(e) => Err(e),
        }
    }

    async fn show_validated_page(
        &self,
        _ctx: Context<()>,
        _request: show_validated_page::Request,
    ) -> Result<show_validated_page::Response, MatrixError> {
        let page = self.page(
            "pages/validated.html",
            minijinja::context! {
                server_name => self.config.server_name,
                static_url => format!("{BASE}/static"),
            },
        )?;
        Ok(page.into())
    }

    async fn get_static_file(
        &self,
        _ctx: Context<()>,
        request: get_static_file::Request,
    ) -> Result<get_static_file::Response, MatrixError> {
        let Some((content_type, text)) = static_file(&request.file) else {
            return Err(MatrixError::not_found("No such file"));
        };
        let file = Binary {
            content_type: Some(content_type.into()),
            bytes: Bytes::from_static(text.as_bytes()),
        };
        Ok(file.into())
    }
}
