//! `GET /login/sso/redirect` (api/client-server/sso_login_redirect.yaml): the
//! spec's support for OAuth 2.0 aware legacy clients. This server has no
//! identity provider; its single sign-on is its own pages. The redirect starts
//! an authorisation request of its own kind — no registered client, the
//! client's `redirectUrl` as the redirect URI, answered with a login token
//! (response mode `login_token`) — so the login, registration and consent
//! pages of the OAuth 2.0 API serve it unchanged: the consent page asks the
//! person to confirm that they continue to `redirectUrl` (a link that sends
//! a login token elsewhere must not work without them seeing where), and its
//! form sends the browser there with `loginToken`, which the client exchanges
//! with `POST /login` (`m.login.token`).

use matrix_api::client_server::sso_login_redirect::{redirect_to_sso, SsoLoginRedirectApi};
use matrix_api::runtime::{Context, MatrixError};

use super::oauth_pages::session_page;
use crate::crypto;
use crate::service::{internal, Server};
use crate::store::{now_ms, Authorization};

/// The response mode of a single sign-on request: the answer is a login token
/// in the redirect URL's query.
pub(super) const LOGIN_TOKEN_MODE: &str = "login_token";
/// How long the person has to sign in.
const SSO_REQUEST_LIFETIME_MS: i64 = 30 * 60 * 1000;

impl SsoLoginRedirectApi for Server {
    async fn redirect_to_sso(
        &self,
        _ctx: Context<()>,
        request: redirect_to_sso::Request,
    ) -> Result<redirect_to_sso::Response, MatrixError> {
        // An absolute URL: a web client's page or an app's own scheme, never
        // one a browser would run or read locally.
        let target = url::Url::parse(&request.redirect_url).ok().filter(|u| {
            u.fragment().is_none()
                && !matches!(
                    u.scheme(),
                    "javascript" | "data" | "vbscript" | "file" | "blob"
                )
        });
        let Some(target) = target else {
            return Err(MatrixError::invalid_param(
                "redirectUrl must be an absolute URL without a fragment",
            ));
        };
        let register = request.action.as_ref().map(|a| a.as_str()) == Some("register");
        let register = register && self.page_registration_open();
        let id = crypto::new_token("oar");
        let sso = Authorization {
            client_id: String::new(),
            redirect_uri: target.to_string(),
            scope: String::new(),
            device_id: String::new(),
            state: None,
            response_mode: LOGIN_TOKEN_MODE.into(),
            code_challenge: String::new(),
            prompt: register.then(|| "create".to_string()),
            user_id: None,
            expires_ms: now_ms() + SSO_REQUEST_LIFETIME_MS,
        };
        self.store
            .create_authorization(&id, &sso)
            .await
            .map_err(internal)?;
        let page = if register { "register" } else { "consent" };
        Ok(redirect_to_sso::Response::Found {
            location: Some(session_page(page, &id)),
        })
    }
}
