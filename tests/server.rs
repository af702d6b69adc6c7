//! Black-box behaviour of matrix-account-server: the real binary over HTTP, each
//! behaviour on SQLite and on PostgreSQL.

use matrix_tests::both;
use std::time::Duration;

use matrix_api::client_server::{
    login, logout, password_management, refresh, registration, whoami,
};
use matrix_api::runtime::{ClientError, MatrixError};
use matrix_api::types::{FlowInformation, UserIdentifier};
use matrix_tests::server::{auth_stage, eventually, ApiClient, Db, TestServer};
use serde_json::json;

const REGISTER: &str = "/_matrix/client/v3/register";
const WHOAMI: &str = "/_matrix/client/v3/account/whoami";

/// Typed requests for the valid flows (the raw-HTTP tests below keep to the
/// wire: malformed input, exact bytes).
fn password_login(user: &str, password: &str) -> login::login::Request {
    let mut identifier = UserIdentifier::new("m.id.user".into());
    identifier.extra.insert("user".into(), user.into());
    let mut body = login::login::RequestBody::new("m.login.password".into());
    body.identifier = Some(identifier);
    body.password = Some(password.into());
    login::login::Request::new(body)
}

/// Logs in with the typed client; the session's body.
fn log_in(c: &ApiClient, request: &login::login::Request) -> login::login::OkBody {
    match c.send(request) {
        Ok(login::login::Response::Ok(body)) => body,
        other => panic!("login failed: {other:?}"),
    }
}

fn registration_body(username: &str, password: &str) -> registration::register::RequestBody {
    let mut body = registration::register::RequestBody::new();
    body.username = Some(username.into());
    body.password = Some(password.into());
    body
}

/// `GET /account/whoami` with `token`: the owner, or the error envelope.
fn whoami(s: &TestServer, token: &str) -> Result<whoami::get_token_owner::OkBody, MatrixError> {
    match s
        .client()
        .with_access_token(token)
        .send(&whoami::get_token_owner::Request::new())
    {
        Ok(whoami::get_token_owner::Response::Ok(body)) => Ok(body),
        Err(ClientError::Api(e)) => Err(e),
        other => panic!("whoami: {other:?}"),
    }
}

fn errcode<T>(r: Result<T, MatrixError>) -> String {
    r.err().map(|e| e.errcode).unwrap_or_default()
}

both!(registration_with_the_dummy_stage_logs_the_user_in, |s| {
    let c = s.client();
    let request = registration::register::Request::new(registration_body("ada", "correct horse"));
    let Ok(registration::register::Response::Unauthorized(first)) = c.send(&request) else {
        panic!("expected the UIA flows");
    };
    assert_eq!(
        first.flows,
        [
            FlowInformation::new(vec!["m.login.dummy".into()]),
            FlowInformation::new(vec!["m.login.registration_token".into()])
        ]
    );
    assert_eq!(first.completed, Some(vec![]));
    let done = c.register(registration_body("ada", "correct horse"));
    assert_eq!(done.user_id, "@ada:test.local");
    let who = whoami(s, done.access_token.as_deref().unwrap()).unwrap();
    assert_eq!(who.user_id, done.user_id);
    assert_eq!(who.device_id, done.device_id);
    assert_eq!(who.is_guest, Some(false));
});

// The README's client example is a real program: run it against the server.
both!(the_readme_client_example_registers_and_logs_in, |s| {
    let out = std::process::Command::new(example_binary("register_and_login"))
        .args([s.base.as_str(), "readme"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("@readme:test.local logged in as device \""),
        "{stdout}"
    );
    assert_eq!(
        s.client().error(&password_login("readme", "wrong")).errcode,
        "M_FORBIDDEN"
    );
});

/// An example of this package, built when a filtered `cargo test` did not.
fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    if !path.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "matrix-tests", "--example", name])
            .status()
            .unwrap();
        assert!(status.success(), "building example {name}");
    }
    path
}

both!(
    usernames_follow_the_grammar_and_taken_names_fail_before_uia,
    |s| {
        for bad in ["Ada", "ada smith", "ädа", "", &"a".repeat(250)] {
            let r = s.post(
                REGISTER,
                None,
                json!({"username": bad, "password": "correct horse"}),
            );
            assert_eq!(
                (r.status, r.errcode()),
                (400, "M_INVALID_USERNAME"),
                "{bad:?}"
            );
        }
        s.user("grace");
        let r = s.post(
            REGISTER,
            None,
            json!({"username": "grace", "password": "correct horse"}),
        );
        assert_eq!(
            (r.status, r.errcode()),
            (400, "M_USER_IN_USE"),
            "checked before interactive auth"
        );
        let r = s.get("/_matrix/client/v3/register/available?username=grace", None);
        assert_eq!((r.status, r.errcode()), (400, "M_USER_IN_USE"));
        let r = s.get(
            "/_matrix/client/v3/register/available?username=hopper",
            None,
        );
        assert_eq!((r.status, &r.body), (200, &json!({"available": true})));
        let r = s.get(
            "/_matrix/client/v3/register/available?username=Hopper",
            None,
        );
        assert_eq!(r.errcode(), "M_INVALID_USERNAME");
    }
);

