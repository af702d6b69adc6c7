//! The generated client against the generated router: for every operation of
//! `api/`, a request the client builds (`ClientRequest::to_http`) reaches the
//! implementation (the scripted `Stub`) as an equal typed `Request`, and the
//! scripted `Response` (or error) comes back equal through `ClientRequest::parse`.
//! Property tests vary the parameters and bodies of representative operations.

use std::fmt::Debug;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use matrix_api::account::{
    account_management, delegation, oauth, oauth_device, oauth_discovery, oauth_pages, validation,
};
use matrix_api::client_server::{
    account_deactivation, admin, administrative_contact, auth_fallback, capabilities, login,
    login_fallback, login_token, logout, oauth_server_metadata, openid, password_management,
    refresh, registration, registration_tokens, sso_login_redirect, versions, wellknown, whoami,
};
use matrix_api::router::Dispatcher;
use matrix_api::runtime::testing::Stub;
use matrix_api::runtime::{
    Authenticator, ClientError, ClientRequest, Credential, Html, MatrixError, OAuthError, Router,
    RouterConfig, UserId,
};
use matrix_api::server_server::openid as federation_openid;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// Tokens are valid when they start with `valid-`.
struct ValidPrefix;

impl Authenticator for ValidPrefix {
    type Identity = String;

    async fn authenticate(&self, credential: Credential<'_>) -> Result<String, MatrixError> {
        match credential.token.strip_prefix("valid-") {
            Some(user) => Ok(user.to_owned()),
            None => Err(MatrixError::unknown_token(false)),
        }
    }
}

struct Harness {
    api: Arc<Stub<ValidPrefix>>,
    router: Router<Dispatcher<Stub<ValidPrefix>>>,
}

fn harness() -> Harness {
    let api = Arc::new(Stub::new(ValidPrefix));
    let router = matrix_api::router(
        api.clone(),
        RouterConfig {
            max_body_bytes: 1 << 20,
            ..RouterConfig::default()
        },
    );
    Harness { api, router }
}

/// A value of `T` from JSON (bodies the tests write as JSON for brevity).
fn de<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

impl Harness {
    /// Sends `request` through the router with `reply` scripted; returns what
    /// the client parsed, after checking the implementation got `request`.
    async fn exchange<R>(
        &self,
        request: &R,
        reply: Result<R::Response, R::Error>,
    ) -> Result<R::Response, ClientError<R::Error>>
    where
        R: ClientRequest + Debug,
        R::Response: Clone + Send + 'static,
        R::Error: Clone + Send + 'static,
    {
        let op = R::metadata();
        self.api.reply(op, reply);
        let before = self.api.calls().len();
        let http = request
            .to_http("", Some("valid-alice"))
            .unwrap_or_else(|e| panic!("{}: {e:?}", op.operation_id));
        let resp = self.router.handle(http.map(Full::new)).await;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let calls = self.api.calls();
        assert_eq!(
            calls.len(),
            before + 1,
            "{} was not called",
            op.operation_id
        );
        let call = calls.last().unwrap();
        assert_eq!(call.operation_id, op.operation_id);
        assert_eq!(call.request, format!("{request:?}"), "{}", op.operation_id);
        R::parse(http::Response::from_parts(parts, body))
    }

    /// Both directions for one operation: the response, and an error envelope.
    async fn round_trip<R>(&self, request: R, response: R::Response)
    where
        R: ClientRequest<Error = MatrixError> + Debug,
        R::Response: Clone + Send + PartialEq + Debug + 'static,
    {
        let id = R::metadata().operation_id;
        let got = self.exchange(&request, Ok(response.clone())).await;
        assert_eq!(got.ok(), Some(response), "{id}");
        let error = MatrixError::forbidden("no").with("extra", 1);
        match self.exchange(&request, Err(error.clone())).await {
            Err(ClientError::Api(e)) => assert_eq!(e, error, "{id}"),
            other => panic!("{id}: {other:?}"),
        }
    }
}

