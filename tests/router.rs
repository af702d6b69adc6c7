//! The generated router's HTTP behaviour: routing, parsing, authentication,
//! leniency and error envelopes, through the hyper service with real requests.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use matrix_api::router::Dispatcher;
use matrix_api::runtime::{MatrixError, Router, RouterConfig};
use matrix_tests::recording_api::RecordingApi;
use serde_json::{json, Value};

struct Harness {
    api: Arc<RecordingApi>,
    router: Router<Dispatcher<RecordingApi>>,
}

fn harness() -> Harness {
    let api = Arc::new(RecordingApi::default());
    let router = matrix_api::router(
        api.clone(),
        RouterConfig {
            max_body_bytes: 4096,
        },
    );
    Harness { api, router }
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Value,
}

impl Harness {
    async fn send(&self, req: Request<Full<Bytes>>) -> Reply {
        let resp = self.router.handle(req).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        Reply {
            status,
            headers,
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

    fn last(&self) -> (String, String, String) {
        self.api.last_call().expect("the implementation was called")
    }
}

fn errcode(r: &Reply) -> &str {
    r.body["errcode"].as_str().unwrap_or("")
}

/// A call that reached the implementation answers the test double's 418.
const REACHED: StatusCode = StatusCode::IM_A_TEAPOT;

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
        assert!(
            h.api.last_call().is_none(),
            "the implementation is not called"
        );
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
    assert!(
        h.api.last_call().is_none(),
        "the implementation is not called"
    );
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
    assert_eq!(op, "change_password");
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
        (
            "/_matrix/client/v3/account/deactivate",
            "deactivate_account",
        ),
        (
            "/_matrix/client/v3/user/@dave:x/openid/request_token",
            "request_open_id_token",
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
    // Required fields (login's `type`, register/available's body-less GET aside):
    // an empty body is not JSON, not a request missing its fields.
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
async fn legacy_r0_prefix_serves_the_v3_routes() {
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
    assert_eq!(h.last().0, "get_token_owner");
    let r = h
        .call(Method::POST, "/_matrix/client/r0/register", None, "{}")
        .await;
    assert_eq!(r.status, REACHED);
}

#[tokio::test]
async fn every_base_path_is_served_by_one_router() {
    let h = harness();
    for (method, uri, op) in [
        (Method::GET, "/_matrix/client/versions", "get_versions"),
        (Method::GET, "/.well-known/matrix/client", "get_wellknown"),
        (
            Method::GET,
            "/_matrix/client/v1/register/m.login.registration_token/validity?token=t",
            "registration_token_validity",
        ),
        (
            Method::GET,
            "/_matrix/federation/v1/openid/userinfo?access_token=abc",
            "exchange_open_id_token",
        ),
        (
            Method::GET,
            "/_matrix/client/v3/admin/whois/@a:b",
            "get_who_is",
        ),
        (
            Method::PUT,
            "/_matrix/client/v1/admin/lock/@a:b",
            "set_admin_lock_user",
        ),
    ] {
        let r = h
            .call(method, uri, Some("valid-x"), r#"{"locked": true}"#)
            .await;
        assert_eq!(r.status, REACHED, "{uri}: {}", r.body);
        assert_eq!(h.last().0, op);
    }
}

#[tokio::test]
async fn implementation_errors_keep_their_status_fields_and_retry_after() {
    let resp = MatrixError::limit_exceeded(2500).into_response();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "3");
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        body,
        json!({"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 2500})
    );
    let body = MatrixError::unknown_token(true).to_json();
    assert_eq!(body["soft_logout"], true);
}

/// A deterministic stream of malformed requests: every one gets a JSON error or
/// reaches the implementation; none panics or hangs the router.
#[tokio::test]
async fn never_panics_on_malformed_input() {
    let h = harness();
    let routes: Vec<String> = h
        .router
        .routes()
        .iter()
        .map(|r| {
            let segs: Vec<&str> = r
                .segments
                .iter()
                .map(|s| match s {
                    matrix_api::runtime::Seg::Lit(l) => *l,
                    matrix_api::runtime::Seg::Param => "%E2%9C%93x",
                })
                .collect();
            format!("{}/{}", r.base, segs.join("/"))
        })
        .collect();
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
    let mut seed: u64 = 42;
    for _ in 0..600 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let route = &routes[(seed >> 33) as usize % routes.len()];
        let body = bodies[(seed >> 20) as usize % bodies.len()];
        let method = methods[(seed >> 10) as usize % methods.len()].clone();
        let query = if seed.is_multiple_of(3) {
            "?kind=%ff&username=&access_token=valid-q&token=%"
        } else {
            ""
        };
        let token = seed.is_multiple_of(2).then_some("valid-fuzz");
        let r = h
            .call(method, &format!("{route}{query}"), token, body)
            .await;
        assert!(
            r.status == REACHED || r.body["errcode"].is_string(),
            "{route}{query} {body}: {} {}",
            r.status,
            r.body
        );
    }
}