both!(a_missing_username_gets_a_generated_localpart, |s| {
    let first = s.post(REGISTER, None, json!({"password": "correct horse"}));
    let session = first.body["session"].as_str().unwrap();
    let r = s.post(
        REGISTER,
        None,
        json!({"password": "correct horse", "auth": {"type": "m.login.dummy", "session": session}}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let user_id = r.body["user_id"].as_str().unwrap();
    assert!(
        user_id.starts_with('@') && user_id.ends_with(":test.local") && user_id.len() > 12,
        "{user_id}"
    );
});

both!(weak_passwords_are_refused, |s| {
    let e = s
        .client()
        .error(&registration::register::Request::new(registration_body(
            "weak", "short",
        )));
    assert_eq!(
        (e.status.as_u16(), e.errcode.as_str()),
        (400, "M_WEAK_PASSWORD")
    );
});

both!(guests_are_refused_unless_enabled, |s| {
    let mut request =
        registration::register::Request::new(registration::register::RequestBody::new());
    request.kind = registration::register::Kind::Guest;
    let e = s.client().error(&request);
    assert_eq!(
        (e.status.as_u16(), e.errcode.as_str()),
        (403, "M_GUEST_ACCESS_FORBIDDEN")
    );
});

both!(inhibit_login_creates_the_account_without_a_session, |s| {
    let first = s.post(
        REGISTER,
        None,
        json!({"username": "quiet", "password": "correct horse", "inhibit_login": true}),
    );
    let session = first.body["session"].as_str().unwrap();
    let r = s.post(
        REGISTER,
        None,
        json!({"username": "quiet", "password": "correct horse", "inhibit_login": true, "auth": {"type": "m.login.dummy", "session": session}}),
    );
    assert_eq!(r.status, 200);
    assert!(
        r.body.get("access_token").is_none() && r.body.get("device_id").is_none(),
        "{r:?}"
    );
    assert_eq!(s.login("quiet", "correct horse").status, 200);
});

both!(login_accepts_localpart_full_id_and_legacy_user_field, |s| {
    s.user("lin");
    let c = s.client();
    log_in(&c, &password_login("lin", "correct horse"));
    log_in(&c, &password_login("@lin:test.local", "correct horse"));
    let mut legacy = login::login::RequestBody::new("m.login.password".into());
    legacy.user = Some("lin".into());
    legacy.password = Some("correct horse".into());
    log_in(&c, &login::login::Request::new(legacy));
    let wrong = c.error(&password_login("lin", "incorrect horse"));
    assert_eq!(
        (wrong.status.as_u16(), wrong.errcode.as_str()),
        (403, "M_FORBIDDEN")
    );
    let nobody = c.error(&password_login("nobody", "correct horse"));
    assert_eq!(
        (nobody.status.as_u16(), nobody.errcode.as_str()),
        (403, "M_FORBIDDEN")
    );
    let Ok(login::get_login_flows::Response::Ok(flows)) =
        c.send(&login::get_login_flows::Request::new())
    else {
        panic!("no login flows");
    };
    assert_eq!(flows.flows.unwrap()[0].type_, "m.login.password");
});

both!(
    a_client_supplied_device_id_replaces_that_devices_token,
    |s| {
        s.user("dev");
        let login = |device: &str| {
            s.post(
            "/_matrix/client/v3/login",
            None,
            json!({"type": "m.login.password", "user": "dev", "password": "correct horse", "device_id": device}),
        )
        };
        let first = login("PHONE");
        assert_eq!(first.body["device_id"], "PHONE");
        let second = login("PHONE");
        let old = s.get(WHOAMI, first.body["access_token"].as_str());
        assert_eq!((old.status, old.errcode()), (401, "M_UNKNOWN_TOKEN"));
        let new = s.get(WHOAMI, second.body["access_token"].as_str());
        assert_eq!(new.body["device_id"], "PHONE");
    }
);

both!(logout_revokes_the_token_and_logout_all_every_token, |s| {
    let (_, t1) = s.user("out");
    let c = s.client();
    let t2 = log_in(&c, &password_login("out", "correct horse")).access_token;
    let t3 = log_in(&c, &password_login("out", "correct horse")).access_token;
    // The typed client sends no body to `/logout`.
    let out = c
        .with_access_token(&t1)
        .send(&logout::logout::Request::new());
    assert!(
        matches!(out, Ok(logout::logout::Response::Ok(_))),
        "{out:?}"
    );
    assert_eq!(errcode(whoami(s, &t1)), "M_UNKNOWN_TOKEN");
    assert!(whoami(s, &t2).is_ok());
    let all = c
        .with_access_token(&t2)
        .send(&logout::logout_all::Request::new());
    assert!(
        matches!(all, Ok(logout::logout_all::Response::Ok(_))),
        "{all:?}"
    );
    assert_eq!(errcode(whoami(s, &t2)), "M_UNKNOWN_TOKEN");
    assert_eq!(errcode(whoami(s, &t3)), "M_UNKNOWN_TOKEN");
    let anonymous = c.error(&whoami::get_token_owner::Request::new());
    assert_eq!(anonymous.errcode, "M_MISSING_TOKEN");
});

both!(
    refresh_tokens_rotate_and_the_old_pair_lives_until_the_new_is_used,
    |s| {
        s.user("fresh");
        let c = s.client();
        let mut request = password_login("fresh", "correct horse");
        request.body.refresh_token = Some(true);
        let login = log_in(&c, &request);
        assert!(login.expires_in_ms.unwrap() > 0, "{login:?}");
        let (a1, r1) = (login.access_token, login.refresh_token.unwrap());
        let refresh = |token: &str| {
            c.send(&refresh::refresh::Request::new(
                refresh::refresh::RequestBody::new(token.into()),
            ))
        };
        let Ok(refresh::refresh::Response::Ok(refreshed)) = refresh(&r1) else {
            panic!("refresh failed");
        };
        let (a2, r2) = (refreshed.access_token, refreshed.refresh_token.unwrap());
        // Until the new pair is used, the old one still works (a lost response can be retried).
        assert!(whoami(s, &a1).is_ok());
        assert!(whoami(s, &a2).is_ok());
        // Using the new access token retired the old pair.
        assert_eq!(errcode(whoami(s, &a1)), "M_UNKNOWN_TOKEN");
        assert!(refresh(&r2).is_ok());
        // Reusing the retired token is refused (and, as theft, ends the device
        // session: tests/hardening.rs).
        match refresh(&r1) {
            Err(ClientError::Api(e)) => {
                assert_eq!(
                    (e.status.as_u16(), e.errcode.as_str()),
                    (401, "M_UNKNOWN_TOKEN")
                )
            }
            other => panic!("{other:?}"),
        }
    }
);

both!(
    expired_access_tokens_are_soft_logouts,
    "[tokens]\naccess_token_lifetime_secs = 1\n",
    |s| {
        let first = s.post(
            REGISTER,
            None,
            json!({"username": "brief", "password": "correct horse", "refresh_token": true}),
        );
        let session = first.body["session"].as_str().unwrap();
        let r = s.post(
            REGISTER,
            None,
            json!({"username": "brief", "password": "correct horse", "refresh_token": true, "auth": {"type": "m.login.dummy", "session": session}}),
        );
        assert_eq!(r.body["expires_in_ms"], 1000);
        let token = r.body["access_token"].as_str();
        eventually("the access token expires", Duration::from_secs(10), || {
            s.get(WHOAMI, token).status == 401
        });
        let expired = s.get(WHOAMI, token);
        assert_eq!(
            (expired.status, expired.errcode()),
            (401, "M_UNKNOWN_TOKEN")
        );
        assert_eq!(expired.body["soft_logout"], true);
        let refreshed = s.post(
            "/_matrix/client/v3/refresh",
            None,
            json!({"refresh_token": r.body["refresh_token"]}),
        );
        assert_eq!(
            s.get(WHOAMI, refreshed.body["access_token"].as_str())
                .status,
            200
        );
    }
);

/// Password change with `m.login.password` for `pat`, through the typed
/// client; returns the final answer.
fn change_password(
    s: &TestServer,
    token: &str,
    mut body: password_management::change_password::RequestBody,
    password: &str,
) -> Result<password_management::change_password::Response, ClientError<MatrixError>> {
    use password_management::change_password::{Request, Response};
    let c = s.client().with_access_token(token);
    let Ok(Response::Unauthorized(first)) = c.send(&Request::new(body.clone())) else {
        panic!("expected the UIA flows");
    };
    assert_eq!(
        first.flows,
        [FlowInformation::new(vec!["m.login.password".into()])]
    );
    let mut auth = auth_stage("m.login.password", first.session);
    auth.extra.insert(
        "identifier".into(),
        json!({"type": "m.id.user", "user": "pat"}),
    );
    auth.extra.insert("password".into(), password.into());
    body.auth = Some(auth);
    c.send(&Request::new(body))
}

both!(
    password_change_needs_the_old_password_and_logs_out_other_devices,
    |s| {
        use password_management::change_password::{RequestBody, Response};
        let (_, t1) = s.user("pat");
        let c = s.client();
        let t2 = log_in(&c, &password_login("pat", "correct horse")).access_token;
        let new_password = |p: &str| RequestBody::new(p.into());
        let wrong = change_password(s, &t1, new_password("a better passphrase"), "not it");
        let Ok(Response::Unauthorized(wrong)) = wrong else {
            panic!("{wrong:?}");
        };
        assert_eq!(
            wrong.errcode.as_deref(),
            Some("M_FORBIDDEN"),
            "failed stage reported in the UIA body: {wrong:?}"
        );
        assert_eq!(wrong.completed, Some(vec![]));
        let ok = change_password(s, &t1, new_password("a better passphrase"), "correct horse");
        assert!(matches!(ok, Ok(Response::Ok(_))), "{ok:?}");
        assert!(whoami(s, &t1).is_ok(), "the caller's device stays");
        assert_eq!(
            errcode(whoami(s, &t2)),
            "M_UNKNOWN_TOKEN",
            "logout_devices defaults to true"
        );
        let old = c.error(&password_login("pat", "correct horse"));
        assert_eq!(old.status.as_u16(), 403);
        let t3 = log_in(&c, &password_login("pat", "a better passphrase")).access_token;
        let mut keep_others = new_password("the third one!");
        keep_others.logout_devices = false;
        let keep = change_password(s, &t1, keep_others, "a better passphrase");
        assert!(matches!(keep, Ok(Response::Ok(_))), "{keep:?}");
        assert!(
            whoami(s, &t3).is_ok(),
            "logout_devices: false keeps other devices"
        );
    }
);

both!(uia_sessions_are_bound_to_their_endpoint_and_body, |s| {
    let (_, token) = s.user("pat");
    let reg = s.post(
        REGISTER,
        None,
        json!({"username": "other", "password": "correct horse"}),
    );
    let foreign = reg.body["session"].as_str().unwrap();
    let r = s.post(
        "/_matrix/client/v3/account/password",
        Some(&token),
        json!({"new_password": "a better passphrase", "auth": {"type": "m.login.password", "session": foreign, "user": "pat", "password": "correct horse"}}),
    );
    assert_eq!((r.status, r.errcode()), (401, "M_UNKNOWN"), "{r:?}");
    assert!(
        r.body["session"].is_string() && r.body["session"] != foreign,
        "a new session to continue with: {r:?}"
    );
    assert_eq!(r.body["completed"], json!([]));
    let first = s.post(
        "/_matrix/client/v3/account/password",
        Some(&token),
        json!({"new_password": "a better passphrase"}),
    );
    let r = s.post(
        "/_matrix/client/v3/account/password",
        Some(&token),
        json!({"new_password": "a different one!!", "auth": {"type": "m.login.password", "session": first.body["session"], "user": "pat", "password": "correct horse"}}),
    );
    assert_eq!(
        (r.status, r.errcode()),
        (401, "M_UNKNOWN"),
        "body changed mid-session: {r:?}"
    );
    assert_ne!(r.body["session"], first.body["session"]);
    // The new session is bound to the new body and completes with it.
    let changed = json!({"new_password": "a different one!!", "auth": {"type": "m.login.password", "session": r.body["session"], "user": "pat", "password": "correct horse"}});
    let r = s.post("/_matrix/client/v3/account/password", Some(&token), changed);
    assert_eq!(r.status, 200, "{r:?}");
    let r = s.post(REGISTER, None, json!({"username": "other", "password": "correct horse", "auth": {"type": "m.login.dummy", "session": "uia_made_up"}}));
    assert_eq!((r.status, r.errcode()), (401, "M_UNKNOWN"), "{r:?}");
    assert_eq!(r.body["completed"], json!([]));
    // A session is bound to its user too: another user's password session is
    // not theirs to continue.
    let (_, other) = s.user("quinn");
    let theirs = s.post(
        "/_matrix/client/v3/account/password",
        Some(&other),
        json!({"new_password": "a different one!!"}),
    );
    let r = s.post("/_matrix/client/v3/account/password", Some(&token), json!({"new_password": "a different one!!", "auth": {"type": "m.login.password", "session": theirs.body["session"], "user": "pat", "password": "a different one!!"}}));
    assert_eq!((r.status, r.errcode()), (401, "M_UNKNOWN"), "{r:?}");
    assert_ne!(r.body["session"], theirs.body["session"]);
});

both!(deactivation_is_final, |s| {
    let (user_id, token) = s.user("gone");
    let first = s.post(
        "/_matrix/client/v3/account/deactivate",
        Some(&token),
        json!({}),
    );
    assert_eq!(first.status, 401);
    let r = s.post(
        "/_matrix/client/v3/account/deactivate",
        Some(&token),
        json!({"auth": {"type": "m.login.password", "session": first.body["session"], "user": "gone", "password": "correct horse"}}),
    );
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({"id_server_unbind_result": "success"}))
    );
    assert_eq!(s.get(WHOAMI, Some(&token)).errcode(), "M_UNKNOWN_TOKEN");
    let login = s.login("gone", "correct horse");
    assert_eq!(login.status, 403);
    let again = s.post(
        REGISTER,
        None,
        json!({"username": "gone", "password": "correct horse"}),
    );
    assert_eq!(
        again.errcode(),
        "M_USER_IN_USE",
        "{user_id} is never reusable"
    );
});