impl Harness {
    /// [`Harness::round_trip`] for an operation of an OAuth file: the error
    /// comes back in OAuth's envelope.
    async fn round_trip_oauth<R>(&self, request: R, response: R::Response)
    where
        R: ClientRequest<Error = OAuthError> + Debug,
        R::Response: Clone + Send + PartialEq + Debug + 'static,
    {
        let id = R::metadata().operation_id;
        let got = self.exchange(&request, Ok(response.clone())).await;
        assert_eq!(got.ok(), Some(response), "{id}");
        let error = OAuthError::new(http::StatusCode::BAD_REQUEST, "invalid_grant").described("no");
        match self.exchange(&request, Err(error.clone())).await {
            Err(ClientError::Api(e)) => assert_eq!(e, error, "{id}"),
            other => panic!("{id}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn every_operation_round_trips_through_the_router() {
    let h = harness();
    let ok_empty = || de::<serde_json::Map<String, Value>>(json!({}));
    let auth = json!({"type": "m.login.dummy", "session": "s1"});
    let email = json!({"client_secret": "cs", "email": "a@b.c", "send_attempt": 1});
    let msisdn =
        json!({"client_secret": "cs", "country": "GB", "phone_number": "0770", "send_attempt": 1});
    let token = json!({"sid": "1", "submit_url": "https://id.example/submit"});
    let three_pid = json!({"client_secret": "cs", "sid": "1", "id_server": "id.example", "id_access_token": "t"});

    let mut r = account_deactivation::deactivate_account::Request::new(de(
        json!({"auth": auth, "erase": true}),
    ));
    h.round_trip(
        r.clone(),
        account_deactivation::deactivate_account::Response::Ok(de(
            json!({"id_server_unbind_result": "success"}),
        )),
    )
    .await;
    r.body = de(json!({}));
    h.round_trip(
        r,
        account_deactivation::deactivate_account::Response::Unauthorized(de(
            json!({"flows": [{"stages": ["m.login.password"]}], "session": "x", "params": {}}),
        )),
    )
    .await;

    h.round_trip(
        admin::get_who_is::Request::new("@who:ex.org".into()),
        admin::get_who_is::Response::Ok(de(json!({"user_id": "@who:ex.org", "devices": {}}))),
    )
    .await;
    let target = user("@someone:ex.org");
    h.round_trip(
        admin::get_admin_suspend_user::Request::new(target.clone()),
        admin::get_admin_suspend_user::Response::Ok(de(json!({"suspended": true}))),
    )
    .await;
    h.round_trip(
        admin::set_admin_suspend_user::Request::new(
            target.clone(),
            de(json!({"suspended": false})),
        ),
        admin::set_admin_suspend_user::Response::Ok(de(json!({"suspended": false}))),
    )
    .await;
    h.round_trip(
        admin::get_admin_lock_user::Request::new(target.clone()),
        admin::get_admin_lock_user::Response::Ok(de(json!({"locked": true}))),
    )
    .await;
    h.round_trip(
        admin::set_admin_lock_user::Request::new(target, de(json!({"locked": true}))),
        admin::set_admin_lock_user::Response::Ok(de(json!({"locked": true}))),
    )
    .await;

    use administrative_contact as ac;
    h.round_trip(
        ac::get_account_3pids::Request::new(),
        ac::get_account_3pids::Response::Ok(de(json!({"threepids": [
            {"medium": "email", "address": "a@b.c", "validated_at": 1, "added_at": 2}
        ]}))),
    )
    .await;
    h.round_trip(
        ac::post_3pids::Request::new(de(json!({"three_pid_creds": three_pid}))),
        ac::post_3pids::Response::Ok(de(json!({"submit_url": "https://id.example/s"}))),
    )
    .await;
    h.round_trip(
        ac::add_3pid::Request::new(de(json!({"auth": auth, "client_secret": "cs", "sid": "1"}))),
        ac::add_3pid::Response::Ok(ok_empty()),
    )
    .await;
    h.round_trip(
        ac::bind_3pid::Request::new(de(three_pid.clone())),
        ac::bind_3pid::Response::Ok(ok_empty()),
    )
    .await;
    h.round_trip(
        ac::delete_3pid_from_account::Request::new(de(
            json!({"medium": "email", "address": "a@b.c"}),
        )),
        ac::delete_3pid_from_account::Response::Ok(de(
            json!({"id_server_unbind_result": "no-support"}),
        )),
    )
    .await;
    h.round_trip(
        ac::unbind_3pid_from_account::Request::new(de(
            json!({"medium": "msisdn", "address": "44770", "id_server": "id.example"}),
        )),
        ac::unbind_3pid_from_account::Response::Ok(de(
            json!({"id_server_unbind_result": "success"}),
        )),
    )
    .await;
    h.round_trip(
        ac::request_token_to_3pid_email::Request::new(de(email.clone())),
        ac::request_token_to_3pid_email::Response::Ok(de(token.clone())),
    )
    .await;
    h.round_trip(
        ac::request_token_to_3pid_msisdn::Request::new(de(msisdn.clone())),
        ac::request_token_to_3pid_msisdn::Response::Ok(de(token.clone())),
    )
    .await;

    h.round_trip(
        capabilities::get_capabilities::Request::new(),
        capabilities::get_capabilities::Response::Ok(de(json!({"capabilities": {
            "m.change_password": {"enabled": false}
        }}))),
    )
    .await;
    h.round_trip(
        login::get_login_flows::Request::new(),
        login::get_login_flows::Response::Ok(de(json!({"flows": [{"type": "m.login.password"}]}))),
    )
    .await;
    h.round_trip(
        login::login::Request::new(de(json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "pw",
            "device_id": "PHONE",
            "refresh_token": true
        }))),
        login::login::Response::Ok(de(json!({
            "user_id": "@alice:ex.org", "access_token": "tok", "device_id": "PHONE",
            "refresh_token": "r", "expires_in_ms": 60000
        }))),
    )
    .await;
    h.round_trip(
        login_token::generate_login_token::Request::new(de(json!({"auth": auth}))),
        login_token::generate_login_token::Response::Ok(de(
            json!({"login_token": "lt", "expires_in_ms": 120000}),
        )),
    )
    .await;
    h.round_trip(
        logout::logout::Request::new(),
        logout::logout::Response::Ok(Default::default()),
    )
    .await;
    h.round_trip(
        logout::logout_all::Request::new(),
        logout::logout_all::Response::Ok(Default::default()),
    )
    .await;
    h.round_trip(
        openid::request_open_id_token::Request::new("@alice:ex.org".into(), de(json!({}))),
        openid::request_open_id_token::Response::Ok(de(json!({
            "access_token": "o", "token_type": "Bearer", "matrix_server_name": "ex.org", "expires_in": 3600
        }))),
    )
    .await;

    use password_management as pm;
    h.round_trip(
        pm::change_password::Request::new(de(
            json!({"new_password": "new", "logout_devices": false, "auth": auth}),
        )),
        pm::change_password::Response::Ok(ok_empty()),
    )
    .await;
    h.round_trip(
        pm::request_token_to_reset_password_email::Request::new(de(email.clone())),
        pm::request_token_to_reset_password_email::Response::Ok(de(token.clone())),
    )
    .await;
    h.round_trip(
        pm::request_token_to_reset_password_msisdn::Request::new(de(msisdn.clone())),
        pm::request_token_to_reset_password_msisdn::Response::Ok(de(token.clone())),
    )
    .await;

    h.round_trip(
        refresh::refresh::Request::new(de(json!({"refresh_token": "r"}))),
        refresh::refresh::Response::Ok(de(
            json!({"access_token": "a", "refresh_token": "r2", "expires_in_ms": 1}),
        )),
    )
    .await;

    use registration as reg;
    h.round_trip(
        reg::register::Request::new(de(
            json!({"username": "ada", "password": "pw", "auth": auth}),
        )),
        reg::register::Response::Ok(de(
            json!({"user_id": "@ada:ex.org", "access_token": "t", "device_id": "D"}),
        )),
    )
    .await;
    h.round_trip(
        reg::register::Request::new(de(json!({"username": "ada"}))),
        reg::register::Response::Unauthorized(de(json!({
            "flows": [{"stages": ["m.login.dummy"]}], "completed": [], "session": "s", "params": {}
        }))),
    )
    .await;
    h.round_trip(
        reg::request_token_to_register_email::Request::new(de(email)),
        reg::request_token_to_register_email::Response::Ok(de(token.clone())),
    )
    .await;
    h.round_trip(
        reg::request_token_to_register_msisdn::Request::new(de(msisdn)),
        reg::request_token_to_register_msisdn::Response::Ok(de(token)),
    )
    .await;
    h.round_trip(
        reg::check_username_availability::Request::new("ada".into()),
        reg::check_username_availability::Response::Ok(de(json!({"available": true}))),
    )
    .await;
    h.round_trip(
        registration_tokens::registration_token_validity::Request::new("tok".into()),
        registration_tokens::registration_token_validity::Response::Ok(de(json!({"valid": false}))),
    )
    .await;
    h.round_trip(
        versions::get_versions::Request::new(),
        versions::get_versions::Response::Ok(de(
            json!({"versions": ["v1.11"], "unstable_features": {"x": true}}),
        )),
    )
    .await;
    h.round_trip(
        wellknown::get_wellknown::Request::new(),
        wellknown::get_wellknown::Response::Ok(de(
            json!({"m.homeserver": {"base_url": "https://ex.org"}}),
        )),
    )
    .await;
    h.round_trip(
        wellknown::get_wellknown::Request::new(),
        wellknown::get_wellknown::Response::NotFound,
    )
    .await;
    h.round_trip(
        whoami::get_token_owner::Request::new(),
        whoami::get_token_owner::Response::Ok(de(
            json!({"user_id": "@alice:ex.org", "device_id": "D", "is_guest": false}),
        )),
    )
    .await;
    // This server's own validation endpoints: JSON, pages, a form, a cookie,
    // a redirect and a style sheet.
    let token = || matrix_api::types::ValidationToken::new("s1".into(), "cs".into(), "T".into());
    h.round_trip(
        validation::submit_validation_token::Request::new(token()),
        validation::submit_validation_token::Response::Ok(de(json!({"success": true}))),
    )
    .await;
    h.round_trip(
        validation::show_validation_page::Request::new("s1".into(), "c s&=".into(), "T".into()),
        validation::show_validation_page::Response::Ok {
            body: Html("<p>é</p>".into()),
            set_cookie: "validation_csrf=x; HttpOnly".into(),
        },
    )
    .await;
    h.round_trip(
        validation::show_validation_page::Request::new("s1".into(), "cs".into(), "T".into()),
        validation::show_validation_page::Response::BadRequest(Html("<p>no</p>".into())),
    )
    .await;
    let mut form = validation::confirm_validation::RequestBody::new(
        "s1".into(),
        "c s&=".into(),
        "T".into(),
        "csrf".into(),
    );
    form.sid = "s 1".into();
    let mut confirm = validation::confirm_validation::Request::new(form);
    confirm.cookie = Some("validation_csrf=csrf".into());
    h.round_trip(
        confirm,
        validation::confirm_validation::Response::SeeOther {
            location: "https://client.example.org/?a=1".into(),
        },
    )
    .await;
    h.round_trip(
        validation::get_static_file::Request::new("auth_done.js".into()),
        validation::get_static_file::Response::Ok(matrix_api::runtime::Binary {
            content_type: Some("text/javascript; charset=utf-8".into()),
            bytes: bytes::Bytes::from_static(b"x()"),
        }),
    )
    .await;
    h.round_trip(
        login_fallback::show_login_fallback::Request::new(),
        login_fallback::show_login_fallback::Response::Ok(Html("<form></form>".into())),
    )
    .await;
    h.round_trip(
        auth_fallback::show_auth_fallback::Request::new("m.login.password".into(), "S/1".into()),
        auth_fallback::show_auth_fallback::Response::Ok {
            body: Html("<form></form>".into()),
            set_cookie: None,
        },
    )
    .await;
    let mut form = auth_fallback::submit_auth_fallback::RequestBody::new("S1".into(), "c".into());
    form.password = Some("p w&=".into());
    h.round_trip(
        auth_fallback::submit_auth_fallback::Request::new("m.login.password".into(), form),
        auth_fallback::submit_auth_fallback::Response::BadRequest(Html("wrong".into())),
    )
    .await;
    h.round_trip(
        validation::show_validated_page::Request::new(),
        validation::show_validated_page::Response::Ok(Html("ok".into())),
    )
    .await;
    h.round_trip(
        federation_openid::exchange_open_id_token::Request::new("o".into()),
        federation_openid::exchange_open_id_token::Response::Ok(de(
            json!({"sub": "@alice:ex.org"}),
        )),
    )
    .await;

    let mut sso =
        sso_login_redirect::redirect_to_sso::Request::new("com.example.app:/cb?a=b&c".into());
    sso.action = Some(de(json!("register")));
    h.round_trip(
        sso,
        sso_login_redirect::redirect_to_sso::Response::Found {
            location: Some("/_account/v1/register?session=x".into()),
        },
    )
    .await;

    // The OAuth 2.0 API: discovery, the machine endpoints, the pages.
    let metadata = json!({
        "issuer": "https://m.example/", "authorization_endpoint": "https://m.example/a",
        "token_endpoint": "https://m.example/t", "revocation_endpoint": "https://m.example/r",
        "registration_endpoint": "https://m.example/c", "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"], "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "account_management_actions_supported": ["org.matrix.profile", "org.example.future"],
    });
    h.round_trip(
        oauth_server_metadata::get_auth_metadata::Request::new(),
        oauth_server_metadata::get_auth_metadata::Response::Ok(de(metadata.clone())),
    )
    .await;
    h.round_trip(
        oauth_discovery::get_authorization_server_metadata::Request::new(),
        oauth_discovery::get_authorization_server_metadata::Response::Ok(de(metadata.clone())),
    )
    .await;
    h.round_trip_oauth(
        delegation::get_open_id_configuration::Request::new(),
        delegation::get_open_id_configuration::Response::Ok(de(metadata)),
    )
    .await;
    h.round_trip_oauth(
        delegation::introspect_token::Request::new(de(
            json!({"token": "mat_x", "token_type_hint": "access_token"}),
        )),
        delegation::introspect_token::Response::Ok(de(json!({
            "active": true, "scope": "urn:matrix:client:api:* urn:matrix:client:device:D",
            "username": "a", "sub": "@a:ex.org", "device_id": "D", "token_type": "access_token",
            "expires_in": 300
        }))),
    )
    .await;
    h.round_trip_oauth(
        oauth::register_client::Request::new(de(json!({
            "redirect_uris": ["com.example.app:/cb"], "client_uri": "https://example.com/",
            "client_name#fr": "Appli",
        }))),
        oauth::register_client::Response::Created(de(json!({
            "client_id": "C1", "client_uri": "https://example.com/", "client_name#fr": "Appli",
        }))),
    )
    .await;
    let mut authorize = oauth::authorize::Request::new();
    authorize.client_id = Some("C1".into());
    authorize.scope = Some("urn:matrix:client:api:* urn:matrix:client:device:D&=".into());
    authorize.cookie = Some("account_session=s".into());
    h.round_trip_oauth(
        authorize,
        oauth::authorize::Response::SeeOther {
            location: "/_account/v1/consent?session=x".into(),
        },
    )
    .await;
    h.round_trip_oauth(
        oauth::authorize::Request::new(),
        oauth::authorize::Response::BadRequest(Html("<p>unknown client</p>".into())),
    )
    .await;
    let mut grant = oauth::request_token::RequestBody::new("authorization_code".into());
    grant.code = Some("c o&de".into());
    grant.code_verifier = Some("v".repeat(43));
    h.round_trip_oauth(
        oauth::request_token::Request::new(grant),
        oauth::request_token::Response::Ok {
            body: de(json!({
                "access_token": "a", "token_type": "Bearer", "expires_in": 300,
                "refresh_token": "r", "scope": "s",
            })),
            cache_control: "no-store".into(),
        },
    )
    .await;
    h.round_trip_oauth(
        oauth::revoke_token::Request::new(oauth::revoke_token::RequestBody::new("t".into())),
        oauth::revoke_token::Response::Ok(ok_empty()),
    )
    .await;
    let mut device = oauth::request_device_authorization::RequestBody::new("C 1&".into());
    device.scope = Some("urn:matrix:client:api:* urn:matrix:client:device:TV".into());
    h.round_trip_oauth(
        oauth::request_device_authorization::Request::new(device),
        oauth::request_device_authorization::Response::Ok {
            body: de(json!({
                "device_code": "odc_x", "user_code": "WDJB-MJHT",
                "verification_uri": "https://m.example/_account/v1/device",
                "verification_uri_complete": "https://m.example/_account/v1/device?code=WDJB-MJHT",
                "expires_in": 600, "interval": 5,
            })),
            cache_control: "no-store".into(),
        },
    )
    .await;
    let mut poll = oauth::request_token::RequestBody::new(
        "urn:ietf:params:oauth:grant-type:device_code".into(),
    );
    poll.client_id = Some("C1".into());
    poll.device_code = Some("odc_x".into());
    h.round_trip_oauth(
        oauth::request_token::Request::new(poll),
        oauth::request_token::Response::Ok {
            body: de(json!({
                "access_token": "a", "token_type": "Bearer", "expires_in": 300,
                "refresh_token": "r", "scope": "s",
            })),
            cache_control: "no-store".into(),
        },
    )
    .await;
    let mut page = oauth_pages::show_login_page::Request::new("S 1".into());
    page.cookie = Some("oauth_csrf=c".into());
    h.round_trip(
        page,
        oauth_pages::show_login_page::Response::Ok {
            body: Html("<form></form>".into()),
            set_cookie: "oauth_csrf=c; HttpOnly".into(),
        },
    )
    .await;
    h.round_trip(
        oauth_pages::submit_login::Request::new(oauth_pages::submit_login::RequestBody::new(
            "S".into(),
            "c".into(),
            "alice".into(),
            "p w&=".into(),
        )),
        oauth_pages::submit_login::Response::SeeOther {
            location: "/_account/v1/consent?session=S".into(),
            set_cookie: "account_session=x; HttpOnly".into(),
        },
    )
    .await;
    h.round_trip(
        oauth_pages::show_registration_page::Request::new("S".into()),
        oauth_pages::show_registration_page::Response::Forbidden(Html("closed".into())),
    )
    .await;
    let mut form = oauth_pages::submit_registration::RequestBody::new(
        "S".into(),
        "c".into(),
        "bob".into(),
        "pw".into(),
    );
    form.registration_token = Some("t".into());
    h.round_trip(
        oauth_pages::submit_registration::Request::new(form),
        oauth_pages::submit_registration::Response::BadRequest(Html("taken".into())),
    )
    .await;
    let mut form = oauth_pages::submit_registration::RequestBody::new(
        "S".into(),
        "c".into(),
        "bob".into(),
        "pw".into(),
    );
    form.email = Some("Bob+x@example.org".into());
    h.round_trip(
        oauth_pages::submit_registration::Request::new(form),
        oauth_pages::submit_registration::Response::SeeOther {
            location: "/_account/v1/register/email?session=S".into(),
            set_cookie: "account_registration=opr_x; HttpOnly; SameSite=Strict".into(),
        },
    )
    .await;
    let mut page = oauth_pages::show_registration_email_page::Request::new("S 1&".into());
    page.cookie = Some("oauth_csrf=c; account_registration=opr_x".into());
    h.round_trip(
        page,
        oauth_pages::show_registration_email_page::Response::Ok {
            body: Html("<h1>Check your email</h1>".into()),
            set_cookie: "oauth_csrf=c".into(),
        },
    )
    .await;
    h.round_trip(
        oauth_pages::submit_registration_email::Request::new(
            oauth_pages::submit_registration_email::RequestBody::new("S".into(), "c".into()),
        ),
        oauth_pages::submit_registration_email::Response::SeeOther {
            location: "/_account/v1/consent?session=S".into(),
            set_cookie: "account_session=x; HttpOnly".into(),
        },
    )
    .await;
    h.round_trip(
        oauth_pages::show_consent_page::Request::new("S".into()),
        oauth_pages::show_consent_page::Response::Ok {
            body: Html("<form></form>".into()),
            set_cookie: "oauth_csrf=c".into(),
            content_security_policy: "default-src 'none'; form-action 'self'".into(),
        },
    )
    .await;
    h.round_trip(
        oauth_pages::submit_consent::Request::new(oauth_pages::submit_consent::RequestBody::new(
            "S".into(),
            "c".into(),
            "allow".into(),
        )),
        oauth_pages::submit_consent::Response::SeeOther {
            location: "http://127.0.0.1:5/cb?code=x&state=y".into(),
        },
    )
    .await;

