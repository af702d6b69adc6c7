//! Email validation by the server itself, end to end: the server sends over
//! SMTP to a real SMTP server process (`aiosmtpd`, see `support/smtp.rs`), the
//! test reads the delivered message, and follows its link or submits its
//! token. On SQLite and PostgreSQL.

use std::time::Duration;

use matrix_api::account::validation::submit_validation_token;
use matrix_api::client_server::{
    administrative_contact::{add_3pid, get_account_3pids, request_token_to_3pid_email},
    login, password_management,
    registration::{self, request_token_to_register_email},
};
use matrix_api::runtime::{ClientError, MatrixError};
use matrix_api::types::{AuthData, RequestEmailValidation, RequestTokenResponse, ValidationToken};
use matrix_tests::server::{auth_stage, ApiClient, Db, TestServer};
use matrix_tests::smtp::{Message, Mode, SmtpSink};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// Runs `body` against a server whose `[email]` sends to a fresh sink (its
/// mode `mode`); `extra` adds `[email]` keys, then any other sections.
fn with_mail(db: Db, mode: Mode, extra: &str, body: impl Fn(&TestServer, &SmtpSink)) {
    let Some(sink) = SmtpSink::start(mode) else {
        return;
    };
    let config = format!(
        "[email]\nsmtp_url = \"smtp://127.0.0.1:{}\"\nfrom = \"Test <noreply@test.local>\"\n{extra}",
        sink.port()
    );
    let Some(s) = TestServer::start(db, &config) else {
        return;
    };
    body(&s, &sink);
}

macro_rules! mail_test {
    ($name:ident, $extra:expr, $body:expr) => {
        mail_test!($name, Mode::Accept, $extra, $body);
    };
    ($name:ident, $mode:expr, $extra:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn sqlite() {
                with_mail(Db::Sqlite, $mode, $extra, $body)
            }
            #[test]
            fn postgres() {
                with_mail(Db::Postgres, $mode, $extra, $body)
            }
        }
    };
}

fn email_request(secret: &str, email: &str, attempt: i64) -> RequestEmailValidation {
    RequestEmailValidation::new(secret.into(), email.into(), attempt)
}

/// The link and the token a validation message carries (its text part).
fn link_and_token(m: &Message) -> (String, String) {
    let text = m.text_body.as_deref().expect("a text part");
    let link = m
        .text_line_containing("/_account/v1/3pid/validate?")
        .expect("a validation link");
    let token = link
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .expect("a token in the link")
        .to_string();
    assert!(text.contains(&token), "the text shows the code too");
    (link, token)
}

fn submit(c: &ApiClient, sid: &str, secret: &str, token: &str) -> Result<(), MatrixError> {
    let body = ValidationToken::new(sid.into(), secret.into(), token.into());
    match c.send(&submit_validation_token::Request::new(body)) {
        Ok(submit_validation_token::Response::Ok(ok)) => {
            assert!(ok.success);
            Ok(())
        }
        Err(ClientError::Api(e)) => Err(e),
        Err(e) => panic!("{e}"),
    }
}

fn request_register_token(
    c: &ApiClient,
    secret: &str,
    email: &str,
    attempt: i64,
) -> Result<RequestTokenResponse, MatrixError> {
    let req = request_token_to_register_email::Request::new(email_request(secret, email, attempt));
    match c.send(&req) {
        Ok(request_token_to_register_email::Response::Ok(r)) => Ok(r),
        Err(ClientError::Api(e)) => Err(e),
        Err(e) => panic!("{e}"),
    }
}

fn threepid_creds(stage: &str, uia_session: Option<String>, sid: &str, secret: &str) -> AuthData {
    let mut auth = auth_stage(stage, uia_session);
    auth.extra.insert(
        "threepid_creds".into(),
        json!({"sid": sid, "client_secret": secret}),
    );
    auth
}

/// Registers `user` with `email` through the email flow; returns the access token.
fn register_with_email(s: &TestServer, sink: &SmtpSink, user: &str, email: &str) -> String {
    let c = s.client();
    let secret = format!("secret-{user}");
    let r = request_register_token(&c, &secret, email, 1).unwrap();
    let m = sink.wait_for_message(WAIT);
    assert_eq!(m.to, [email.to_lowercase()]);
    let (_, token) = link_and_token(&m);
    submit(&c, &r.sid, &secret, &token).unwrap();
    let mut body = registration::register::RequestBody::new();
    body.username = Some(user.into());
    body.password = Some("correct horse".into());
    let uia = match c.send(&registration::register::Request::new(body.clone())) {
        Ok(registration::register::Response::Unauthorized(uia)) => uia,
        other => panic!("{other:?}"),
    };
    assert!(uia
        .flows
        .iter()
        .any(|f| f.stages == ["m.login.email.identity"]));
    body.auth = Some(threepid_creds(
        "m.login.email.identity",
        uia.session,
        &r.sid,
        &secret,
    ));
    match c.send(&registration::register::Request::new(body)) {
        Ok(registration::register::Response::Ok(done)) => done.access_token.expect("logged in"),
        other => panic!("{other:?}"),
    }
}