both!(openid_tokens_work_only_at_userinfo, |s| {
    let (user_id, token) = s.user("oid");
    let (other, _) = s.user("eve");
    let path = format!("/_matrix/client/v3/user/{user_id}/openid/request_token");
    let r = s.post(&path, Some(&token), json!({}));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (r.body["token_type"].as_str(), r.body["expires_in"].as_i64()),
        (Some("Bearer"), Some(3600))
    );
    assert_eq!(r.body["matrix_server_name"], "test.local");
    let oid = r.body["access_token"].as_str().unwrap();
    let info = s.get(
        &format!("/_matrix/federation/v1/openid/userinfo?access_token={oid}"),
        None,
    );
    assert_eq!((info.status, &info.body), (200, &json!({"sub": user_id})));
    assert_eq!(
        s.get(WHOAMI, Some(oid)).errcode(),
        "M_UNKNOWN_TOKEN",
        "not an access token"
    );
    let encoded = path.replace('@', "%40").replace(':', "%3A");
    assert_eq!(
        s.post(&encoded, Some(&token), json!({})).status,
        200,
        "percent-encoded user ID"
    );
    let r = s.post(
        &format!("/_matrix/client/v3/user/{other}/openid/request_token"),
        Some(&token),
        json!({}),
    );
    assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    let unknown = s.get(
        "/_matrix/federation/v1/openid/userinfo?access_token=nope",
        None,
    );
    assert_eq!(
        (unknown.status, unknown.errcode()),
        (401, "M_UNKNOWN_TOKEN")
    );
});