    use account_management as am;
    let mut page = am::show_account_page::Request::new();
    page.action = Some("org.matrix.device_view".into());
    page.device_id = Some("DEV 1&x".into());
    page.done = Some("device_deleted".into());
    page.cookie = Some("oauth_csrf=c; account_session=s".into());
    h.round_trip(
        page,
        am::show_account_page::Response::Ok {
            body: Html("<h1>Device</h1>".into()),
            set_cookie: "oauth_csrf=c".into(),
        },
    )
    .await;
    h.round_trip(
        am::show_account_page::Request::new(),
        am::show_account_page::Response::SeeOther {
            location: "/_account/v1/account/login?next=%2F_account%2Fv1%2Faccount".into(),
        },
    )
    .await;
    let mut login_page = am::show_account_login_page::Request::new();
    login_page.next = Some("/_account/v1/account?action=org.matrix.devices_list".into());
    login_page.done = Some("signed_out".into());
    h.round_trip(
        login_page,
        am::show_account_login_page::Response::Ok {
            body: Html("<form></form>".into()),
            set_cookie: "oauth_csrf=c".into(),
        },
    )
    .await;
    let mut login =
        am::submit_account_login::RequestBody::new("c".into(), "alice".into(), "p w&=".into());
    login.next = Some("/_account/v1/account?action=x&y=z".into());
    h.round_trip(
        am::submit_account_login::Request::new(login),
        am::submit_account_login::Response::SeeOther {
            location: "/_account/v1/account".into(),
            set_cookie: "account_session=x; HttpOnly".into(),
        },
    )
    .await;
    h.round_trip(
        am::submit_account_logout::Request::new(am::submit_account_logout::RequestBody::new(
            "c".into(),
        )),
        am::submit_account_logout::Response::SeeOther {
            location: "/_account/v1/account/login?done=signed_out".into(),
            set_cookie: "account_session=; Max-Age=0".into(),
        },
    )
    .await;
    h.round_trip(
        am::submit_password_change::Request::new(am::submit_password_change::RequestBody::new(
            "c".into(),
            "old pw".into(),
            "new pw".into(),
        )),
        am::submit_password_change::Response::BadRequest(Html("too short".into())),
    )
    .await;
    h.round_trip(
        am::submit_device_deletion::Request::new(am::submit_device_deletion::RequestBody::new(
            "c".into(),
            "DEV".into(),
        )),
        am::submit_device_deletion::Response::SeeOther {
            location: "/_account/v1/account?action=org.matrix.devices_list&done=device_deleted"
                .into(),
        },
    )
    .await;
    h.round_trip(
        am::submit_threepid_removal::Request::new(am::submit_threepid_removal::RequestBody::new(
            "c".into(),
            "email".into(),
            "a+b@example.org".into(),
        )),
        am::submit_threepid_removal::Response::Forbidden(Html("suspended".into())),
    )
    .await;
    h.round_trip(
        am::submit_threepid_addition::Request::new(am::submit_threepid_addition::RequestBody::new(
            "c".into(),
            "A+b@Example.org".into(),
        )),
        am::submit_threepid_addition::Response::SeeOther {
            location: "/_account/v1/account/threepids/confirm".into(),
        },
    )
    .await;
    h.round_trip(
        am::submit_threepid_addition::Request::new(am::submit_threepid_addition::RequestBody::new(
            "c".into(),
            "a@example.org".into(),
        )),
        am::submit_threepid_addition::Response::ServiceUnavailable(Html("not sent".into())),
    )
    .await;
    let mut confirm_page = am::show_threepid_confirmation_page::Request::new();
    confirm_page.cookie = Some("oauth_csrf=c; account_session=s".into());
    h.round_trip(
        confirm_page,
        am::show_threepid_confirmation_page::Response::Ok {
            body: Html("<h1>Check your email</h1>".into()),
            set_cookie: "oauth_csrf=c".into(),
        },
    )
    .await;
    h.round_trip(
        am::submit_threepid_confirmation::Request::new(
            am::submit_threepid_confirmation::RequestBody::new("c".into()),
        ),
        am::submit_threepid_confirmation::Response::BadRequest(Html("not confirmed".into())),
    )
    .await;
    h.round_trip(
        am::submit_account_deactivation::Request::new(
            am::submit_account_deactivation::RequestBody::new("c".into(), "pw".into()),
        ),
        am::submit_account_deactivation::Response::SeeOther {
            location: "/_account/v1/account/login?done=deactivated".into(),
            set_cookie: Some("account_session=; Max-Age=0".into()),
        },
    )
    .await;
    h.round_trip(
        am::submit_display_name_change::Request::new(
            am::submit_display_name_change::RequestBody::new("c".into(), "Ada L.".into()),
        ),
        am::submit_display_name_change::Response::SeeOther {
            location: "/_account/v1/account?done=display_name_changed".into(),
        },
    )
    .await;
    h.round_trip(
        am::submit_display_name_change::Request::new(
            am::submit_display_name_change::RequestBody::new("c".into(), "x".repeat(300)),
        ),
        am::submit_display_name_change::Response::BadRequest(Html("too long".into())),
    )
    .await;
    h.round_trip(
        am::submit_cross_signing_reset::Request::new(
            am::submit_cross_signing_reset::RequestBody::new("c".into(), "pw".into()),
        ),
        am::submit_cross_signing_reset::Response::SeeOther {
            location: "/_account/v1/account?action=org.matrix.cross_signing_reset&done=cross_signing_reset_allowed".into(),
        },
    )
    .await;
    h.round_trip(
        am::submit_cross_signing_reset::Request::new(
            am::submit_cross_signing_reset::RequestBody::new("c".into(), "pw".into()),
        ),
        am::submit_cross_signing_reset::Response::ServiceUnavailable(Html("try later".into())),
    )
    .await;

