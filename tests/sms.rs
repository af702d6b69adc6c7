//! Phone numbers validated by the server itself: it sends the code through
//! its HTTP SMS gateway — here a real HTTP server on loopback that the test
//! runs (`tiny_http`), recording what it received — and the user types the
//! code into the client, which submits it to `submit_url`. On SQLite and
//! PostgreSQL.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use matrix_api::client_server::{password_management, registration};
use matrix_api::runtime::{ClientError, MatrixError};
use matrix_api::types::{RequestMsisdnValidation, RequestTokenResponse};
use matrix_tests::server::{auth_stage, Db, TestServer};
use serde_json::{json, Value};

/// One message the gateway received.
#[derive(Clone, Debug)]
struct Sms {
    body: Value,
    authorization: Option<String>,
}

/// The SMS gateway: answers every POST with `status` and keeps what it got.
struct Gateway {
    port: u16,
    received: Arc<Mutex<Vec<Sms>>>,
    server: Arc<tiny_http::Server>,
}

impl Gateway {
    fn start(status: u16) -> Gateway {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("gateway listens"));
        let port = server.server_addr().to_ip().expect("an IP address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (srv, got) = (server.clone(), received.clone());
        std::thread::spawn(move || {
            for mut request in srv.incoming_requests() {
                let mut text = String::new();
                let _ = request.as_reader().read_to_string(&mut text);
                let authorization = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("authorization"))
                    .map(|h| h.value.to_string());
                got.lock().unwrap().push(Sms {
                    body: serde_json::from_str(&text).unwrap_or(Value::Null),
                    authorization,
                });
                let _ = request.respond(tiny_http::Response::empty(status));
            }
        });
        Gateway {
            port,
            received,
            server,
        }
    }

    fn wait_for_message(&self, n: usize) -> Sms {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(m) = self.received.lock().unwrap().get(n) {
                return m.clone();
            }
            assert!(Instant::now() < deadline, "no message {n} at the gateway");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn with_gateway(db: Db, status: u16, body: impl Fn(&TestServer, &Gateway)) {
    let gateway = Gateway::start(status);
    let config = format!(
        "[sms]\ngateway_url = \"http://127.0.0.1:{}/send\"\nbearer_token = \"s3cret\"\nfrom = \"Test\"\n",
        gateway.port
    );
    let Some(s) = TestServer::start(db, &config) else {
        return;
    };
    body(&s, &gateway);
}

macro_rules! sms_test {
    ($name:ident, $status:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn sqlite() {
                with_gateway(Db::Sqlite, $status, $body)
            }
            #[test]
            fn postgres() {
                with_gateway(Db::Postgres, $status, $body)
            }
        }
    };
}

fn request_token(
    s: &TestServer,
    secret: &str,
    country: &str,
    phone: &str,
) -> Result<RequestTokenResponse, MatrixError> {
    use registration::request_token_to_register_msisdn::{Request, Response};
    let body = RequestMsisdnValidation::new(secret.into(), country.into(), phone.into(), 1);
    match s.client().send(&Request::new(body)) {
        Ok(Response::Ok(r)) => Ok(r),
        Err(ClientError::Api(e)) => Err(e),
        Err(e) => panic!("{e}"),
    }
}

/// The six-digit code a message carries.
fn code(m: &Sms) -> String {
    let text = m.body["text"].as_str().expect("a text");
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {text:?}"))
        .to_string()
}

fn submit(s: &TestServer, r: &RequestTokenResponse, secret: &str, code: &str) -> u16 {
    let url = r.submit_url.as_deref().expect("a submit_url");
    let path = &url[url.find("/_account/").expect("this server's path")..];
    let reply = s.post(
        path,
        None,
        json!({"sid": r.sid, "client_secret": secret, "token": code}),
    );
    reply.status
}

sms_test!(
    registration_with_a_phone_number_and_login_by_it,
    200,
    |s, gateway| {
        let r = request_token(s, "phone", "GB", "07400 123456").unwrap();
        let m = gateway.wait_for_message(0);
        assert_eq!(m.body["to"], "+447400123456");
        assert_eq!(m.body["from"], "Test");
        assert_eq!(m.authorization.as_deref(), Some("Bearer s3cret"));
        assert!(m.body["text"].as_str().unwrap().contains("test.local"));
        assert_eq!(submit(s, &r, "phone", "000000x"), 400);
        assert_eq!(submit(s, &r, "phone", &code(&m)), 200);
        // Register with the msisdn stage.
        let c = s.client();
        let mut body = registration::register::RequestBody::new();
        body.username = Some("pia".into());
        body.password = Some("correct horse".into());
        let uia = match c.send(&registration::register::Request::new(body.clone())) {
            Ok(registration::register::Response::Unauthorized(uia)) => uia,
            other => panic!("{other:?}"),
        };
        assert!(
            uia.flows.iter().any(|f| f.stages == ["m.login.msisdn"]),
            "{:?}",
            uia.flows
        );
        let mut auth = auth_stage("m.login.msisdn", uia.session);
        auth.extra.insert(
            "threepid_creds".into(),
            json!({"sid": r.sid, "client_secret": "phone"}),
        );
        body.auth = Some(auth);
        match c.send(&registration::register::Request::new(body)) {
            Ok(registration::register::Response::Ok(done)) => {
                assert_eq!(done.user_id, "@pia:test.local")
            }
            other => panic!("{other:?}"),
        }
        // Log in by the number, written another way.
        let r = s.post(
            "/_matrix/client/v3/login",
            None,
            json!({"type": "m.login.password", "password": "correct horse",
               "identifier": {"type": "m.id.phone", "country": "GB", "phone": "+44 7400 123456"}}),
        );
        assert_eq!(r.body["user_id"], "@pia:test.local", "{r:?}");
        // Taken now.
        let e = request_token(s, "other", "GB", "07400123456").unwrap_err();
        assert_eq!(e.errcode, "M_THREEPID_IN_USE");
    }
);

