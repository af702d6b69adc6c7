//! The generated router's HTTP behaviour: routing, parsing, authentication,
//! leniency, error envelopes and the encoding of typed responses, through the hyper
//! service with real requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use matrix_api::client_server::{login, logout, password_management, wellknown, whoami};
use matrix_api::router::Dispatcher;
use matrix_api::runtime::testing::{Stub, UNSCRIPTED};
use matrix_api::runtime::{Authenticator, Credential, RequestInfo, Seg};
use matrix_api::runtime::{MatrixError, Router, RouterConfig, UserId};
use matrix_api::types;
use serde_json::{json, Value};

/// Tokens are valid when they start with `valid-`; the caller is
/// `<scheme>:<rest of the token>`.
struct ValidPrefix;

impl Authenticator for ValidPrefix {
    type Identity = String;

    async fn authenticate(&self, credential: Credential<'_>) -> Result<String, MatrixError> {
        match credential.token.strip_prefix("valid-") {
            Some(user) => Ok(format!("{}:{user}", credential.scheme)),
            None => Err(MatrixError::unknown_token(false)),
        }
    }

    /// Refuses requests carrying `x-test-limit`, naming the caller it was given.
    fn rate_limit(
        &self,
        request: &RequestInfo,
        caller: Option<&String>,
    ) -> Result<(), MatrixError> {
        if request.headers.contains_key("x-test-limit") {
            return Err(MatrixError::limit_exceeded(1000).with("caller", format!("{caller:?}")));
        }
        Ok(())
    }
}

/// The router over the generated stub implementation of every route trait.
struct Harness {
    api: Arc<Stub<ValidPrefix>>,
    router: Router<Dispatcher<Stub<ValidPrefix>>>,
}

fn harness() -> Harness {
    let api = Arc::new(Stub::new(ValidPrefix));
    let router = matrix_api::router(
        api.clone(),
        RouterConfig {
            max_body_bytes: 4096,
            ..RouterConfig::default()
        },
    );
    Harness { api, router }
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    /// The body as sent.
    text: String,
    /// The body parsed (`Null` when empty).
    body: Value,
}

/// No request may keep the router busy longer than this.
const TIMEOUT: Duration = Duration::from_secs(10);

impl Harness {
    async fn send(&self, req: Request<Full<Bytes>>) -> Reply {
        let what = format!("{} {}", req.method(), req.uri());
        let resp = tokio::time::timeout(TIMEOUT, self.router.handle(req))
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer within {TIMEOUT:?}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).expect("UTF-8 body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON body")
        };
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    async fn call(&self, method: Method, uri: &str, token: Option<&str>, body: &str) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        self.send(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
            .await
    }

    /// `(operation ID, caller, request)` of the last call that reached the stub.
    fn last(&self) -> (String, String, String) {
        let call = self
            .api
            .calls()
            .pop()
            .expect("the implementation was called");
        (call.operation_id.to_string(), call.caller, call.request)
    }
}

fn errcode(r: &Reply) -> &str {
    r.body["errcode"].as_str().unwrap_or("")
}

/// `errcode(r)`, except that an operation of an OAuth file answers in OAuth's
/// envelope: there the router's (and the stub's) Matrix errors arrive as the
/// OAuth code of their status (`OAuthError::from`), which stands for
/// `expected` when it is the one that status converts to.
fn code_as_expected<'r>(r: &'r Reply, expected: &'r str) -> &'r str {
    if r.body.get("errcode").is_some() {
        return errcode(r);
    }
    let oauth = match r.status.as_u16() {
        401 => "invalid_token",
        403 => "access_denied",
        429 => "temporarily_unavailable",
        400..=499 => "invalid_request",
        _ => "server_error",
    };
    match r.body["error"].as_str() {
        Some(error) if error == oauth => expected,
        Some(error) => error,
        None => "",
    }
}

/// A call that reached the implementation (with nothing scripted) answers 418.
const REACHED: StatusCode = UNSCRIPTED;