both!(login_tokens_from_get_token_work_once, |s| {
    let (_, token) = s.user("qr");
    let first = s.post(
        "/_matrix/client/v1/login/get_token",
        Some(&token),
        json!({}),
    );
    assert_eq!(first.status, 401);
    let r = s.post(
        "/_matrix/client/v1/login/get_token",
        Some(&token),
        json!({"auth": {"type": "m.login.password", "session": first.body["session"], "user": "qr", "password": "correct horse"}}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let lt = r.body["login_token"].as_str().unwrap();
    let login = s.post(
        "/_matrix/client/v3/login",
        None,
        json!({"type": "m.login.token", "token": lt}),
    );
    assert_eq!(login.status, 200, "{login:?}");
    assert_eq!(login.body["user_id"], "@qr:test.local");
    let again = s.post(
        "/_matrix/client/v3/login",
        None,
        json!({"type": "m.login.token", "token": lt}),
    );
    assert_eq!((again.status, again.errcode()), (403, "M_FORBIDDEN"));
});

both!(
    threepid_endpoints_answer_without_email_or_sms_delivery,
    |s| {
        let (_, token) = s.user("tp");
        for path in [
            "/_matrix/client/v3/register/email/requestToken",
            "/_matrix/client/v3/account/password/email/requestToken",
            "/_matrix/client/v3/account/3pid/email/requestToken",
        ] {
            let r = s.post(
                path,
                None,
                json!({"client_secret": "s3cret", "email": "a@example.org", "send_attempt": 1}),
            );
            assert_eq!(
                (r.status, r.errcode()),
                (400, "M_THREEPID_MEDIUM_NOT_SUPPORTED"),
                "{path}"
            );
        }
        let r = s.post(
        "/_matrix/client/v3/register/msisdn/requestToken",
        None,
        json!({"client_secret": "s3cret", "country": "GB", "phone_number": "07700900123", "send_attempt": 1}),
    );
        assert_eq!(r.errcode(), "M_THREEPID_MEDIUM_NOT_SUPPORTED");
        let r = s.get("/_matrix/client/v3/account/3pid", Some(&token));
        assert_eq!((r.status, &r.body), (200, &json!({"threepids": []})));
        let caps = s.get("/_matrix/client/v3/capabilities", Some(&token));
        assert_eq!(
            caps.body["capabilities"]["m.3pid_changes"]["enabled"],
            false
        );
        assert_eq!(
            caps.body["capabilities"]["m.change_password"]["enabled"],
            true
        );
    }
);

both!(
    discovery_endpoints_describe_the_server,
    "public_baseurl = \"https://matrix.test.local/\"\n",
    |s| {
        // Exactly the generated API's versions: from v1.1 up to the release
        // api/upstream.yaml pins.
        let v = s.get("/_matrix/client/versions", None);
        assert_eq!(v.body["versions"], json!(matrix_api::SUPPORTED_VERSIONS));
        let versions = v.body["versions"].as_array().unwrap();
        assert_eq!(versions.first(), Some(&json!("v1.1")));
        assert_eq!(versions.last(), Some(&json!(matrix_api::MATRIX_VERSION)));
        let wk = s.get("/.well-known/matrix/client", None);
        assert_eq!(
            wk.body,
            json!({"m.homeserver": {"base_url": "https://matrix.test.local/"}})
        );
        assert_eq!(wk.headers["access-control-allow-origin"], "*");
    }
);

both!(
    rate_limits_answer_429_with_retry_after,
    "[rate_limits]\nenabled = true\n[rate_limits.login_address]\nper_second = 0.01\nburst = 2\n",
    |s| {
        for _ in 0..2 {
            assert_eq!(s.login("nobody", "x").status, 403);
        }
        let r = s.login("nobody", "x");
        assert_eq!((r.status, r.errcode()), (429, "M_LIMIT_EXCEEDED"));
        // One token at 0.01/s: up to 100 s, minus the moments the test took.
        let ms = r.body["retry_after_ms"].as_u64().unwrap();
        assert!((90_000..=100_000).contains(&ms), "{ms}");
        assert_eq!(
            r.headers["retry-after"].to_str().unwrap(),
            ms.div_ceil(1000).to_string()
        );
    }
);

both!(
    registration_tokens_gate_token_mode,
    "[registration]\nmode = \"token\"\n",
    |s| {
        let out = s.cli(&["token", "create", "--token", "invite-1", "--uses", "1"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let validity = |t: &str| {
            s.get(
                &format!(
                    "/_matrix/client/v1/register/m.login.registration_token/validity?token={t}"
                ),
                None,
            )
        };
        assert_eq!(validity("invite-1").body["valid"], true);
        assert_eq!(validity("bogus").body["valid"], false);
        let first = s.post(
            REGISTER,
            None,
            json!({"username": "invited", "password": "correct horse"}),
        );
        assert_eq!(
            first.body["flows"],
            json!([{"stages": ["m.login.registration_token"]}])
        );
        let session = first.body["session"].as_str().unwrap();
        let dummy = s.post(REGISTER, None, json!({"username": "invited", "password": "correct horse", "auth": {"type": "m.login.dummy", "session": session}}));
        assert_eq!(dummy.status, 401, "dummy is not offered in token mode");
        let bad = s.post(REGISTER, None, json!({"username": "invited", "password": "correct horse", "auth": {"type": "m.login.registration_token", "token": "bogus", "session": session}}));
        assert_eq!(
            (bad.status, bad.body["errcode"].as_str()),
            (401, Some("M_FORBIDDEN"))
        );
        let ok = s.post(REGISTER, None, json!({"username": "invited", "password": "correct horse", "auth": {"type": "m.login.registration_token", "token": "invite-1", "session": session}}));
        assert_eq!(ok.status, 200, "{ok:?}");
        assert_eq!(validity("invite-1").body["valid"], false, "one use only");
    }
);

both!(
    disabled_registration_is_forbidden,
    "[registration]\nmode = \"disabled\"\n",
    |s| {
        let r = s.post(
            REGISTER,
            None,
            json!({"username": "x", "password": "correct horse"}),
        );
        assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    }
);

both!(admins_lock_suspend_and_look_up_users, |s| {
    assert!(s
        .cli(&[
            "user",
            "create",
            "root",
            "--password",
            "root password",
            "--admin"
        ])
        .status
        .success());
    let admin = s.login("root", "root password").body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (user_id, token) = s.user("sam");
    let other_device = s.login("sam", "correct horse").body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let lock = format!("/_matrix/client/v1/admin/lock/{user_id}");
    let r = s.put(&lock, Some(&token), json!({"locked": true}));
    assert_eq!(
        (r.status, r.errcode()),
        (403, "M_FORBIDDEN"),
        "not an admin"
    );
    assert_eq!(
        s.put(&lock, Some(&admin), json!({"locked": true})).body,
        json!({"locked": true})
    );
    let locked = s.get(WHOAMI, Some(&token));
    assert_eq!(
        (locked.status, locked.errcode(), &locked.body["soft_logout"]),
        (401, "M_USER_LOCKED", &json!(true))
    );
    assert_eq!(s.get(&lock, Some(&admin)).body, json!({"locked": true}));
    // Locked, but still allowed to log out (the generated METADATA.lock_exempt).
    let out = s.request(
        "POST",
        "/_matrix/client/v3/logout",
        Some(&other_device),
        None,
    );
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(
        s.get(WHOAMI, Some(&other_device)).errcode(),
        "M_UNKNOWN_TOKEN"
    );
    s.put(&lock, Some(&admin), json!({"locked": false}));
    assert_eq!(s.get(WHOAMI, Some(&token)).status, 200);
    let suspend = format!("/_matrix/client/v1/admin/suspend/{user_id}");
    assert_eq!(
        s.put(&suspend, Some(&admin), json!({"suspended": true}))
            .body,
        json!({"suspended": true})
    );
    // Suspended users may add contact addresses but not remove them (the spec).
    let r = s.post(
        "/_matrix/client/v3/account/3pid/delete",
        Some(&token),
        json!({"medium": "email", "address": "sam@example.org"}),
    );
    assert_eq!((r.status, r.errcode()), (403, "M_USER_SUSPENDED"));
    let r = s.post(
        "/_matrix/client/v3/account/3pid/add",
        Some(&token),
        json!({"client_secret": "x", "sid": "y"}),
    );
    assert_eq!(r.status, 401, "adding is allowed: the UIA challenge: {r:?}");
    assert_eq!(
        s.put(&suspend, Some(&admin), json!({"suspended": false}))
            .body,
        json!({"suspended": false})
    );
    let r = s.post(
        "/_matrix/client/v3/account/3pid/delete",
        Some(&token),
        json!({"medium": "email", "address": "sam@example.org"}),
    );
    assert_eq!(r.status, 200, "unsuspended: {r:?}");
    let r = s.get(
        "/_matrix/client/v1/admin/lock/@someone:elsewhere.org",
        Some(&admin),
    );
    assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"));
    let r = s.get(
        "/_matrix/client/v1/admin/lock/@ghost:test.local",
        Some(&admin),
    );
    assert_eq!((r.status, r.errcode()), (404, "M_NOT_FOUND"));
    let whois = s.get(
        &format!("/_matrix/client/v3/admin/whois/{user_id}"),
        Some(&admin),
    );
    assert_eq!(whois.status, 200, "{whois:?}");
    assert_eq!(whois.body["devices"].as_object().unwrap().len(), 1);
});

both!(
    fifty_concurrent_registrations_of_one_name_create_one_account,
    |s| {
        // Each client gets its own UIA session first, then all complete at once.
        let sessions: Vec<String> = (0..50)
            .map(|_| {
                s.post(
                    REGISTER,
                    None,
                    json!({"username": "race", "password": "correct horse"}),
                )
                .body["session"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = sessions
            .iter()
            .map(|session| {
                scope.spawn(move || {
                    s.post(REGISTER, None, json!({"username": "race", "password": "correct horse", "auth": {"type": "m.login.dummy", "session": session}}))
                        .status
                })
            })
            .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 400),
            "{statuses:?}"
        );
    }
);

#[test]
fn postgres_is_skipped_only_outside_ci() {
    // Documents the rule the harness applies: in CI an unreachable PostgreSQL
    // fails the suite instead of skipping it.
    if matrix_tests::skip::in_ci() {
        assert!(
            TestServer::start(Db::Postgres, "").is_some(),
            "CI must have PostgreSQL"
        );
    }
}

/// Every operation of `api/`, as `(operation ID, method, path with parameters
/// filled in, takes a JSON body)`, read from the spec with the generator's own
/// loader.
fn all_operations() -> Vec<(String, String, String, bool)> {
    let api_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api");
    let files = matrix_codegen::discover(&api_dir).unwrap();
    let api = matrix_codegen::lower::lower(api_dir.parent().unwrap(), &files).unwrap();
    let mut ops = Vec::new();
    for file in api.files.iter().filter(|f| f.served) {
        for op in &file.operations {
            let path: Vec<String> = op
                .path
                .split('/')
                .map(|seg| {
                    if seg.starts_with('{') {
                        "@bad:test.local".to_string()
                    } else {
                        seg.to_string()
                    }
                })
                .collect();
            let json_body = matches!(
                op.body.as_ref().map(|b| &b.content),
                Some(matrix_codegen::ir::Content::Json(_))
            );
            ops.push((
                op.operation_id.clone(),
                op.method.clone(),
                format!("{}{}", file.base_path, path.join("/")),
                json_body,
            ));
        }
    }
    ops
}

/// What each operation of `api/` answers to each kind of bad input, sent with a
/// valid access token: `(status, errcode)`, with `"UIA"` for an
/// interactive-auth challenge. Malformed JSON, arrays and oversized bodies are
/// the router's (the same for every operation that reads a JSON body); a body
/// that parses but says nothing useful gets the operation's own answer.
fn expected_bad_input(operation: &str, case: &str, json_body: bool) -> (u16, &'static str) {
    // Served only to a delegating homeserver (`[homeserver] kind =
    // "synapse"`), which this server has not: unknown endpoints, whatever
    // the request.
    if matches!(operation, "getOpenIdConfiguration" | "introspectToken") {
        return (404, "M_UNRECOGNIZED");
    }
    let (status, code) = expected_matrix_answer(operation, case, json_body);
    // The OAuth 2.0 endpoints answer in OAuth's envelope: the router's own
    // errors become the OAuth code of their status.
    let oauth = matches!(
        operation,
        "registerClient"
            | "authorize"
            | "requestDeviceAuthorization"
            | "requestToken"
            | "revokeToken"
    );
    match code {
        c if !oauth || !c.starts_with("M_") => (status, code),
        _ => (status, "invalid_request"),
    }
}

/// [`expected_bad_input`] as a Matrix error code.
fn expected_matrix_answer(operation: &str, case: &str, json_body: bool) -> (u16, &'static str) {
    match case {
        "huge" => return (413, "M_TOO_LARGE"),
        "malformed" | "invalid utf-8" if json_body => return (400, "M_NOT_JSON"),
        "not an object" if json_body => return (400, "M_BAD_JSON"),
        _ => {}
    }
    // Each bad value sits under a key some operation reads (`auth: 5`,
    // `client_secret: 3`, `locked: "yes"`, ...).
    let wrong_types = json_body && case == "wrong types";
    match operation {
        // No body, or one whose fields are all optional and none of the bad keys.
        "getVersions" | "getLoginFlows" | "getCapabilities" | "getTokenOwner"
        | "getAccount3PIDs" | "logout" | "logout_all" => (200, ""),
        // This server's own pages: nothing to parse.
        "showValidatedPage" | "showLoginFallback" => (200, ""),
        // The path names no file.
        "getStaticFile" => (404, "M_NOT_FOUND"),
        // The fallback page's query (session) was not given.
        "showAuthFallback" => (400, "M_MISSING_PARAM"),
        // The OAuth 2.0 API: the metadata takes nothing; the authorisation
        // endpoint shows a page for a request without a client; the form
        // endpoints and pages miss their required fields (`grant_type`,
        // `token`, `session`, ...).
        "getAuthMetadata" | "getAuthorizationServerMetadata" => (200, ""),
        "authorize" => (400, ""),
        // Its query (redirectUrl) was not given.
        "redirectToSSO" => (400, "M_MISSING_PARAM"),
        "requestToken" | "revokeToken" => (400, "M_MISSING_PARAM"),
        "requestDeviceAuthorization" => (400, "M_MISSING_PARAM"),
        "showLoginPage"
        | "showRegistrationPage"
        | "showRegistrationEmailPage"
        | "showConsentPage" => (400, "M_MISSING_PARAM"),
        "submitLogin" | "submitRegistration" | "submitRegistrationEmail" | "submitConsent" => {
            (400, "M_MISSING_PARAM")
        }
        // The account management pages: without a browser session the page
        // sends the browser to the login page (the redirect is followed),
        // which takes no required parameter; the forms miss their fields.
        // The waiting page of an address to add says, without a session, to
        // continue where it started.
        "showAccountPage" | "showAccountLoginPage" | "showThreepidConfirmationPage" => (200, ""),
        "submitAccountLogin"
        | "submitAccountLogout"
        | "submitPasswordChange"
        | "submitDeviceDeletion"
        | "submitThreepidAddition"
        | "submitThreepidConfirmation"
        | "submitThreepidRemoval"
        | "submitAccountDeactivation"
        | "submitCrossSigningReset"
        | "submitDisplayNameChange" => (400, "M_MISSING_PARAM"),
        // The device grant's pages: the code page and the done page take
        // nothing required; the others miss `session` or their form fields.
        "showDeviceCodePage" | "showDeviceDonePage" => (200, ""),
        "showDeviceConsentPage" => (400, "M_MISSING_PARAM"),
        "submitDeviceCode" | "submitDeviceConsent" => (400, "M_MISSING_PARAM"),
        // Parses (the bad keys are no client metadata), but has no client_uri.
        "registerClient" if case == "wrong types" || case == "unknown fields" => {
            (400, "invalid_client_metadata")
        }
        // A form body: none of the bodies sent has its fields.
        "submitAuthFallback" => (400, "M_MISSING_PARAM"),
        // The page's query (sid, client_secret, token) was not given.
        "showValidationPage" => (400, "M_MISSING_PARAM"),
        "getWellknown" => (404, "M_NOT_FOUND"), // no public_baseurl configured
        "requestOpenIdToken" => (403, "M_FORBIDDEN"), // the path names another user
        // Its one required field is none of the bad keys.
        "post3PIDs" => (400, "M_MISSING_PARAM"),
        "getWhoIs" => (403, "M_FORBIDDEN"), // not an admin
        "getAdminLockUser" | "getAdminSuspendUser" => (403, "M_FORBIDDEN"),
        "exchangeOpenIdToken" => (400, "M_MISSING_PARAM"), // no access_token query
        "checkUsernameAvailability" => (400, "M_MISSING_PARAM"),
        "registrationTokenValidity" => (400, "M_MISSING_PARAM"),
        _ if wrong_types => (400, "M_BAD_JSON"),
        // Bodies with required fields, given none.
        "setAdminLockUser"
        | "setAdminSuspendUser"
        | "changePassword"
        | "refresh"
        | "add3PID"
        | "bind3PID"
        | "delete3pidFromAccount"
        | "unbind3pidFromAccount"
        | "login"
        | "requestTokenTo3PIDEmail"
        | "requestTokenTo3PIDMSISDN"
        | "requestTokenToRegisterEmail"
        | "requestTokenToRegisterMSISDN"
        | "requestTokenToResetPasswordEmail"
        | "requestTokenToResetPasswordMSISDN"
        | "submitValidationToken" => (400, "M_MISSING_PARAM"),
        // A form body: none of the bodies sent has its fields.
        "confirmValidation" => (400, "M_MISSING_PARAM"),
        // Everything optional: the interactive-auth challenge comes first.
        "register" | "deactivateAccount" | "generateLoginToken" => (401, "UIA"),
        _ => (0, "no expectation written for this operation"),
    }
}

both!(
    bad_input_on_every_endpoint_gets_its_documented_answer,
    |s| {
        s.user("fuzz");
        let big = vec![b'{'; 70 * 1024];
        let cases: [(&str, &[u8]); 6] = [
            ("malformed", b"{\"a\": "),
            ("invalid utf-8", b"{\"username\": \"\xff\xfe\"}"),
            ("not an object", b"[1, 2, 3]"),
            (
                "wrong types",
                b"{\"username\": 5, \"new_password\": [], \"type\": {}, \"locked\": \"yes\", \"suspended\": 0, \"refresh_token\": 1, \"erase\": \"no\", \"auth\": 5, \"client_secret\": 3, \"medium\": 1, \"token\": false}",
            ),
            ("unknown fields", b"{\"made_up\": true}"),
            ("huge", &big),
        ];
        let ops = all_operations();
        assert_eq!(ops.len(), 78);
        let mut wrong = Vec::new();
        for (operation, method, path, json_body) in ops {
            for (what, body) in cases {
                // A fresh token per request: some (logout) revoke it.
                let token = s.login("fuzz", "correct horse").body["access_token"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let r = s.request(&method, &path, Some(&token), Some(body));
                let uia = r.status == 401 && r.body["flows"].is_array();
                // Matrix's errcode, or OAuth's error on the OAuth endpoints.
                let code = match r.errcode() {
                    "" => r.body["error"].as_str().unwrap_or(""),
                    errcode => errcode,
                };
                let got = (r.status, if uia { "UIA" } else { code });
                let want = expected_bad_input(&operation, what, json_body);
                if got != want {
                    wrong.push(format!(
                        "{operation} ({method} {path}) with {what}: want {want:?}, got {r:?}"
                    ));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        assert_eq!(
            s.get("/_matrix/client/versions", None).status,
            200,
            "still serving"
        );
        assert!(!s.stderr().contains("panicked"), "{}", s.stderr());
    }
);

/// kill -9 while clients register: every registration that got a 200 survives
/// the restart and can log in.
fn crash_during_registrations(db: Db) {
    let Some(mut s) = TestServer::start(db, "") else {
        return;
    };
    let done = std::sync::Mutex::new(Vec::<String>::new());
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Every loop here ends by this time, whatever the server does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    std::thread::scope(|scope| {
        for worker in 0..4 {
            let (s, done, stop) = (&s, &done, &stop);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && std::time::Instant::now() < deadline
                {
                    n += 1;
                    let name = format!("crash{worker}x{n}");
                    // A failed request means the server is gone: this worker is done.
                    let body = json!({"username": name, "password": "correct horse"}).to_string();
                    let Ok(first) = s.try_request("POST", REGISTER, None, Some(body.as_bytes())) else { return };
                    let Some(session) = first.body["session"].as_str() else { return };
                    let auth = json!({"username": name, "password": "correct horse", "auth": {"type": "m.login.dummy", "session": session}});
                    let Ok(r) = s.try_request("POST", REGISTER, None, Some(auth.to_string().as_bytes())) else { return };
                    if r.status == 200 {
                        done.lock().unwrap().push(name);
                    }
                }
            });
        }
        // Let registrations flow, then kill the server in the middle of them.
        while done.lock().unwrap().len() < 40 {
            assert!(
                std::time::Instant::now() < deadline,
                "registrations did not flow"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Killed by PID: the workers keep their shared borrow of `s`.
        let pid = s.pid();
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    s.restart();
    let acknowledged = done.into_inner().unwrap();
    assert!(acknowledged.len() >= 40);
    for name in &acknowledged {
        let r = s.login(name, "correct horse");
        assert_eq!(
            r.status, 200,
            "{name} was acknowledged but is gone after the crash: {r:?}"
        );
    }
}

#[test]
fn acknowledged_registrations_survive_kill_9_sqlite() {
    crash_during_registrations(Db::Sqlite);
}

#[test]
fn acknowledged_registrations_survive_kill_9_postgres() {
    crash_during_registrations(Db::Postgres);
}

fn stdout(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

both!(admin_commands_manage_users_and_tokens, |s| {
    let created = stdout(&s.cli(&["user", "create", "carol"]));
    let password = created
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("generated password printed");
    assert_eq!(s.login("carol", password).status, 200);
    let list = stdout(&s.cli(&["user", "list"]));
    assert!(list.contains("@carol:test.local"), "{list}");
    stdout(&s.cli(&[
        "user",
        "reset-password",
        "@carol:test.local",
        "--password",
        "a new password",
    ]));
    assert_eq!(s.login("carol", password).status, 403);
    assert_eq!(s.login("carol", "a new password").status, 200);
    stdout(&s.cli(&["user", "lock", "carol"]));
    assert!(stdout(&s.cli(&["user", "list"])).contains("locked"));
    assert_eq!(
        s.login("carol", "a new password").errcode(),
        "M_USER_LOCKED"
    );
    stdout(&s.cli(&["user", "unlock", "carol"]));
    stdout(&s.cli(&["user", "suspend", "carol"]));
    stdout(&s.cli(&["user", "unsuspend", "carol"]));
    stdout(&s.cli(&["user", "deactivate", "carol"]));
    assert_eq!(
        s.login("carol", "a new password").errcode(),
        "M_USER_DEACTIVATED"
    );
    assert_eq!(s.login("carol", "a guess").errcode(), "M_FORBIDDEN");
    let dup = s.cli(&["user", "create", "carol", "--password", "whatever pw"]);
    assert_eq!(dup.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&dup.stderr).trim(),
        "error: @carol:test.local: already exists"
    );

    // Addresses, bound without validation by the operator.
    s.user("dina");
    stdout(&s.cli(&["user", "add-email", "dina", "Dina@Example.ORG"]));
    assert_eq!(
        stdout(&s.cli(&["user", "threepids", "dina"])),
        "email\tdina@example.org\n"
    );
    let taken = s.cli(&["user", "add-email", "carol", "dina@example.org"]);
    assert_eq!(
        String::from_utf8_lossy(&taken.stderr).trim(),
        "error: dina@example.org: already bound to @dina:test.local"
    );
    let bad = s.cli(&["user", "add-email", "dina", "not an address"]);
    assert_eq!(bad.status.code(), Some(1));
    let r = s.post(
        "/_matrix/client/v3/login",
        None,
        json!({"type": "m.login.password", "password": "correct horse",
               "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "dina@example.org"}}),
    );
    assert_eq!(r.body["user_id"], "@dina:test.local", "{r:?}");
    stdout(&s.cli(&["user", "remove-email", "dina", "dina@example.org"]));
    assert_eq!(stdout(&s.cli(&["user", "threepids", "dina"])), "");
    assert_eq!(
        s.cli(&["user", "remove-email", "dina", "dina@example.org"])
            .status
            .code(),
        Some(1)
    );
    stdout(&s.cli(&["user", "add-phone", "dina", "GB", "07400 123456"]));
    assert_eq!(
        stdout(&s.cli(&["user", "threepids", "dina"])),
        "msisdn\t447400123456\n"
    );
    let r = s.post(
        "/_matrix/client/v3/login",
        None,
        json!({"type": "m.login.password", "password": "correct horse",
               "identifier": {"type": "m.id.phone", "country": "GB", "phone": "+447400123456"}}),
    );
    assert_eq!(r.body["user_id"], "@dina:test.local", "{r:?}");
    assert_eq!(
        s.cli(&["user", "add-phone", "dina", "GB", "123"])
            .status
            .code(),
        Some(1)
    );
    stdout(&s.cli(&["user", "remove-phone", "dina", "GB", "07400123456"]));
    assert_eq!(stdout(&s.cli(&["user", "threepids", "dina"])), "");

    let token = stdout(&s.cli(&["token", "create", "--uses", "2"]))
        .trim()
        .to_string();
    assert!(stdout(&s.cli(&["token", "list"])).contains(&format!("{token}\tused 0 of 2\tvalid")));
    stdout(&s.cli(&["token", "revoke", &token]));
    assert!(!stdout(&s.cli(&["token", "list"])).contains(&token));
    let missing = s.cli(&["token", "revoke", &token]);
    assert_eq!(missing.status.code(), Some(1));
});

#[test]
fn bad_configuration_is_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, expected) in [
        ("bind = \"nowhere\"\n", "line 1"),
        (
            "[registration]\nmode = \"sometimes\"\n",
            "unknown variant `sometimes`",
        ),
        ("databse = \"sqlite://x\"\n", "unknown field `databse`"),
        (
            "database = \"mysql://x\"\n",
            "database: `mysql://x` must start with sqlite:// or postgres://",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(matrix_tests::server::binary())
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("bad.toml") && stderr.contains(expected),
            "{text}: {stderr}"
        );
    }
    let out = std::process::Command::new(matrix_tests::server::binary())
        .args(["--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: /nonexistent.toml:"));
}

#[test]
fn generate_config_writes_the_commented_defaults_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("generated.toml");
    let out = std::process::Command::new(matrix_tests::server::binary())
        .arg("generate-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("# ")
            && text.contains("server_name = \"localhost\"")
            && text.contains("sqlite://data/homeserver.db")
    );
    // Point the database somewhere temporary and run a command against it.
    let text = text.replace(
        "sqlite://data/homeserver.db",
        &format!("sqlite://{}/db.sqlite", dir.path().display()),
    );
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(matrix_tests::server::binary())
        .arg("--config")
        .arg(&path)
        .args(["user", "list"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Several processes on one PostgreSQL database, as behind a load balancer: any
/// process continues what another started, and revocations reach every process
/// within `auth_cache_ms`.
#[test]
fn processes_sharing_postgres_serve_any_request() {
    let Some(a) = TestServer::start(Db::Postgres, "auth_cache_ms = 500\n") else {
        return;
    };
    let b = a.another_process();
    let first = a.post(
        REGISTER,
        None,
        json!({"username": "shared", "password": "correct horse"}),
    );
    let session = first.body["session"].as_str().unwrap();
    let done = b.post(REGISTER, None, json!({"username": "shared", "password": "correct horse", "auth": {"type": "m.login.dummy", "session": session}}));
    assert_eq!(
        done.status, 200,
        "UIA session started on A, completed on B: {done:?}"
    );
    let token = done.body["access_token"].as_str().unwrap();
    assert_eq!(a.get(WHOAMI, Some(token)).status, 200);
    assert_eq!(
        b.get(WHOAMI, Some(token)).status,
        200,
        "B has it cached now"
    );
    assert_eq!(
        a.request("POST", "/_matrix/client/v3/logout", Some(token), None)
            .status,
        200
    );
    assert_eq!(
        a.get(WHOAMI, Some(token)).errcode(),
        "M_UNKNOWN_TOKEN",
        "at once on the process that revoked it"
    );
    // Within auth_cache_ms elsewhere (polled, with room for a slow machine).
    eventually("B sees the logout", Duration::from_secs(5), || {
        b.get(WHOAMI, Some(token)).errcode() == "M_UNKNOWN_TOKEN"
    });
}

both!(
    openid_login_and_interactive_auth_tokens_expire,
    "[tokens]\nopenid_lifetime_secs = 1\nlogin_token_lifetime_secs = 1\nuia_session_lifetime_secs = 1\n",
    |s| {
        let (user_id, token) = s.user("tick");
        // Made in this order, so once the OpenID token (made last) has expired,
        // the others have too, and each is tried once, after its expiry.
        let first = s.post("/_matrix/client/v1/login/get_token", Some(&token), json!({}));
        let r = s.post(
            "/_matrix/client/v1/login/get_token",
            Some(&token),
            json!({"auth": {"type": "m.login.password", "session": first.body["session"], "user": "tick", "password": "correct horse"}}),
        );
        let lt = r.body["login_token"].as_str().unwrap().to_string();
        let pending = s.post(
            "/_matrix/client/v3/account/password",
            Some(&token),
            json!({"new_password": "a better passphrase"}),
        );
        let r = s.post(
            &format!("/_matrix/client/v3/user/{user_id}/openid/request_token"),
            Some(&token),
            json!({}),
        );
        let oid = r.body["access_token"].as_str().unwrap().to_string();
        let userinfo = format!("/_matrix/federation/v1/openid/userinfo?access_token={oid}");
        assert_eq!(s.get(&userinfo, None).status, 200);
        eventually("the OpenID token expires", Duration::from_secs(10), || {
            s.get(&userinfo, None).status == 401
        });
        let r = s.post(
            "/_matrix/client/v3/login",
            None,
            json!({"type": "m.login.token", "token": lt}),
        );
        assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"), "login token: {r:?}");
        let r = s.post(
            "/_matrix/client/v3/account/password",
            Some(&token),
            json!({"new_password": "a better passphrase", "auth": {"type": "m.login.password", "session": pending.body["session"], "user": "tick", "password": "correct horse"}}),
        );
        assert_eq!((r.status, r.errcode()), (401, "M_UNKNOWN"), "UIA session: {r:?}");
    }
);