sms_test!(forgot_password_by_phone, 200, |s, gateway| {
    // Bind a number the way a registration would, then reset by it.
    let r = request_token(s, "bind", "GB", "07400 654321").unwrap();
    assert_eq!(
        submit(s, &r, "bind", &code(&gateway.wait_for_message(0))),
        200
    );
    let mut body = registration::register::RequestBody::new();
    body.username = Some("rae".into());
    body.password = Some("correct horse".into());
    let c = s.client();
    let session = match c.send(&registration::register::Request::new(body.clone())) {
        Ok(registration::register::Response::Unauthorized(uia)) => uia.session,
        other => panic!("{other:?}"),
    };
    let mut auth = auth_stage("m.login.msisdn", session);
    auth.extra.insert(
        "threepid_creds".into(),
        json!({"sid": r.sid, "client_secret": "bind"}),
    );
    body.auth = Some(auth);
    assert!(matches!(
        c.send(&registration::register::Request::new(body)),
        Ok(registration::register::Response::Ok(_))
    ));
    use password_management::request_token_to_reset_password_msisdn::{Request, Response};
    let req = RequestMsisdnValidation::new("reset".into(), "GB".into(), "07400654321".into(), 1);
    let r = match c.send(&Request::new(req)) {
        Ok(Response::Ok(r)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        submit(s, &r, "reset", &code(&gateway.wait_for_message(1))),
        200
    );
    let mut body = password_management::change_password::RequestBody::new("brand new pw".into());
    let session = match c.send(&password_management::change_password::Request::new(
        body.clone(),
    )) {
        Ok(password_management::change_password::Response::Unauthorized(uia)) => {
            assert!(uia.flows.iter().any(|f| f.stages == ["m.login.msisdn"]));
            uia.session
        }
        other => panic!("{other:?}"),
    };
    let mut auth = auth_stage("m.login.msisdn", session);
    auth.extra.insert(
        "threepid_creds".into(),
        json!({"sid": r.sid, "client_secret": "reset"}),
    );
    body.auth = Some(auth);
    assert!(matches!(
        c.send(&password_management::change_password::Request::new(body)),
        Ok(password_management::change_password::Response::Ok(_))
    ));
    assert_eq!(s.login("rae", "brand new pw").status, 200);
});

sms_test!(
    bad_numbers_are_refused_and_nothing_is_sent,
    200,
    |s, gateway| {
        for (country, phone) in [("GB", "123"), ("ZZ", "07400123456"), ("GB", "not a number")] {
            let e = request_token(s, "bad", country, phone).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.errcode.as_str()),
                (400, "M_INVALID_PARAM"),
                "{country} {phone}"
            );
        }
        let e = request_token(s, "has space", "GB", "07400123456").unwrap_err();
        assert_eq!(e.errcode, "M_INVALID_PARAM");
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(gateway.count(), 0);
    }
);

sms_test!(a_refusing_gateway_is_an_error, 503, |s, gateway| {
    let e = request_token(s, "r", "GB", "07400123456").unwrap_err();
    assert_eq!((e.status.as_u16(), e.errcode.as_str()), (500, "M_UNKNOWN"));
    assert!(e.error.contains("refused"), "{}", e.error);
    assert!(!e.error.contains("s3cret"));
    // The same send_attempt tries again.
    request_token(s, "r", "GB", "07400123456").unwrap_err();
    assert_eq!(gateway.count(), 2);
});

#[test]
fn a_gateway_that_is_down_is_an_error() {
    let port = matrix_tests::smtp::unused_port();
    let config = format!("[sms]\ngateway_url = \"http://127.0.0.1:{port}/send\"\n");
    let Some(s) = TestServer::start(Db::Sqlite, &config) else {
        return;
    };
    let e = request_token(&s, "d", "GB", "07400123456").unwrap_err();
    assert_eq!((e.status.as_u16(), e.errcode.as_str()), (500, "M_UNKNOWN"));
    assert!(e.error.contains("could not be reached"), "{}", e.error);
}