    let mut code_page = oauth_device::show_device_code_page::Request::new();
    code_page.code = Some("WDJB-MJHT".into());
    code_page.cookie = Some("oauth_csrf=c".into());
    h.round_trip(
        code_page,
        oauth_device::show_device_code_page::Response::Ok {
            body: Html("<form></form>".into()),
            set_cookie: "oauth_csrf=c; HttpOnly".into(),
        },
    )
    .await;
    h.round_trip(
        oauth_device::submit_device_code::Request::new(
            oauth_device::submit_device_code::RequestBody::new("c".into(), "wdjb mjht&=".into()),
        ),
        oauth_device::submit_device_code::Response::TooManyRequests(Html("later".into())),
    )
    .await;
    h.round_trip(
        oauth_device::show_device_consent_page::Request::new("ods_S".into()),
        oauth_device::show_device_consent_page::Response::SeeOther {
            location: "/_account/v1/login?session=ods_S".into(),
        },
    )
    .await;
    h.round_trip(
        oauth_device::submit_device_consent::Request::new(
            oauth_device::submit_device_consent::RequestBody::new(
                "ods_S".into(),
                "c".into(),
                "deny".into(),
            ),
        ),
        oauth_device::submit_device_consent::Response::SeeOther {
            location: "/_account/v1/device/done?result=denied".into(),
        },
    )
    .await;
    let mut done = oauth_device::show_device_done_page::Request::new();
    done.result = Some("allowed".into());
    h.round_trip(
        done,
        oauth_device::show_device_done_page::Response::Ok(Html("<p>done</p>".into())),
    )
    .await;