mail_test!(
    registration_with_a_validated_email_binds_it_and_logs_in_by_it,
    "",
    |s, sink| {
        let token = register_with_email(s, sink, "erin", "Erin@Example.ORG");
        let m = &sink.messages()[0];
        assert_eq!(m.from, "noreply@test.local");
        assert!(
            m.subject.as_deref().unwrap().contains("test.local"),
            "{:?}",
            m.subject
        );
        // The HTML part links to the same page (its `&` and `/` escaped as HTML).
        let (link, _) = link_and_token(m);
        let html = m.html_body.as_deref().unwrap();
        let unescaped = html.replace("&#x2f;", "/").replace("&amp;", "&");
        assert!(unescaped.contains(&format!("href=\"{link}\"")), "{html}");
        // The address is the account's, normalised.
        let c = s.client().with_access_token(&token);
        let list = match c.send(&get_account_3pids::Request::new()) {
            Ok(get_account_3pids::Response::Ok(b)) => b.threepids.unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].address, "erin@example.org");
        // Log in by the address (any case), with m.id.thirdparty.
        let r = s.post(
        "/_matrix/client/v3/login",
        None,
        json!({"type": "m.login.password", "password": "correct horse",
               "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "ERIN@example.org"}}),
    );
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body["user_id"], "@erin:test.local");
        // The address is taken now: another registration with it is refused.
        let e = request_register_token(&s.client(), "other", "erin@example.org", 1).unwrap_err();
        assert_eq!(e.errcode, "M_THREEPID_IN_USE");
        assert_eq!(sink.messages().len(), 1, "nothing more was sent");
    }
);