#[tokio::test]
async fn unknown_path_is_404_unrecognized() {
    let h = harness();
    let r = h
        .call(Method::GET, "/_matrix/client/v3/nothing/here", None, "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(errcode(&r), "M_UNRECOGNIZED");
    assert_eq!(r.headers["content-type"], "application/json");
}

#[tokio::test]
async fn known_path_with_wrong_method_is_405_unrecognized() {
    let h = harness();
    let r = h
        .call(Method::GET, "/_matrix/client/v3/register", None, "")
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(errcode(&r), "M_UNRECOGNIZED");
}

#[tokio::test]
async fn options_answers_with_cors_and_every_response_carries_cors() {
    let h = harness();
    let r = h
        .call(Method::OPTIONS, "/_matrix/client/v3/login", None, "")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    assert!(r.headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(r.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("Authorization"));
    let r = h.call(Method::GET, "/nowhere", None, "").await;
    assert_eq!(r.headers["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn body_that_is_not_json_is_m_not_json() {
    let h = harness();
    for body in ["{not json", "[1, 2", "\u{0}"] {
        let r = h
            .call(Method::POST, "/_matrix/client/v3/login", None, body)
            .await;
        assert_eq!(
            (r.status, errcode(&r)),
            (StatusCode::BAD_REQUEST, "M_NOT_JSON"),
            "{body:?}"
        );
    }
    let req = Request::post("/_matrix/client/v3/login")
        .body(Full::new(Bytes::from_static(b"{\"type\": \"\xff\xfe\"}")))
        .unwrap();
    let r = h.send(req).await;
    assert_eq!(
        (r.status, errcode(&r)),
        (StatusCode::BAD_REQUEST, "M_NOT_JSON"),
        "invalid UTF-8"
    );
}

#[tokio::test]
async fn json_of_the_wrong_shape_is_m_bad_json() {
    let h = harness();
    for body in [
        r#"{"type": 5}"#,
        "[]",
        r#"{"type": "m.login.password", "refresh_token": "yes"}"#,
    ] {
        let r = h
            .call(Method::POST, "/_matrix/client/v3/login", None, body)
            .await;
        assert_eq!(
            (r.status, errcode(&r)),
            (StatusCode::BAD_REQUEST, "M_BAD_JSON"),
            "{body}"
        );
    }
    // A struct body is an object, never serde's array of fields in order: this
    // would otherwise be a deactivation with `erase: true`.
    for body in ["[]", "[null, null, true]"] {
        let r = h
            .call(
                Method::POST,
                "/_matrix/client/v3/account/deactivate",
                None,
                body,
            )
            .await;
        assert_eq!(
            (r.status, errcode(&r)),
            (StatusCode::BAD_REQUEST, "M_BAD_JSON"),
            "{body}"
        );
        assert!(h.api.calls().is_empty(), "the implementation is not called");
    }
}

#[tokio::test]
async fn missing_required_field_or_parameter_is_m_missing_param() {
    let h = harness();
    let r = h
        .call(
            Method::POST,
            "/_matrix/client/v3/login",
            None,
            r#"{"password": "x"}"#,
        )
        .await;
    assert_eq!(
        (r.status, errcode(&r)),
        (StatusCode::BAD_REQUEST, "M_MISSING_PARAM")
    );
    assert!(r.body["error"].as_str().unwrap().contains("type"));
    let r = h
        .call(
            Method::GET,
            "/_matrix/client/v3/register/available",
            None,
            "",
        )
        .await;
    assert_eq!(
        (r.status, errcode(&r)),
        (StatusCode::BAD_REQUEST, "M_MISSING_PARAM")
    );
}

#[tokio::test]
async fn path_parameter_that_is_not_utf8_is_m_invalid_param() {
    let h = harness();
    let r = h
        .call(
            Method::POST,
            "/_matrix/client/v3/user/%ff%fe/openid/request_token",
            Some("valid-a"),
            "{}",
        )
        .await;
    assert_eq!(
        (r.status, errcode(&r)),
        (StatusCode::BAD_REQUEST, "M_INVALID_PARAM")
    );
}

#[tokio::test]
async fn oversized_body_is_413_m_too_large_whether_declared_or_streamed() {
    let h = harness();
    let big = format!(
        r#"{{"type": "m.login.password", "password": "{}"}}"#,
        "x".repeat(5000)
    );
    let declared = Request::post("/_matrix/client/v3/login")
        .header("content-length", big.len())
        .body(Full::new(Bytes::from(big.clone())))
        .unwrap();
    let r = h.send(declared).await;
    assert_eq!(
        (r.status, errcode(&r)),
        (StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE")
    );
    assert_eq!(
        r.headers["connection"], "close",
        "the unread body makes the connection unusable"
    );
    let r = h
        .call(Method::POST, "/_matrix/client/v3/login", None, &big)
        .await;
    assert_eq!(
        (r.status, errcode(&r)),
        (StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE")
    );
}

#[tokio::test]
async fn required_auth_without_token_is_m_missing_token() {
    let h = harness();
    let r = h
        .call(Method::GET, "/_matrix/client/v3/account/whoami", None, "")
        .await;
    assert_eq!(
        (r.status, errcode(&r)),
        (StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN")
    );
    assert!(h.api.calls().is_empty(), "the implementation is not called");
}

#[tokio::test]
async fn unknown_token_is_the_authenticators_m_unknown_token() {
    let h = harness();
    let r = h
        .call(
            Method::GET,
            "/_matrix/client/v3/account/whoami",
            Some("forged"),
            "",
        )
        .await;
    assert_eq!(
        (r.status, errcode(&r)),
        (StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN")
    );
}

#[tokio::test]
async fn bearer_header_and_deprecated_query_token_both_authenticate() {
    let h = harness();
    let r = h
        .call(
            Method::GET,
            "/_matrix/client/v3/account/whoami",
            Some("valid-alice"),
            "",
        )
        .await;
    assert_eq!(r.status, REACHED);
    assert_eq!(h.last().1, "\"accessTokenBearer:alice\"");
    let r = h
        .call(
            Method::GET,
            "/_matrix/client/v3/account/whoami?access_token=valid-bob",
            None,
            "",
        )
        .await;
    assert_eq!(r.status, REACHED);
    assert_eq!(h.last().1, "\"accessTokenQuery:bob\"");
}

#[tokio::test]
async fn optional_auth_passes_none_without_a_token_and_rejects_a_bad_one() {
    let h = harness();
    let r = h
        .call(
            Method::POST,
            "/_matrix/client/v3/account/password",
            None,
            r#"{"new_password": "n"}"#,
        )
        .await;
    assert_eq!(r.status, REACHED);
    assert_eq!(h.last().1, "None");
    h.call(
        Method::POST,
        "/_matrix/client/v3/account/password",
        Some("valid-carol"),
        r#"{"new_password": "n"}"#,
    )
    .await;
    assert_eq!(h.last().1, "Some(\"accessTokenBearer:carol\")");
    let r = h
        .call(
            Method::POST,
            "/_matrix/client/v3/account/password",
            Some("bad"),
            r#"{"new_password": "n"}"#,
        )
        .await;
    assert_eq!(errcode(&r), "M_UNKNOWN_TOKEN");
}

#[tokio::test]
async fn null_optional_field_counts_as_absent_and_defaults_apply() {
    let h = harness();
    h.call(
        Method::POST,
        "/_matrix/client/v3/account/password",
        None,
        r#"{"new_password": "n", "auth": null, "logout_devices": null}"#,
    )
    .await;
    let (op, _, request) = h.last();
    assert_eq!(op, "changePassword");
    assert!(request.contains("auth: None"), "{request}");
    assert!(
        request.contains("logout_devices: true"),
        "spec default applies to null: {request}"
    );
    h.call(
        Method::POST,
        "/_matrix/client/v3/account/password",
        None,
        r#"{"new_password": "n", "logout_devices": false}"#,
    )
    .await;
    assert!(h.last().2.contains("logout_devices: false"));
    h.call(Method::POST, "/_matrix/client/v3/register", None, "{}")
        .await;
    assert!(
        h.last().2.contains("kind: User"),
        "query default `kind=user`: {}",
        h.last().2
    );
    h.call(
        Method::POST,
        "/_matrix/client/v3/register?kind=guest",
        None,
        "{}",
    )
    .await;
    assert!(h.last().2.contains("kind: Guest"));
}

#[tokio::test]
async fn unknown_enum_values_and_unknown_fields_are_kept_or_ignored_not_rejected() {
    let h = harness();
    let r = h
        .call(
            Method::POST,
            "/_matrix/client/v3/register?kind=robot",
            None,
            r#"{"future_field": 1}"#,
        )
        .await;
    assert_eq!(r.status, REACHED);
    assert!(h.last().2.contains("_Custom(\"robot\")"), "{}", h.last().2);
}

#[tokio::test]
async fn empty_body_is_an_empty_object_only_where_no_field_is_required() {
    let h = harness();
    // No required fields (deactivate; request_token's body is a free-form object)
    // or no body at all (logout): an empty body, with or without a content type,
    // is `{}` and reaches the implementation.
    for (uri, op) in [
        ("/_matrix/client/v3/account/deactivate", "deactivateAccount"),
        (
            "/_matrix/client/v3/user/@dave:x/openid/request_token",
            "requestOpenIdToken",
        ),
        ("/_matrix/client/v3/logout", "logout"),
    ] {
        for content_type in [None, Some("application/json")] {
            for body in ["", " \r\n"] {
                let mut req = Request::post(uri).header("authorization", "Bearer valid-dave");
                if let Some(ct) = content_type {
                    req = req.header("content-type", ct);
                }
                let r = h
                    .send(req.body(Full::new(Bytes::from(body))).unwrap())
                    .await;
                assert_eq!(
                    r.status, REACHED,
                    "{uri} {content_type:?} {body:?}: {}",
                    r.body
                );
                assert_eq!(h.last().0, op);
            }
        }
    }
    h.call(
        Method::POST,
        "/_matrix/client/v3/account/deactivate",
        None,
        "",
    )
    .await;
    assert!(h.last().2.contains("erase: false"), "{:?}", h.last());
    // Required fields (login's `type`, change_password's `new_password`, add_3pid's
    // `client_secret` and `sid`): an empty body is not JSON, not a request missing
    // its fields.
    for (uri, token) in [
        ("/_matrix/client/v3/login", None),
        ("/_matrix/client/v3/account/password", None),
        ("/_matrix/client/v3/account/3pid/add", Some("valid-dave")),
    ] {
        for body in ["", "  \n"] {
            let r = h.call(Method::POST, uri, token, body).await;
            assert_eq!(
                (r.status, errcode(&r)),
                (StatusCode::BAD_REQUEST, "M_NOT_JSON"),
                "{uri} {body:?}"
            );
        }
        let r = h.call(Method::POST, uri, token, "{}").await;
        assert_eq!(
            (r.status, errcode(&r)),
            (StatusCode::BAD_REQUEST, "M_MISSING_PARAM"),
            "{uri} {{}}"
        );
    }
}

#[tokio::test]
async fn path_parameters_are_the_same_raw_or_percent_encoded() {
    let h = harness();
    for path in ["@alice:example.org", "%40alice%3Aexample.org"] {
        let uri = format!("/_matrix/client/v3/user/{path}/openid/request_token");
        let r = h.call(Method::POST, &uri, Some("valid-alice"), "{}").await;
        assert_eq!(r.status, REACHED);
        assert!(
            h.last().2.contains("user_id: \"@alice:example.org\""),
            "{}",
            h.last().2
        );
    }
}

#[tokio::test]
async fn legacy_r0_prefix_serves_the_operations_that_existed_before_v1_1() {
    let h = harness();
    let r = h
        .call(
            Method::GET,
            "/_matrix/client/r0/account/whoami",
            Some("valid-erin"),
            "",
        )
        .await;
    assert_eq!(r.status, REACHED);
    assert_eq!(h.last().0, "getTokenOwner");
    let r = h
        .call(Method::POST, "/_matrix/client/r0/register", None, "{}")
        .await;
    assert_eq!(r.status, REACHED);
    // Added in v1.3 and v1.18: they never had an r0 path.
    for (method, path) in [
        (Method::POST, "/_matrix/client/r0/refresh"),
        (Method::GET, "/_matrix/client/r0/admin/lock/%40a%3Ab"),
    ] {
        let r = h.call(method, path, Some("valid-erin"), "{}").await;
        assert_eq!(
            (r.status, errcode(&r)),
            (StatusCode::NOT_FOUND, "M_UNRECOGNIZED"),
            "{path}"
        );
    }
    // The route table and METADATA agree.
    for route in matrix_api::router::ROUTES {
        if route.base == "/_matrix/client/r0" {
            let legacy = route
                .metadata
                .legacy_path
                .expect("a legacy route has a legacy path");
            assert!(legacy.starts_with("/_matrix/client/r0/"), "{legacy}");
            assert_eq!(route.metadata.added_in, None, "{legacy}");
        }
    }
}

#[tokio::test]
async fn every_base_path_is_served_by_one_router() {
    let h = harness();
    for (method, uri, op) in [
        (Method::GET, "/_matrix/client/versions", "getVersions"),
        (Method::GET, "/.well-known/matrix/client", "getWellknown"),
        (
            Method::GET,
            "/_matrix/client/v1/register/m.login.registration_token/validity?token=t",
            "registrationTokenValidity",
        ),
        (
            Method::GET,
            "/_matrix/federation/v1/openid/userinfo?access_token=abc",
            "exchangeOpenIdToken",
        ),
        (
            Method::GET,
            "/_matrix/client/v3/admin/whois/@a:b",
            "getWhoIs",
        ),
        (
            Method::PUT,
            "/_matrix/client/v1/admin/lock/@a:b",
            "setAdminLockUser",
        ),
    ] {
        let r = h
            .call(method, uri, Some("valid-x"), r#"{"locked": true}"#)
            .await;
        assert_eq!(r.status, REACHED, "{uri}: {}", r.body);
        assert_eq!(h.last().0, op);
    }
}

/// The headers every response carries.
fn assert_cors(r: &Reply) {
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    assert_eq!(
        r.headers["access-control-allow-methods"],
        "GET, POST, PUT, DELETE, OPTIONS"
    );
    assert_eq!(
        r.headers["access-control-allow-headers"],
        "X-Requested-With, Content-Type, Authorization"
    );
}

#[tokio::test]
async fn success_variant_is_200_json_with_exactly_its_fields() {
    let h = harness();
    let mut owner =
        whoami::get_token_owner::OkBody::new(UserId::parse("@alice:example.org").unwrap());
    owner.device_id = Some("DEV".into());
    h.api.reply::<_, MatrixError>(
        &whoami::get_token_owner::METADATA,
        Ok(whoami::get_token_owner::Response::Ok(owner)),
    );
    let r = h
        .call(
            Method::GET,
            "/_matrix/client/v3/account/whoami",
            Some("valid-alice"),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_cors(&r);
    // Spec order, and an absent optional field is left out rather than `null`.
    assert_eq!(
        r.text,
        r#"{"user_id":"@alice:example.org","device_id":"DEV"}"#
    );
    assert_eq!(r.headers.get("retry-after"), None);

    // An empty-object success (logout) is `{}`, not an empty body.
    h.api.reply::<_, MatrixError>(
        &logout::logout::METADATA,
        Ok(logout::logout::Response::Ok(Default::default())),
    );
    let r = h
        .call(
            Method::POST,
            "/_matrix/client/v3/logout",
            Some("valid-a"),
            "",
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "{}"));
    assert_eq!(r.headers["content-type"], "application/json");
}

#[tokio::test]
async fn documented_statuses_keep_their_status_and_body() {
    let h = harness();
    // A user-interactive-auth challenge: 401 with the flows, and no errcode.
    let flow = types::FlowInformation::new(vec!["m.login.password".into()]);
    let mut challenge = types::AuthResponse::new(vec![flow]);
    challenge.params = Some(Default::default());
    challenge.session = Some("S1".into());
    challenge.completed = Some(vec![]);
    h.api.reply::<_, MatrixError>(
        &password_management::change_password::METADATA,
        Ok(password_management::change_password::Response::Unauthorized(challenge)),
    );
    let r = h
        .call(
            Method::POST,
            "/_matrix/client/v3/account/password",
            None,
            r#"{"new_password": "n"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_cors(&r);
    assert_eq!(
        r.body,
        json!({"flows": [{"stages": ["m.login.password"]}], "params": {}, "session": "S1", "completed": []})
    );

    // A documented 403 with the standard error body: the handler's `Err`.
    h.api.reply::<login::login::Response, _>(
        &login::login::METADATA,
        Err(MatrixError::forbidden("Invalid password")),
    );
    let r = h
        .call(
            Method::POST,
            "/_matrix/client/v3/login",
            None,
            r#"{"type": "m.login.password"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.text,
        r#"{"errcode":"M_FORBIDDEN","error":"Invalid password"}"#
    );

    // A documented status without a body: no body and no content type.
    h.api.reply::<_, MatrixError>(
        &wellknown::get_wellknown::METADATA,
        Ok(wellknown::get_wellknown::Response::NotFound),
    );
    let r = h
        .call(Method::GET, "/.well-known/matrix/client", None, "")
        .await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::NOT_FOUND, ""));
    assert_eq!(r.headers.get("content-type"), None);
    assert_cors(&r);
}

#[tokio::test]
async fn rate_limits_carry_retry_after_whether_documented_or_not() {
    let h = harness();
    // A `MatrixError` the spec does not list for the operation (whoami has no 429).
    h.api
        .reply::<whoami::get_token_owner::Response, MatrixError>(
            &whoami::get_token_owner::METADATA,
            Err(MatrixError::limit_exceeded(2500)),
        );
    let r = h
        .call(
            Method::GET,
            "/_matrix/client/v3/account/whoami",
            Some("valid-a"),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after"], "3", "seconds, rounded up");
    assert_eq!(r.headers["content-type"], "application/json");
    assert_cors(&r);
    assert_eq!(
        r.body,
        json!({"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 2500})
    );

    // The documented 429 of a rate-limited operation.
    h.api.reply::<login::login::Response, _>(
        &login::login::METADATA,
        Err(MatrixError::limit_exceeded(1000)),
    );
    let r = h
        .call(
            Method::POST,
            "/_matrix/client/v3/login",
            None,
            r#"{"type": "m.login.password"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        r.text,
        r#"{"errcode":"M_LIMIT_EXCEEDED","error":"Too many requests","retry_after_ms":1000}"#
    );
    assert_eq!(r.headers["retry-after"], "1");
}

#[tokio::test]
async fn implementation_errors_keep_their_status_and_extra_fields() {
    let h = harness();
    h.api
        .reply::<whoami::get_token_owner::Response, MatrixError>(
            &whoami::get_token_owner::METADATA,
            Err(MatrixError::unknown_token(true)),
        );
    let r = h
        .call(
            Method::GET,
            "/_matrix/client/v3/account/whoami",
            Some("valid-a"),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.body,
        json!({"errcode": "M_UNKNOWN_TOKEN", "error": "Unknown or expired access token", "soft_logout": true})
    );
    assert_eq!(r.headers.get("retry-after"), None);
    assert_cors(&r);
}

/// What the README documents for one request, worked out from the spec (the
/// generator's IR of `api/`), independently of the generated router.
mod oracle {
    use http::{Method, StatusCode};
    use matrix_codegen::ir::{Api, Content, Operation, ParamIn, SchemeKind, Ty, TypeKind};

    pub fn api() -> Api {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api");
        matrix_codegen::load_spec(&dir).expect("api/ loads").api
    }

    /// The operations served at a full path template (parameters written `{}`).
    pub fn operations<'a>(api: &'a Api, template: &str) -> Vec<&'a Operation> {
        let unnamed = |path: &str| {
            path.split('/')
                .map(|s| if s.starts_with('{') { "{}" } else { s })
                .collect::<Vec<_>>()
                .join("/")
        };
        api.files
            .iter()
            .filter(|f| f.served)
            .flat_map(|f| f.operations.iter().map(move |op| (f, op)))
            .filter(|(f, op)| unnamed(&format!("{}{}", f.base_path, op.path)) == template)
            .map(|(_, op)| op)
            .collect()
    }

    pub struct Case<'a> {
        pub method: &'a Method,
        /// `?kind=%ff&username=&access_token=valid-q&token=%` was sent.
        pub query: bool,
        /// `Authorization: Bearer valid-fuzz` was sent.
        pub bearer: bool,
        pub body: &'a str,
    }

    /// The documented answer: an error, or `Ok(operation)` when the request
    /// reaches the implementation.
    pub fn expect<'a>(
        api: &'a Api,
        template: &str,
        case: &Case,
    ) -> Result<&'a str, (StatusCode, &'static str)> {
        let ops = operations(api, template);
        assert!(!ops.is_empty(), "{template} is a route");
        let Some(op) = ops.iter().find(|op| op.method == case.method.as_str()) else {
            return Err((StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED"));
        };
        // Authentication comes first; every token sent here is a valid one.
        if !op.security.schemes.is_empty() {
            let credential = op.security.schemes.iter().any(|s| match &s.kind {
                SchemeKind::Authorization(p) => case.bearer && p.eq_ignore_ascii_case("bearer"),
                SchemeKind::Query(name) => case.query && name == "access_token",
                SchemeKind::Header(_) => false,
            });
            if !credential && !op.security.optional {
                return Err((StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN"));
            }
        }
        // Then parameters, in the order the spec declares them.
        let sent = ["kind", "username", "access_token", "token"];
        for p in &op.params {
            let present = match p.location {
                ParamIn::Path => true, // `✓x`, valid for a string
                ParamIn::Query => case.query && sent.contains(&p.wire.as_str()),
                ParamIn::Header => false,
            };
            if !present && p.required {
                return Err((StatusCode::BAD_REQUEST, "M_MISSING_PARAM"));
            }
            // The values sent (`\u{fffd}`, ``, `valid-q`, `%`) are only valid text,
            // none of them a valid identifier.
            if present && !text_like(api, &p.ty) {
                return Err((StatusCode::BAD_REQUEST, "M_INVALID_PARAM"));
            }
        }
        let body = match &op.body {
            Some(b) => b,
            None => return Ok(&op.operation_id),
        };
        let ty = match &body.content {
            Content::Json(ty) => ty,
            Content::Form(ty) => return form_fit(api, ty, case.body, &op.operation_id),
            _ => return Ok(&op.operation_id),
        };
        let not_json = Err((StatusCode::BAD_REQUEST, "M_NOT_JSON"));
        if case.body.trim().is_empty() {
            // No body where none is required, or `{}` where that is a valid body.
            let as_empty_object = accepts(api, ty, &serde_json::json!({})) == Fit::Yes;
            return if !body.required || as_empty_object {
                Ok(&op.operation_id)
            } else {
                not_json
            };
        }
        let Ok(value) = serde_json::from_str(case.body) else {
            return not_json;
        };
        match accepts(api, ty, &value) {
            Fit::Yes => Ok(&op.operation_id),
            Fit::Missing => Err((StatusCode::BAD_REQUEST, "M_MISSING_PARAM")),
            Fit::Wrong => Err((StatusCode::BAD_REQUEST, "M_BAD_JSON")),
        }
    }

    /// A form body (`application/x-www-form-urlencoded`): unknown keys are
    /// ignored, a missing required field is `M_MISSING_PARAM`. (The forms of
    /// api/ have text fields only.)
    fn form_fit<'a>(
        api: &Api,
        ty: &Ty,
        body: &str,
        operation: &'a str,
    ) -> Result<&'a str, (StatusCode, &'static str)> {
        let Ty::Named(id) = ty else {
            panic!("the oracle does not model form bodies of {ty:?}")
        };
        let TypeKind::Struct { fields, .. } = &api.types[*id].kind else {
            panic!("the oracle does not model form bodies of {ty:?}")
        };
        let keys: Vec<String> = form_urlencoded::parse(body.as_bytes())
            .map(|(k, _)| k.into_owned())
            .collect();
        for f in fields {
            assert!(
                text_like(api, &f.ty),
                "the oracle models text form fields only"
            );
            if f.required && !keys.contains(&f.wire) {
                return Err((StatusCode::BAD_REQUEST, "M_MISSING_PARAM"));
            }
        }
        Ok(operation)
    }

    fn text_like(api: &Api, ty: &Ty) -> bool {
        match ty {
            Ty::String => true,
            Ty::Named(id) => matches!(api.types[*id].kind, TypeKind::StringEnum { .. }),
            Ty::Vec(inner) => text_like(api, inner),
            _ => false,
        }
    }

    #[derive(Debug, PartialEq)]
    pub enum Fit {
        Yes,
        /// The right shape, but a required field is absent.
        Missing,
        Wrong,
    }

    /// Whether `value` is a valid instance of `ty` (a JSON object for a struct).
    fn accepts(api: &Api, ty: &Ty, value: &serde_json::Value) -> Fit {
        use serde_json::Value as V;
        let ok = |b: bool| if b { Fit::Yes } else { Fit::Wrong };
        match (ty, value) {
            (Ty::Any, _) => Fit::Yes,
            (Ty::Option(_), V::Null) => Fit::Yes,
            (Ty::Option(inner), v) => accepts(api, inner, v),
            (Ty::Object, v) => ok(v.is_object()),
            (Ty::String, v) => ok(v.is_string()),
            (Ty::Integer, v) => ok(v.is_i64()),
            (Ty::Number, v) => ok(v.is_number()),
            (Ty::Boolean, v) => ok(v.is_boolean()),
            (Ty::Vec(inner), V::Array(items)) => {
                ok(items.iter().all(|i| accepts(api, inner, i) == Fit::Yes))
            }
            (Ty::Map(inner), V::Object(m)) => {
                ok(m.values().all(|v| accepts(api, inner, v) == Fit::Yes))
            }
            (Ty::Named(id) | Ty::Boxed(id), v) => match (&api.types[*id].kind, v) {
                (TypeKind::StringEnum { .. }, v) => ok(v.is_string()),
                (TypeKind::Struct { fields, extra }, V::Object(m)) => {
                    // serde reports a wrong value before a missing field.
                    for (k, v) in m {
                        let fit = match fields.iter().find(|f| f.wire == *k) {
                            Some(f) if v.is_null() && !f.required => Fit::Yes,
                            Some(f) => accepts(api, &f.ty, v),
                            None => extra.as_ref().map_or(Fit::Yes, |t| accepts(api, t, v)),
                        };
                        if fit != Fit::Yes {
                            return Fit::Wrong;
                        }
                    }
                    if fields
                        .iter()
                        .any(|f| f.required && !m.contains_key(&f.wire))
                    {
                        Fit::Missing
                    } else {
                        Fit::Yes
                    }
                }
                (TypeKind::Struct { .. }, _) => Fit::Wrong,
                (kind, _) => panic!("the oracle does not model request bodies of {kind:?}"),
            },
            _ => Fit::Wrong,
        }
    }
}

/// Malformed requests on every route: each combination of method, body, query
/// string and bearer token gets exactly the status and errcode the README
/// documents for it (worked out from the spec by `oracle`), or reaches the
/// operation it names; none panics or hangs.
#[tokio::test]
async fn malformed_requests_get_their_documented_errors() {
    let h = harness();
    let api = oracle::api();
    let mut templates: Vec<(String, String)> = h
        .router
        .routes()
        .iter()
        .map(|r| {
            let mut sent = r.base.to_string();
            for s in r.segments {
                let a = match s {
                    matrix_api::runtime::Seg::Lit(l) => l,
                    matrix_api::runtime::Seg::Param => "%E2%9C%93x",
                };
                sent += &format!("/{a}");
            }
            // The spec's path (a legacy `r0` route answers as its operation).
            let template: Vec<&str> = r
                .metadata
                .path
                .split('/')
                .map(|s| if s.starts_with('{') { "{}" } else { s })
                .collect();
            (sent, template.join("/"))
        })
        .collect();
    templates.sort();
    templates.dedup();
    let bodies = [
        "",
        "{",
        "null",
        "[]",
        "{\"auth\": []}",
        "{\"new_password\": {}}",
        "\"x\"",
        "1e999",
        "{\"a\":\u{1F600}}",
    ];
    let methods = [Method::GET, Method::POST, Method::PUT, Method::DELETE];
    let mut seen = std::collections::BTreeSet::new();
    let mut cases = Vec::new();
    for (route, template) in &templates {
        for method in &methods {
            for body in bodies {
                for (query, bearer) in [(false, false), (false, true), (true, false), (true, true)]
                {
                    cases.push((route, template, method, body, query, bearer));
                }
            }
        }
    }
    assert_eq!(cases.len(), templates.len() * 4 * 9 * 4);
    for (route, template, method, body, query, bearer) in cases {
        let uri = if query {
            format!("{route}?kind=%ff&username=&access_token=valid-q&token=%")
        } else {
            route.clone()
        };
        let case = oracle::Case {
            method,
            query,
            bearer,
            body,
        };
        let expected = oracle::expect(&api, template, &case);
        let calls = h.api.calls().len();
        let r = h
            .call(method.clone(), &uri, bearer.then_some("valid-fuzz"), body)
            .await;
        let what = format!(
            "{method} {uri} bearer={bearer} {body:?}: {} {}",
            r.status, r.body
        );
        match expected {
            Ok(op) => {
                assert_eq!(
                    (r.status, code_as_expected(&r, "M_TEST_CALLED")),
                    (REACHED, "M_TEST_CALLED"),
                    "{what}"
                );
                assert_eq!(h.last().0, op, "{what}");
                seen.insert("reached".to_string());
            }
            Err((status, code)) => {
                assert_eq!(
                    (r.status, code_as_expected(&r, code)),
                    (status, code),
                    "{what}"
                );
                assert_eq!(
                    h.api.calls().len(),
                    calls,
                    "{what}: the implementation is not called"
                );
                seen.insert(code.to_string());
            }
        }
    }
    // Every outcome occurs, so none of them is checked vacuously.
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [
            "M_BAD_JSON",
            "M_INVALID_PARAM",
            "M_MISSING_PARAM",
            "M_MISSING_TOKEN",
            "M_NOT_JSON",
            "M_UNRECOGNIZED",
            "reached"
        ]
    );
}

/// The router asks the implementation's rate limit exactly for the operations
/// the spec marks rate-limited, after authentication (with the caller) and
/// before the body is parsed.
#[tokio::test]
async fn the_rate_limit_hook_runs_for_rate_limited_operations_only() {
    let h = harness();
    let mut limited = 0;
    for route in matrix_api::router::ROUTES {
        let mut uri = route.base.to_string();
        for seg in route.segments {
            uri.push('/');
            uri.push_str(match seg {
                Seg::Lit(s) => s,
                Seg::Param => "%40a%3Aexample.org",
            });
        }
        let req = Request::builder()
            .method(route.method.clone())
            .uri(&uri)
            .header("authorization", "Bearer valid-a")
            .header("x-test-limit", "1")
            .body(Full::new(Bytes::from_static(b"not json")))
            .unwrap();
        let r = h.send(req).await;
        let what = format!("{} {uri}", route.method);
        if route.metadata.rate_limited {
            limited += 1;
            assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{what}");
            assert_eq!(r.headers["retry-after"], "1", "{what}");
            let caller = if route.metadata.security.schemes.is_empty() {
                "None"
            } else {
                r#"Some("accessTokenBearer:a")"#
            };
            // (An OAuth file's envelope has no room for the stub's `caller`.)
            if r.body.get("errcode").is_some() {
                assert_eq!(r.body["caller"], caller, "{what}");
            } else {
                assert_eq!(r.body["error"], "temporarily_unavailable", "{what}");
            }
        } else {
            assert_ne!(r.status, StatusCode::TOO_MANY_REQUESTS, "{what}");
        }
    }
    assert!(limited >= 20, "only {limited} rate-limited operations");
}