    // Every operation of the API was exercised.
    let mut called: Vec<&str> = h.api.calls().iter().map(|c| c.operation_id).collect();
    called.sort();
    called.dedup();
    let mut operations: Vec<&str> = h
        .router
        .routes()
        .iter()
        .map(|r| r.metadata.operation_id)
        .collect();
    operations.sort();
    operations.dedup();
    assert_eq!(called, operations);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Any non-empty string (path parameters cannot be empty).
fn text() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("non-empty", |s| !s.is_empty())
}

/// User IDs of the current grammar, and historical ones with other characters.
fn user_id() -> impl Strategy<Value = UserId> {
    "@[a-z0-9._=/+-]{1,12}:[a-z][a-z0-9-]{0,8}\\.[a-z]{2,4}(:[0-9]{1,4})?"
        .prop_map(|s| UserId::parse(&s).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn path_and_query_parameters_round_trip(
        who in text(),
        username in any::<String>(),
        token in any::<String>(),
        target in user_id(),
        suspended in any::<bool>(),
        available in any::<bool>(),
    ) {
        runtime().block_on(async {
            let h = harness();
            h.round_trip(
                admin::get_who_is::Request::new(who.clone()),
                admin::get_who_is::Response::Ok(de(json!({"user_id": who}))),
            ).await;
            h.round_trip(
                registration::check_username_availability::Request::new(username),
                registration::check_username_availability::Response::Ok(de(json!({"available": available}))),
            ).await;
            h.round_trip(
                registration_tokens::registration_token_validity::Request::new(token.clone()),
                registration_tokens::registration_token_validity::Response::Ok(de(json!({"valid": available}))),
            ).await;
            h.round_trip(
                federation_openid::exchange_open_id_token::Request::new(token),
                federation_openid::exchange_open_id_token::Response::Ok(de(json!({"sub": target}))),
            ).await;
            h.round_trip(
                admin::set_admin_suspend_user::Request::new(target.clone(), de(json!({"suspended": suspended}))),
                admin::set_admin_suspend_user::Response::Ok(de(json!({"suspended": suspended}))),
            ).await;
        });
    }

    #[test]
    fn bodies_and_enum_parameters_round_trip(
        kind in prop_oneof![Just("user".to_owned()), Just("guest".to_owned()), "[a-z_.]{0,8}"],
        username in any::<String>(),
        password in any::<String>(),
        device in proptest::option::of(any::<String>()),
        access in any::<String>(),
        expires in proptest::option::of(0i64..1 << 53),
        inhibit in any::<bool>(),
    ) {
        runtime().block_on(async {
            let h = harness();
            let mut request = registration::register::Request::new(de(json!({
                "username": username, "password": password, "device_id": device,
                "inhibit_login": inhibit, "auth": {"type": "m.login.dummy"}
            })));
            request.kind = registration::register::Kind::from(kind.as_str());
            h.round_trip(
                request,
                registration::register::Response::Ok(de(json!({
                    "user_id": "@a:ex.org", "access_token": access, "device_id": device,
                    "expires_in_ms": expires
                }))),
            ).await;
            h.round_trip(
                login::login::Request::new(de(json!({
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": username},
                    "password": password, "device_id": device
                }))),
                login::login::Response::Ok(de(json!({
                    "user_id": "@a:ex.org", "access_token": access, "device_id": device.clone().unwrap_or_default()
                }))),
            ).await;
            h.round_trip(
                refresh::refresh::Request::new(de(json!({"refresh_token": password}))),
                refresh::refresh::Response::Ok(de(json!({"access_token": access, "expires_in_ms": expires}))),
            ).await;
        });
    }
}