mail_test!(
    the_same_send_attempt_sends_once_and_a_larger_one_again,
    "",
    |s, sink| {
        let c = s.client();
        let first = request_register_token(&c, "idem", "ann@example.org", 1).unwrap();
        sink.wait_for_message(WAIT);
        let again = request_register_token(&c, "idem", "ann@example.org", 1).unwrap();
        assert_eq!(again.sid, first.sid);
        let older = request_register_token(&c, "idem", "ann@example.org", 0).unwrap();
        assert_eq!(older.sid, first.sid);
        let submit_url = first.submit_url.expect("a submit_url");
        assert!(
            submit_url.ends_with("/_account/v1/3pid/submit_token"),
            "{submit_url}"
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(sink.messages().len(), 1);
        // A larger attempt sends a new token; the old one no longer works.
        let (_, old_token) = link_and_token(&sink.messages()[0]);
        let newer = request_register_token(&c, "idem", "ann@example.org", 2).unwrap();
        assert_eq!(newer.sid, first.sid);
        let m = sink.wait_for_message(WAIT);
        let (_, new_token) = link_and_token(&m);
        assert_ne!(old_token, new_token);
        assert_eq!(
            submit(&c, &first.sid, "idem", &old_token)
                .unwrap_err()
                .errcode,
            "M_TOKEN_INCORRECT"
        );
        submit(&c, &first.sid, "idem", &new_token).unwrap();
        // Another client secret is another session.
        let other = request_register_token(&c, "other-secret", "ann@example.org", 1).unwrap();
        assert_ne!(other.sid, first.sid);
        assert_eq!(
            submit(&c, &first.sid, "other-secret", &new_token)
                .unwrap_err()
                .errcode,
            "M_INVALID_PARAM"
        );
    }
);

mail_test!(
    wrong_tokens_kill_the_session,
    "max_token_failures = 2\n",
    |s, sink| {
        let c = s.client();
        let r = request_register_token(&c, "wrong", "bob@example.org", 1).unwrap();
        let (_, token) = link_and_token(&sink.wait_for_message(WAIT));
        for _ in 0..2 {
            assert_eq!(
                submit(&c, &r.sid, "wrong", "NOPE").unwrap_err().errcode,
                "M_TOKEN_INCORRECT"
            );
        }
        assert_eq!(
            submit(&c, &r.sid, "wrong", "NOPE").unwrap_err().errcode,
            "M_SESSION_EXPIRED"
        );
        // Dead: the right token no longer helps.
        assert_eq!(
            submit(&c, &r.sid, "wrong", &token).unwrap_err().errcode,
            "M_SESSION_EXPIRED"
        );
    }
);

mail_test!(
    sessions_expire,
    "validation_token_lifetime_secs = 1\n",
    |s, sink| {
        let c = s.client();
        let r = request_register_token(&c, "late", "late@example.org", 1).unwrap();
        let (_, token) = link_and_token(&sink.wait_for_message(WAIT));
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(
            submit(&c, &r.sid, "late", &token).unwrap_err().errcode,
            "M_SESSION_EXPIRED"
        );
    }
);

mail_test!(
    the_link_opens_a_page_whose_button_validates_and_redirects,
    "",
    |s, sink| {
        let c = s.client();
        let mut req = email_request("page", "page@example.org", 1);
        req.next_link = Some("https://client.example.org/done?x=1".into());
        let r = match c.send(&request_token_to_register_email::Request::new(req)) {
            Ok(request_token_to_register_email::Response::Ok(r)) => r,
            other => panic!("{other:?}"),
        };
        let (link, _) = link_and_token(&sink.wait_for_message(WAIT));
        assert!(link.starts_with(&s.base), "{link} is this server");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let mut page = agent.get(&link).call().unwrap();
        assert_eq!(page.status(), 200);
        let h = page.headers().clone();
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        assert!(h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'"));
        let cookie = h["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        assert!(h["set-cookie"].to_str().unwrap().contains("HttpOnly"));
        let html = page.body_mut().read_to_string().unwrap();
        assert!(html.contains("page@example.org"), "{html}");
        // Opening the page validated nothing (a link preview cannot).
        let mut body = registration::register::RequestBody::new();
        body.username = Some("pat".into());
        body.password = Some("correct horse".into());
        let uia = match c.send(&registration::register::Request::new(body.clone())) {
            Ok(registration::register::Response::Unauthorized(uia)) => uia,
            other => panic!("{other:?}"),
        };
        body.auth = Some(threepid_creds(
            "m.login.email.identity",
            uia.session.clone(),
            &r.sid,
            "page",
        ));
        match c.send(&registration::register::Request::new(body.clone())) {
            Ok(registration::register::Response::Unauthorized(again)) => {
                assert_eq!(again.errcode.as_deref(), Some("M_UNAUTHORIZED"))
            }
            other => panic!("{other:?}"),
        }
        // The form's hidden fields.
        let field = |name: &str| {
            let at = html.find(&format!("name=\"{name}\" value=\"")).expect(name) + name.len() + 15;
            html[at..].split('"').next().unwrap().to_string()
        };
        let form: Vec<(String, String)> = ["sid", "client_secret", "token", "csrf"]
            .iter()
            .map(|n| (n.to_string(), field(n)))
            .collect();
        let form_body = form
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let url = format!("{}/_account/v1/3pid/validate", s.base);
        // Without the page's cookie the form is refused.
        let refused = agent
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .send(form_body.as_bytes())
            .unwrap();
        assert_eq!(refused.status(), 403);
        let done = agent
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &cookie)
            .send(form_body.as_bytes())
            .unwrap();
        assert_eq!(done.status(), 303);
        assert_eq!(
            done.headers()["location"],
            "https://client.example.org/done?x=1"
        );
        // Validated: the registration goes through.
        match c.send(&registration::register::Request::new(body)) {
            Ok(registration::register::Response::Ok(done)) => {
                assert_eq!(done.user_id, "@pat:test.local")
            }
            other => panic!("{other:?}"),
        }
    }
);

mail_test!(
    forgot_password_resets_it_by_email_and_logs_devices_out,
    "",
    |s, sink| {
        let old_token = register_with_email(s, sink, "fay", "fay@example.org");
        let c = s.client();
        // An unknown address is said to be unknown.
        let unknown = password_management::request_token_to_reset_password_email::Request::new(
            email_request("reset", "nobody@example.org", 1),
        );
        assert_eq!(c.error(&unknown).errcode, "M_THREEPID_NOT_FOUND");
        let req = password_management::request_token_to_reset_password_email::Request::new(
            email_request("reset", "fay@example.org", 1),
        );
        let r = match c.send(&req) {
            Ok(password_management::request_token_to_reset_password_email::Response::Ok(r)) => r,
            other => panic!("{other:?}"),
        };
        let m = sink.wait_for_message(WAIT);
        assert!(
            m.subject.as_deref().unwrap().contains("Reset"),
            "{:?}",
            m.subject
        );
        let (_, token) = link_and_token(&m);
        submit(&c, &r.sid, "reset", &token).unwrap();
        // No access token: the email stage is the proof.
        let mut body =
            password_management::change_password::RequestBody::new("new password 1".into());
        let uia = match c.send(&password_management::change_password::Request::new(
            body.clone(),
        )) {
            Ok(password_management::change_password::Response::Unauthorized(uia)) => uia,
            other => panic!("{other:?}"),
        };
        assert_eq!(uia.flows[0].stages, ["m.login.email.identity"]);
        body.auth = Some(threepid_creds(
            "m.login.email.identity",
            uia.session,
            &r.sid,
            "reset",
        ));
        match c.send(&password_management::change_password::Request::new(body)) {
            Ok(password_management::change_password::Response::Ok(_)) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(s.login("fay", "correct horse").status, 403);
        assert_eq!(s.login("fay", "new password 1").status, 200);
        // logout_devices defaults to true: the old session is gone.
        let who = s.get("/_matrix/client/v3/account/whoami", Some(&old_token));
        assert_eq!(who.errcode(), "M_UNKNOWN_TOKEN");
    }
);

mail_test!(
    adding_an_email_needs_a_validated_session_of_the_caller,
    "",
    |s, sink| {
        let (_, token) = s.user("gus");
        // With email delivery, addresses can be changed.
        let caps = s.get("/_matrix/client/v3/capabilities", Some(&token));
        assert_eq!(caps.body["capabilities"]["m.3pid_changes"]["enabled"], true);
        let c = s.client().with_access_token(&token);
        let req =
            request_token_to_3pid_email::Request::new(email_request("add", "gus@example.org", 1));
        let r = match c.send(&req) {
            Ok(request_token_to_3pid_email::Response::Ok(r)) => r,
            other => panic!("{other:?}"),
        };
        let (_, code) = link_and_token(&sink.wait_for_message(WAIT));
        let add = |secret: &str, auth: Option<AuthData>| {
            let mut body = add_3pid::RequestBody::new(secret.into(), r.sid.clone());
            body.auth = auth;
            c.send(&add_3pid::Request::new(body))
        };
        // Interactive auth first.
        let session = match add("add", None) {
            Ok(add_3pid::Response::Unauthorized(uia)) => uia.session,
            other => panic!("{other:?}"),
        };
        let mut password = auth_stage("m.login.password", session);
        password.extra.insert(
            "identifier".into(),
            json!({"type": "m.id.user", "user": "gus"}),
        );
        password
            .extra
            .insert("password".into(), json!("correct horse"));
        // Not validated yet: refused.
        match add("add", Some(password.clone())) {
            Err(ClientError::Api(e)) => assert_eq!(e.errcode, "M_THREEPID_AUTH_FAILED"),
            other => panic!("{other:?}"),
        }
        submit(&s.client(), &r.sid, "add", &code).unwrap();
        let session = match add("add", None) {
            Ok(add_3pid::Response::Unauthorized(uia)) => uia.session,
            other => panic!("{other:?}"),
        };
        password.session = session;
        match add("add", Some(password)) {
            Ok(add_3pid::Response::Ok(_)) => {}
            other => panic!("{other:?}"),
        }
        let list = match c.send(&get_account_3pids::Request::new()) {
            Ok(get_account_3pids::Response::Ok(b)) => b.threepids.unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(list[0].address, "gus@example.org");
        // Login by it works.
        let mut id = matrix_api::types::UserIdentifier::new("m.id.thirdparty".into());
        id.extra.insert("medium".into(), json!("email"));
        id.extra.insert("address".into(), json!("gus@example.org"));
        let mut body = login::login::RequestBody::new("m.login.password".into());
        body.identifier = Some(id);
        body.password = Some("correct horse".into());
        let login::login::Response::Ok(done) =
            c.send(&login::login::Request::new(body.clone())).unwrap();
        assert_eq!(done.user_id, "@gus:test.local");
        // Deleting it (written another way) releases it: no login by it, and
        // another account may validate it.
        let r = s.post(
            "/_matrix/client/v3/account/3pid/delete",
            Some(&token),
            json!({"medium": "email", "address": "GUS@Example.org"}),
        );
        assert_eq!(r.status, 200, "{r:?}");
        let list = match c.send(&get_account_3pids::Request::new()) {
            Ok(get_account_3pids::Response::Ok(b)) => b.threepids.unwrap_or_default(),
            other => panic!("{other:?}"),
        };
        assert!(list.is_empty(), "{list:?}");
        assert!(matches!(
            c.send(&login::login::Request::new(body)),
            Err(ClientError::Api(e)) if e.errcode == "M_FORBIDDEN"
        ));
        request_register_token(&s.client(), "again", "gus@example.org", 1).unwrap();
    }
);

mail_test!(
    inhibited_errors_answer_like_any_address_and_send_nothing,
    "inhibit_3pid_errors = true\n",
    |s, sink| {
        register_with_email(s, sink, "hal", "hal@example.org");
        let c = s.client();
        let taken = request_register_token(&c, "x", "hal@example.org", 1).unwrap();
        assert!(!taken.sid.is_empty());
        let reset = password_management::request_token_to_reset_password_email::Request::new(
            email_request("y", "nobody@example.org", 1),
        );
        assert!(c.send(&reset).is_ok());
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(sink.messages().len(), 1, "only the registration's message");
    }
);

mail_test!(
    addresses_outside_the_allowed_patterns_are_denied,
    "allowed_addresses = ['@example\\.org$']\n",
    |s, sink| {
        let c = s.client();
        let e = request_register_token(&c, "d", "eve@elsewhere.net", 1).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.errcode.as_str()),
            (403, "M_THREEPID_DENIED")
        );
        request_register_token(&c, "d", "eve@example.org", 1).unwrap();
        sink.wait_for_message(WAIT);
        assert_eq!(sink.messages().len(), 1);
    }
);

mail_test!(
    bad_input_is_refused_and_sends_nothing,
    "next_link_domains = ['client.example.org']\n",
    |s, sink| {
        let c = s.client();
        for (secret, email, next_link, errcode) in [
            ("has space", "a@example.org", None, "M_INVALID_PARAM"),
            ("", "a@example.org", None, "M_INVALID_PARAM"),
            ("ok", "not an address", None, "M_INVALID_PARAM"),
            (
                "ok",
                "a@example.org",
                Some("javascript:alert(1)"),
                "M_INVALID_PARAM",
            ),
            (
                "ok",
                "a@example.org",
                Some("https://evil.example.net/"),
                "M_INVALID_PARAM",
            ),
        ] {
            let mut req = email_request(secret, email, 1);
            req.next_link = next_link.map(str::to_string);
            let e = c.error(&request_token_to_register_email::Request::new(req));
            assert_eq!(
                (e.status.as_u16(), e.errcode.as_str()),
                (400, errcode),
                "{secret:?} {email} {next_link:?}"
            );
        }
        // Missing fields and wrong types: the generated layer's answers.
        let r = s.post(
            "/_matrix/client/v3/register/email/requestToken",
            None,
            json!({"client_secret": "a", "send_attempt": 1}),
        );
        assert_eq!(r.errcode(), "M_MISSING_PARAM");
        let r = s.post(
            "/_matrix/client/v3/register/email/requestToken",
            None,
            json!({"client_secret": "a", "email": 1, "send_attempt": 1}),
        );
        assert_eq!(r.errcode(), "M_BAD_JSON");
        std::thread::sleep(Duration::from_millis(300));
        assert!(sink.messages().is_empty());
    }
);

mail_test!(
    a_refusing_mail_server_is_an_error_and_a_retry_sends_again,
    Mode::Refuse,
    "",
    |s, _sink| {
        let c = s.client();
        let e = request_register_token(&c, "r", "rob@example.org", 1).unwrap_err();
        assert_eq!((e.status.as_u16(), e.errcode.as_str()), (500, "M_UNKNOWN"));
        assert!(e.error.contains("refused"), "{}", e.error);
        // Still not sent: the same attempt tries again (and fails again), not "same sid, nothing sent".
        let e = request_register_token(&c, "r", "rob@example.org", 1).unwrap_err();
        assert_eq!(e.status.as_u16(), 500);
    }
);

#[test]
fn a_mail_server_that_is_down_is_an_error() {
    for db in [Db::Sqlite, Db::Postgres] {
        let port = matrix_tests::smtp::unused_port();
        let config = format!("[email]\nsmtp_url = \"smtp://127.0.0.1:{port}\"\n");
        let Some(s) = TestServer::start(db, &config) else {
            continue;
        };
        let e = request_register_token(&s.client(), "d", "dan@example.org", 1).unwrap_err();
        assert_eq!((e.status.as_u16(), e.errcode.as_str()), (500, "M_UNKNOWN"));
        assert!(e.error.contains("could not be reached"), "{}", e.error);
    }
}
