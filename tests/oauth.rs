//! The OAuth 2.0 API end to end, driven by a client library nobody here wrote
//! (openid-client, through `support/oauth_client.rs`) and a real headless
//! Chromium for the pages (`support/browser.rs`): discovery, dynamic client
//! registration, the authorisation code grant with PKCE through the login,
//! registration and consent pages, the tokens on the client API, refresh
//! with rotation, revocation; the refusals the spec and the RFCs require; the
//! `[oauth] apis` modes; the registration page's email stage (a real SMTP
//! sink, the emailed link followed in the browser, the address bound to the
//! new account); a flow that starts on one server process and
//! completes on another sharing its PostgreSQL database; and the device
//! authorisation grant (RFC 8628): the library's polling while a person types
//! the code, logs in and allows or denies, expiry, unknown and guessed codes,
//! and racing polls on two processes. Screenshots go to
//! `<target dir>/test-screenshots/<test>/`.

use std::time::Duration;

use matrix_tests::browser::{Browser, Viewport};
use matrix_tests::oauth_client::{
    AuthorizationParams, Callback, ExchangeOptions, OAuthClient, OAuthFailure, Tokens,
};
use matrix_tests::server::{eventually, Db, TestServer};
use matrix_tests::smtp::{Mode, SmtpSink};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse";
const WHOAMI: &str = "/_matrix/client/v3/account/whoami";

/// The registration of a native client with a loopback redirect URI.
fn native_client() -> Value {
    json!({
        "client_name": "Test App",
        "client_name#fr": "Appli de test",
        "client_uri": "https://app.example.org/",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "application_type": "native",
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token", "urn:example:unknown"],
        "response_types": ["code"],
    })
}

fn scope(device: &str) -> String {
    format!("urn:matrix:client:api:* urn:matrix:client:device:{device}")
}

/// A client discovered at `s` and registered.
fn registered_client(s: &TestServer) -> Option<OAuthClient> {
    let mut c = OAuthClient::start()?;
    c.discover(&s.base).expect("discovery");
    c.register(native_client()).expect("registration");
    Some(c)
}

/// A parameter of a URL's query or fragment.
fn param(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url).unwrap();
    let from_query = url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned());
    from_query.or_else(|| {
        form_urlencoded::parse(url.fragment().unwrap_or("").as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    })
}

/// `GET` without following redirects: the status and the `Location`.
fn get_no_redirect(s: &TestServer, path_and_query: &str) -> (u16, Option<String>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut resp = agent
        .get(format!("{}{path_and_query}", s.base))
        .call()
        .unwrap();
    let location = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    (resp.status().as_u16(), location, body)
}

/// Logs in on the login page the browser shows.
fn log_in(b: &Browser, user: &str) {
    b.wait_for("#username");
    b.type_into("#username", user);
    b.type_into("#password", PASSWORD);
    b.click("#submit");
}

/// Clicks `button` on the consent page; the URL the browser ends at, back at
/// the client.
fn answer(b: &Browser, cb: &Callback, button: &str) -> String {
    b.click(button);
    let back = format!("http://127.0.0.1:{}/", cb.port);
    eventually("back at the client", Duration::from_secs(15), || {
        b.url().starts_with(&back)
    });
    b.url()
}

fn allow(b: &Browser, cb: &Callback) -> String {
    answer(b, cb, "#allow")
}

/// The user and device a token belongs to, or the status refusing it.
fn whoami(s: &TestServer, token: &str) -> Result<(String, String), u16> {
    let r = s.get(WHOAMI, Some(token));
    match r.status {
        200 => Ok((
            r.body["user_id"].as_str().unwrap().to_string(),
            r.body["device_id"].as_str().unwrap().to_string(),
        )),
        status => Err(status),
    }
}

/// What every page must be: styled (so its CSP admits its stylesheet),
/// nothing blocked by the CSP, nothing overflowing a phone's width.
fn assert_page_sound(b: &Browser) {
    b.assert_styled(
        "/_account/v1/static/style.css",
        "main",
        "background-color",
        "rgb(255, 255, 255)",
    );
    b.assert_no_csp_violations();
    b.assert_fits_width();
}

#[test]
fn a_client_logs_in_refreshes_and_logs_out_through_the_pages() {
    let Some(s) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    let Some(b) = Browser::start(Viewport::Phone) else {
        return;
    };
    let Some(mut c) = OAuthClient::start() else {
        return;
    };
    s.register("alice", PASSWORD);
    let discovery = c.discover(&s.base).expect("discovery");
    let m = &discovery.metadata;
    assert_eq!(m["issuer"], format!("{}/", s.base));
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(m["prompt_values_supported"], json!(["create"]));
    assert_eq!(m["token_endpoint_auth_methods_supported"], json!(["none"]));
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    let registered = c.register(native_client()).expect("registration");
    // Kept: the localised name; dropped: the unknown grant type.
    assert_eq!(registered["client_name#fr"], "Appli de test");
    assert_eq!(
        registered["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(registered["token_endpoint_auth_method"], "none");

    let cb = Callback::start();
    let auth = c
        .authorization_url(&AuthorizationParams::new(
            &cb.redirect_uri(),
            &scope("PHONE1"),
        ))
        .unwrap();
    b.open(&auth.url);
    // Nobody is logged in: the consent page sent the browser to log in.
    b.wait_for("#username");
    assert!(
        b.url().contains("/_account/v1/login?session="),
        "{}",
        b.url()
    );
    assert!(b.text("main").contains("Test App"), "{}", b.text("main"));
    b.screenshot("login");
    assert_page_sound(&b);
    // A wrong password shows the form again, saying so.
    b.type_into("#username", "alice");
    b.type_into("#password", "wrong password");
    b.click("#submit");
    assert_eq!(b.text("#error"), "Wrong username or password.");
    b.screenshot("login-wrong-password");
    b.type_into("#password", PASSWORD);
    b.click("#submit");
    b.wait_for("#allow");
    assert_eq!(b.text("#user"), "@alice:test.local");
    assert_eq!(b.text("#device"), "PHONE1");
    assert_eq!(b.text("#client-uri"), "https://app.example.org/");
    b.screenshot("consent");
    assert_page_sound(&b);
    let landed = allow(&b, &cb);
    assert!(landed.starts_with(&cb.redirect_uri()), "{landed}");
    // The consent page's CSP let the browser follow the redirect to the client.
    b.assert_no_csp_violations();
    assert_eq!(
        param(&landed, "state").as_deref(),
        Some(auth.state.as_str())
    );
    assert_eq!(param(&landed, "iss"), Some(format!("{}/", s.base)));

    let tokens = c.exchange(&landed).expect("code exchange");
    assert_eq!(tokens.token_type, "bearer");
    assert_eq!(tokens.scope.as_deref(), Some(scope("PHONE1").as_str()));
    assert!(
        tokens.expires_in.is_some_and(|e| e > 0.0),
        "{:?}",
        tokens.raw
    );
    let http = c.last_http().unwrap();
    assert_eq!(http["headers"]["cache-control"], "no-store", "{http}");
    // The token works on the client API like a legacy one.
    assert_eq!(
        whoami(&s, &tokens.access_token),
        Ok(("@alice:test.local".into(), "PHONE1".into()))
    );
    // But not on the endpoints of interactive auth, which the spec says
    // cannot be used with the OAuth 2.0 API's tokens: no password is asked
    // of such a client; the answer names the account page.
    for (path, body) in [
        (
            "/_matrix/client/v3/account/password",
            json!({"new_password": "another one 1"}),
        ),
        ("/_matrix/client/v3/account/deactivate", json!({})),
        ("/_matrix/client/v1/login/get_token", json!({})),
    ] {
        let r = s.post(path, Some(&tokens.access_token), body);
        assert_eq!(
            (r.status, r.errcode()),
            (403, "M_FORBIDDEN"),
            "{path}: {r:?}"
        );
        assert!(
            r.body["error"]
                .as_str()
                .unwrap()
                .contains("/_account/v1/account"),
            "{r:?}"
        );
    }
    // A legacy token of the same account is challenged as before.
    let legacy = s.login("alice", PASSWORD).body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.post(
        "/_matrix/client/v3/account/password",
        Some(&legacy),
        json!({"new_password": "another one 1"}),
    );
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body["flows"].is_array(), "{r:?}");

    let refreshed = c.refresh(None).expect("refresh");
    assert_ne!(refreshed.access_token, tokens.access_token);
    assert_eq!(
        whoami(&s, &refreshed.access_token).map(|w| w.1),
        Ok("PHONE1".into())
    );
    // The old pair went with the first use of the new one.
    assert_eq!(whoami(&s, &tokens.access_token), Err(401));

    c.revoke(&refreshed.access_token, Some("access_token"))
        .expect("revocation");
    assert_eq!(whoami(&s, &refreshed.access_token), Err(401));
    let after = c.refresh(refreshed.refresh_token.as_deref()).unwrap_err();
    assert_eq!(after.error.as_deref(), Some("invalid_grant"), "{after:?}");
    // Revoking what is already invalid is fine (RFC 7009).
    c.revoke(&refreshed.access_token, None)
        .expect("second revocation");

    // The browser session remains: a second authorisation goes straight to
    // consent, and a denial goes back to the client as access_denied.
    let auth = c
        .authorization_url(&AuthorizationParams::new(
            &cb.redirect_uri(),
            &scope("PHONE2"),
        ))
        .unwrap();
    b.open(&auth.url);
    let denied = answer(&b, &cb, "#deny");
    assert_eq!(
        param(&denied, "error").as_deref(),
        Some("access_denied"),
        "{denied}"
    );
    let refused = c.exchange(&denied).unwrap_err();
    assert_eq!(
        refused.error.as_deref(),
        Some("access_denied"),
        "{refused:?}"
    );
}

#[test]
fn a_password_change_through_the_legacy_api_ends_the_browser_sessions() {
    let Some(s) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    let Some(b) = Browser::start(Viewport::Phone) else {
        return;
    };
    let Some(mut c) = registered_client(&s) else {
        return;
    };
    let (_, token) = s.user("heidi");
    let cb = Callback::start();
    // Signed in on the pages: a second request goes straight to consent.
    authorise(&b, &mut c, &cb, "heidi", "FIRST");
    let auth = c
        .authorization_url(&AuthorizationParams::new(
            &cb.redirect_uri(),
            &scope("SECOND"),
        ))
        .unwrap();
    b.open(&auth.url);
    b.wait_for("#allow");
    // The password changes through the legacy API (devices kept)...
    let body = json!({"new_password": "a new passphrase", "logout_devices": false});
    let uia = s.post(
        "/_matrix/client/v3/account/password",
        Some(&token),
        body.clone(),
    );
    let mut done = body;
    done["auth"] = json!({"type": "m.login.password", "session": uia.body["session"],
        "identifier": {"type": "m.id.user", "user": "heidi"}, "password": PASSWORD});
    let r = s.post("/_matrix/client/v3/account/password", Some(&token), done);
    assert_eq!(r.status, 200, "{r:?}");
    // ...and the browser must sign in again, with the new password.
    b.open(&auth.url);
    b.wait_for("#username");
    assert!(
        b.url().contains("/_account/v1/login?session="),
        "{}",
        b.url()
    );
    assert!(whoami(&s, &token).is_ok(), "the devices were kept");
}

#[test]
fn prompt_create_registers_an_account_and_fragment_mode_answers_in_the_fragment() {
    let Some(s) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    let Some(b) = Browser::start(Viewport::Phone) else {
        return;
    };
    let Some(mut c) = registered_client(&s) else {
        return;
    };
    let cb = Callback::start();
    let mut params = AuthorizationParams::new(&cb.redirect_uri(), &scope("NEWPHONE"));
    params.prompt = Some("create".into());
    params.response_mode = Some("fragment".into());
    let auth = c.authorization_url(&params).unwrap();
    b.open(&auth.url);
    b.wait_for("#username");
    assert!(
        b.url().contains("/_account/v1/register?session="),
        "{}",
        b.url()
    );
    b.screenshot("register");
    assert_page_sound(&b);
    // Profiles are a delegating homeserver's (tests/synapse.rs): none asked.
    assert!(!b.exists("#display_name"));
    // A weak password is refused by the server's policy, on the page.
    b.type_into("#username", "Bob");
    b.type_into("#password", "short");
    b.click("#submit");
    assert!(
        b.text("#error").contains("at least 8"),
        "{}",
        b.text("#error")
    );
    b.type_into("#password", PASSWORD);
    b.click("#submit");
    b.wait_for("#allow");
    assert_eq!(b.text("#user"), "@bob:test.local");
    let landed = allow(&b, &cb);
    let fragment = url::Url::parse(&landed)
        .unwrap()
        .fragment()
        .map(str::to_string);
    assert!(fragment.is_some_and(|f| f.contains("code=")), "{landed}");
    let tokens = c.exchange(&landed).expect("code exchange");
    assert_eq!(
        whoami(&s, &tokens.access_token),
        Ok(("@bob:test.local".into(), "NEWPHONE".into()))
    );
    // The account is a real one: the legacy API logs it in with its password.
    assert_eq!(s.login("bob", PASSWORD).status, 200);
}

/// A server (SQLite) that requires an email address to register, mailing
/// to a real SMTP sink; `None` when the sink cannot start (skipped).
fn email_server(sink: &SmtpSink) -> Option<TestServer> {
    let config = format!(
        "[email]\nsmtp_url = \"smtp://127.0.0.1:{}\"\nfrom = \"Test <noreply@test.local>\"\nrequire_for_registration = true\n",
        sink.port()
    );
    TestServer::start(Db::Sqlite, &config)
}

/// A `prompt=create` request for `device` opened in the browser, at the
/// registration page.
fn open_registration(b: &Browser, c: &mut OAuthClient, cb: &Callback, device: &str) {
    let mut params = AuthorizationParams::new(&cb.redirect_uri(), &scope(device));
    params.prompt = Some("create".into());
    let auth = c.authorization_url(&params).unwrap();
    b.open(&auth.url);
    b.wait_for("#username");
    assert!(
        b.url().contains("/_account/v1/register?session="),
        "{}",
        b.url()
    );
}

/// Fills the registration form (`email` empty: left empty) and submits it.
fn fill_registration(b: &Browser, user: &str, email: &str) {
    b.type_into("#username", user);
    b.type_into("#password", PASSWORD);
    if !email.is_empty() {
        b.type_into("#email", email);
    }
    b.click("#submit");
}

#[test]
fn prompt_create_confirms_a_required_email_address_and_binds_it_to_the_new_account() {
    let Some(sink) = SmtpSink::start(Mode::Accept) else {
        return;
    };
    let Some(s) = email_server(&sink) else {
        return;
    };
    let Some(b) = Browser::start(Viewport::Phone) else {
        return;
    };
    let Some(mut c) = OAuthClient::start() else {
        return;
    };
    // With the email stage on the page, `prompt=create` is offered although
    // the server requires an address.
    let discovery = c.discover(&s.base).expect("discovery");
    assert_eq!(
        discovery.metadata["prompt_values_supported"],
        json!(["create"])
    );
    c.register(native_client()).expect("registration");
    let cb = Callback::start();
    open_registration(&b, &mut c, &cb, "MAILPHONE");
    assert_eq!(b.text("label[for=email]"), "Email address");
    assert_eq!(
        b.execute("return document.getElementById('email').required;", vec![]),
        json!(true)
    );
    b.screenshot("register-email");
    assert_page_sound(&b);
    // The address field is styled like the others (full width).
    assert_eq!(
        b.computed_style("#email", "width"),
        b.computed_style("#username", "width")
    );

    // Without the address (the browser's own check taken away) the server
    // refuses, on the form.
    b.execute("document.getElementById('email').required = false;", vec![]);
    fill_registration(&b, "carol", "");
    assert_eq!(
        b.text("#error"),
        "This server needs an email address to create an account."
    );
    assert_eq!(b.status(), 400);
    assert_eq!(
        b.execute("return document.getElementById('username').value;", vec![]),
        json!("carol")
    );
    b.screenshot("register-email-missing");

    // With it: the link is mailed and the browser waits for it.
    b.type_into("#password", PASSWORD);
    b.type_into("#email", "Carol@Example.org");
    b.click("#submit");
    b.wait_for("#sent");
    assert!(
        b.url().contains("/_account/v1/register/email?session="),
        "{}",
        b.url()
    );
    assert_eq!(b.text("#address"), "carol@example.org");
    assert_eq!(b.text("#user"), "@carol:test.local");
    let waiting = b.url();
    b.screenshot("register-email-sent");
    assert_page_sound(&b);
    // Nothing exists yet; continuing before the link is followed says so.
    assert_eq!(s.login("carol", PASSWORD).status, 403);
    b.click("#submit");
    assert!(
        b.text("#error").contains("not confirmed yet"),
        "{}",
        b.text("#error")
    );
    assert_eq!(b.status(), 400);

    // Another browser (no registration cookie) opening the waiting page is
    // told to continue where the registration started.
    let path = waiting.strip_prefix(&s.base).unwrap();
    let (status, _, body) = get_no_redirect(&s, path);
    assert_eq!(status, 200);
    assert!(body.contains("id=\"elsewhere\""), "{body}");

    // The really delivered message's link, its page's button, and back on
    // the waiting page, now confirmed.
    let m = sink.wait_for_message(Duration::from_secs(20));
    assert_eq!(m.to, ["carol@example.org"]);
    let link = m
        .text_line_containing("/_account/v1/3pid/validate?")
        .expect("a validation link");
    b.open(&link);
    b.click("#confirm");
    b.wait_for("#confirmed");
    assert_eq!(b.url(), waiting, "the link's confirmation led back");
    b.screenshot("register-email-confirmed");
    assert_page_sound(&b);
    b.click("#submit");
    b.wait_for("#allow");
    assert_eq!(b.text("#user"), "@carol:test.local");
    assert_eq!(b.text("#device"), "MAILPHONE");
    let landed = allow(&b, &cb);
    b.assert_no_csp_violations();
    let tokens = c.exchange(&landed).expect("code exchange");
    assert_eq!(
        whoami(&s, &tokens.access_token),
        Ok(("@carol:test.local".into(), "MAILPHONE".into()))
    );
    // The address is bound to the account (the legacy API says so), and the
    // password is the one the form was given.
    let threepids = s.get(
        "/_matrix/client/v3/account/3pid",
        Some(&tokens.access_token),
    );
    assert_eq!(threepids.status, 200, "{threepids:?}");
    let bound = &threepids.body["threepids"];
    assert_eq!(bound.as_array().map(Vec::len), Some(1), "{bound}");
    assert_eq!(bound[0]["medium"], "email");
    assert_eq!(bound[0]["address"], "carol@example.org");
    assert_eq!(s.login("carol", PASSWORD).status, 200);

    // A second registration with the same address is refused on the form,
    // and no message is sent for it.
    let cb2 = Callback::start();
    open_registration(&b, &mut c, &cb2, "OTHERPHONE");
    fill_registration(&b, "dave", "carol@example.org");
    assert_eq!(
        b.text("#error"),
        "That email address is already in use by another account."
    );
    assert_eq!(b.status(), 400);
    b.screenshot("register-email-in-use");
    assert_page_sound(&b);
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(s.login("dave", PASSWORD).status, 403);
}

#[test]
fn a_username_taken_while_the_address_waits_is_refused_when_continuing() {
    let Some(sink) = SmtpSink::start(Mode::Accept) else {
        return;
    };
    let Some(s) = email_server(&sink) else {
        return;
    };
    let Some(b) = Browser::start(Viewport::Phone) else {
        return;
    };
    let Some(mut c) = registered_client(&s) else {
        return;
    };
    let cb = Callback::start();
    open_registration(&b, &mut c, &cb, "ERINPHONE");
    fill_registration(&b, "erin", "erin@example.org");
    b.wait_for("#sent");
    // Someone else takes the name meanwhile.
    let out = s.cli(&["user", "create", "erin", "--password", "another passphrase"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = sink
        .wait_for_message(Duration::from_secs(20))
        .text_line_containing("/_account/v1/3pid/validate?")
        .expect("a validation link");
    b.open(&link);
    b.click("#confirm");
    b.click("#submit");
    // The username is checked again: the form, saying so, filled in.
    assert_eq!(b.text("#error"), "That username is taken.");
    assert_eq!(b.status(), 400);
    let value = |id: &str| {
        b.execute(
            "return document.getElementById(arguments[0]).value;",
            vec![json!(id)],
        )
    };
    assert_eq!(value("username"), json!("erin"));
    assert_eq!(value("email"), json!("erin@example.org"));
    b.screenshot("register-email-name-taken");
    assert_page_sound(&b);
    assert_eq!(s.login("erin", "another passphrase").status, 200);
    assert_eq!(s.login("erin", PASSWORD).status, 403);
    // Another name: a new link, and the account.
    b.execute("document.getElementById('username').value = '';", vec![]);
    fill_registration(&b, "erin2", "");
    b.wait_for("#sent");
    let link = sink
        .wait_for_message(Duration::from_secs(20))
        .text_line_containing("/_account/v1/3pid/validate?")
        .expect("a second validation link");
    b.open(&link);
    b.click("#confirm");
    b.click("#submit");
    b.wait_for("#allow");
    assert_eq!(b.text("#user"), "@erin2:test.local");
    let tokens = c.exchange(&allow(&b, &cb)).expect("code exchange");
    let threepids = s.get(
        "/_matrix/client/v3/account/3pid",
        Some(&tokens.access_token),
    );
    assert_eq!(
        threepids.body["threepids"][0]["address"],
        "erin@example.org"
    );
}

/// Logs `user` in and allows a request for `device`; the callback URL.
fn authorise(b: &Browser, c: &mut OAuthClient, cb: &Callback, user: &str, device: &str) -> String {
    let auth = c
        .authorization_url(&AuthorizationParams::new(
            &cb.redirect_uri(),
            &scope(device),
        ))
        .unwrap();
    b.open(&auth.url);
    b.wait_for("main");
    if b.exists("#username") {
        log_in(b, user);
    }
    allow(b, cb)
}

/// The tokens of `device` after `user` logged in and allowed it.
fn signed_in(b: &Browser, c: &mut OAuthClient, cb: &Callback, user: &str, device: &str) -> Tokens {
    let landed = authorise(b, c, cb, user, device);
    c.exchange(&landed).expect("code exchange")
}

#[test]
fn codes_need_their_verifier_work_once_and_a_reuse_revokes_what_they_gave() {
    let Some(s) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    let Some(b) = Browser::start(Viewport::Phone) else {
        return;
    };
    let Some(mut c) = registered_client(&s) else {
        return;
    };
    s.register("carol", PASSWORD);
    let cb = Callback::start();
    let landed = authorise(&b, &mut c, &cb, "carol", "TABLET");

    let wrong = ExchangeOptions {
        code_verifier: Some(Some("a".repeat(43))),
        ..ExchangeOptions::default()
    };
    let e = c.exchange_with(&landed, &wrong).unwrap_err();
    assert_eq!(e.error.as_deref(), Some("invalid_grant"), "{e:?}");
    assert_eq!(e.status, Some(400));
    // The library always sends the redirect URI it was given; a token request
    // by hand sends another one.
    let driver = c.state().unwrap();
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("client_id", driver["client_id"].as_str().unwrap())
        .append_pair("code", &param(&landed, "code").unwrap())
        .append_pair("redirect_uri", "http://127.0.0.1:1/callback")
        .append_pair("code_verifier", driver["code_verifier"].as_str().unwrap())
        .finish();
    let req = http::Request::post(format!("{}/_account/v1/oauth2/token", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.into_bytes())
        .unwrap();
    let resp = s.send_http(req);
    let body: Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(
        (resp.status().as_u16(), &body["error"]),
        (400, &json!("invalid_grant")),
        "{body}"
    );
    // The refused attempts did not use the code up.
    let tokens = c
        .exchange(&landed)
        .expect("exchange with the right verifier");
    assert!(whoami(&s, &tokens.access_token).is_ok());
    let e = c.exchange(&landed).unwrap_err();
    assert_eq!(e.error.as_deref(), Some("invalid_grant"), "{e:?}");
    // Someone holds a copy of the code: what it gave is revoked.
    assert_eq!(whoami(&s, &tokens.access_token), Err(401));
}

#[test]
fn a_replayed_refresh_token_ends_the_session_and_reusing_a_device_replaces_its_tokens() {
    let Some(s) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    let Some(b) = Browser::start(Viewport::Phone) else {
        return;
    };
    let Some(mut c) = registered_client(&s) else {
        return;
    };
    s.register("dave", PASSWORD);
    let cb = Callback::start();
    let first = signed_in(&b, &mut c, &cb, "dave", "LAPTOP");
    // A lost answer: the same refresh token may be used again until the new
    // pair is used.
    let lost = c.refresh(first.refresh_token.as_deref()).unwrap();
    let retried: Tokens = c.refresh(first.refresh_token.as_deref()).unwrap();
    assert_eq!(
        whoami(&s, &lost.access_token),
        Err(401),
        "the retry replaced the lost pair"
    );
    assert!(whoami(&s, &retried.access_token).is_ok());
    // Now the old token is retired; its replay is theft and ends the session.
    let e = c.refresh(first.refresh_token.as_deref()).unwrap_err();
    assert_eq!(e.error.as_deref(), Some("invalid_grant"), "{e:?}");
    assert_eq!(whoami(&s, &retried.access_token), Err(401));
    let e = c.refresh(retried.refresh_token.as_deref()).unwrap_err();
    assert_eq!(e.error.as_deref(), Some("invalid_grant"), "{e:?}");

    // Logging the same device in again replaces its tokens.
    let again = signed_in(&b, &mut c, &cb, "dave", "LAPTOP");
    let third = signed_in(&b, &mut c, &cb, "dave", "LAPTOP");
    assert_eq!(whoami(&s, &again.access_token), Err(401));
    assert_eq!(
        whoami(&s, &third.access_token).map(|w| w.1),
        Ok("LAPTOP".into())
    );
    // A token of this client is not another client's to revoke or refresh.
    let Some(mut other) = registered_client(&s) else {
        return;
    };
    let e = other.revoke(&third.access_token, None).unwrap_err();
    assert_eq!(e.status, Some(401), "{e:?}");
    let e = other.refresh(third.refresh_token.as_deref()).unwrap_err();
    assert_eq!(e.error.as_deref(), Some("invalid_grant"), "{e:?}");
    assert!(whoami(&s, &third.access_token).is_ok());
}

#[test]
fn registration_refuses_redirect_uris_the_spec_forbids() {
    let Some(s) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    let Some(mut c) = OAuthClient::start() else {
        return;
    };
    c.discover(&s.base).unwrap();
    for (uris, kind) in [
        (json!(["http://127.0.0.1/callback#frag"]), "native"),
        (json!(["http://app.example.org/callback"]), "native"),
        (json!(["http://localhost:1234/callback"]), "native"),
        (json!(["example:/callback"]), "native"),
        (json!(["http://app.example.org/callback"]), "web"),
    ] {
        let mut metadata = native_client();
        metadata["redirect_uris"] = uris.clone();
        metadata["application_type"] = json!(kind);
        let e = c.register(metadata).unwrap_err();
        assert_eq!(
            e.error.as_deref(),
            Some("invalid_redirect_uri"),
            "{uris} {kind}: {e:?}"
        );
        assert_eq!(e.status, Some(400));
    }
    let mut metadata = native_client();
    metadata["token_endpoint_auth_method"] = json!("client_secret_basic");
    let e = c.register(metadata).unwrap_err();
    assert_eq!(e.error.as_deref(), Some("invalid_client_metadata"), "{e:?}");
}

#[test]
fn the_authorisation_endpoint_refuses_to_the_page_or_to_the_client() {
    let Some(s) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    let Some(mut c) = registered_client(&s) else {
        return;
    };
    let client_id = c.state().unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let query = |redirect: &str, scope: &str, extra: &str| {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", redirect)
            .append_pair("scope", scope)
            .append_pair("state", "st")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        format!("/_account/v1/oauth2/authorize?{q}{extra}")
    };
    let good = "http://127.0.0.1:5555/callback";
    // An address the client did not register: a page, never a redirect.
    for redirect in [
        "http://evil.example/callback",
        "http://127.0.0.1:5555/other",
    ] {
        let (status, location, body) = get_no_redirect(&s, &query(redirect, &scope("D"), ""));
        assert_eq!((status, location), (400, None), "{redirect}");
        assert!(body.contains("did not register"), "{body}");
    }
    let (status, _, _) = get_no_redirect(&s, "/_account/v1/oauth2/authorize?client_id=nobody");
    assert_eq!(status, 400);
    // Everything else goes back to the client, with the state.
    let refusals = [
        (query(good, "urn:matrix:client:api:*", ""), "invalid_scope"),
        (
            query(
                good,
                &format!("{} urn:matrix:client:device:E", scope("D")),
                "",
            ),
            "invalid_scope",
        ),
        (
            query(good, &scope("D"), "&response_mode=form_post"),
            "invalid_request",
        ),
    ];
    for (path, error) in refusals {
        let (status, location, _) = get_no_redirect(&s, &path);
        assert_eq!(status, 303, "{path}");
        let location = location.unwrap();
        assert!(location.starts_with(good), "{location}");
        assert_eq!(
            param(&location, "error").as_deref(),
            Some(error),
            "{location}"
        );
        assert_eq!(param(&location, "state").as_deref(), Some("st"));
    }
    // Without PKCE.
    let q = format!(
        "/_account/v1/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope={}",
        form_urlencoded::byte_serialize(good.as_bytes()).collect::<String>(),
        form_urlencoded::byte_serialize(scope("D").as_bytes()).collect::<String>(),
    );
    let (_, location, _) = get_no_redirect(&s, &q);
    assert_eq!(
        param(&location.unwrap(), "error").as_deref(),
        Some("invalid_request")
    );
    // The unstable scope spelling that matrix-rust-sdk sends is accepted.
    let unstable =
        "urn:matrix:org.matrix.msc2967.client:api:* urn:matrix:org.matrix.msc2967.client:device:D";
    let (status, location, _) = get_no_redirect(&s, &query(good, unstable, ""));
    assert_eq!(status, 303);
    assert!(location
        .unwrap()
        .starts_with("/_account/v1/consent?session="));
}

#[test]
fn forms_without_their_csrf_cookie_are_refused() {
    let Some(s) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    for (path, form) in [
        (
            "/_account/v1/login",
            "session=x&csrf=csrf_forged&username=a&password=b",
        ),
        (
            "/_account/v1/consent",
            "session=x&csrf=csrf_forged&action=allow",
        ),
        (
            "/_account/v1/register",
            "session=x&csrf=csrf_forged&username=a&password=b",
        ),
        ("/_account/v1/register/email", "session=x&csrf=csrf_forged"),
        ("/_account/v1/device", "csrf=csrf_forged&user_code=BCDFGHJK"),
        (
            "/_account/v1/device/consent",
            "session=ods_x&csrf=csrf_forged&action=allow",
        ),
    ] {
        let req = http::Request::post(format!("{}{path}", s.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", "oauth_csrf=csrf_other")
            .body(form.as_bytes().to_vec())
            .unwrap();
        let resp = s.send_http(req);
        assert_eq!(resp.status(), 403, "{path}");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
}

/// `GET /login/sso/redirect` of a legacy client through the browser: the
/// login token it lands with, from the URL.
fn sso_login_token(b: &Browser, s: &TestServer, cb: &Callback, action: &str) -> String {
    let redirect = format!("http://127.0.0.1:{}/sso-callback?app=1", cb.port);
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("redirectUrl", &redirect)
        .append_pair("action", action)
        .finish();
    b.open(&format!(
        "{}/_matrix/client/v3/login/sso/redirect?{q}",
        s.base
    ));
    b.wait_for("#username");
    if action == "register" {
        assert!(b.url().contains("/_account/v1/register?"), "{}", b.url());
        b.type_into("#username", "frank");
        b.type_into("#password", PASSWORD);
        b.click("#submit");
    } else {
        log_in(b, "grace");
    }
    b.wait_for("#allow");
    assert_eq!(b.text("h1"), "Continue to 127.0.0.1?");
    assert!(
        !b.exists("#device"),
        "the client chooses its device at /login"
    );
    b.screenshot(&format!("sso-{action}-continue"));
    assert_page_sound(b);
    let landed = answer(b, cb, "#allow");
    assert!(landed.starts_with(&redirect), "{landed}");
    assert_eq!(param(&landed, "app").as_deref(), Some("1"));
    param(&landed, "loginToken").expect("a login token")
}

#[test]
fn an_oauth_aware_legacy_client_signs_in_and_registers_through_the_sso_redirect() {
    let Some(s) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    let Some(b) = Browser::start(Viewport::Phone) else {
        return;
    };
    let flows = s.get("/_matrix/client/v3/login", None).body["flows"].clone();
    let sso = flows
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "m.login.sso")
        .cloned();
    assert_eq!(
        sso,
        Some(json!({"type": "m.login.sso", "oauth_aware_preferred": true}))
    );
    s.register("grace", PASSWORD);
    let cb = Callback::start();
    for (action, user) in [
        ("login", "@grace:test.local"),
        ("register", "@frank:test.local"),
    ] {
        let token = sso_login_token(&b, &s, &cb, action);
        let login = json!({"type": "m.login.token", "token": token, "device_id": "LEGACY"});
        let r = s.post("/_matrix/client/v3/login", None, login.clone());
        assert_eq!(
            (r.status, r.body["user_id"].as_str()),
            (200, Some(user)),
            "{r:?}"
        );
        let access = r.body["access_token"].as_str().unwrap();
        assert_eq!(whoami(&s, access), Ok((user.to_string(), "LEGACY".into())));
        // A login token works once.
        assert_eq!(s.post("/_matrix/client/v3/login", None, login).status, 403);
        // The browser session remains: the next redirect goes straight to
        // the confirmation.
    }
    for bad in [
        "javascript:alert(1)",
        "/relative",
        "https://app.example/#frag",
    ] {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("redirectUrl", bad)
            .finish();
        let (status, location, _) =
            get_no_redirect(&s, &format!("/_matrix/client/v3/login/sso/redirect?{q}"));
        assert_eq!((status, location), (400, None), "{bad}");
    }
}

#[test]
fn the_modes_switch_the_other_api_off() {
    let Some(legacy) = TestServer::start(Db::Sqlite, "[oauth]\napis = \"legacy\"\n") else {
        return;
    };
    for path in [
        "/_matrix/client/v1/auth_metadata",
        "/.well-known/oauth-authorization-server",
        "/_account/v1/oauth2/authorize",
        "/_account/v1/device",
    ] {
        let r = legacy.get(path, None);
        assert_eq!((r.status, r.errcode()), (404, "M_UNRECOGNIZED"), "{path}");
    }
    let flows = legacy.get("/_matrix/client/v3/login", None);
    assert_eq!(flows.status, 200);
    assert!(!flows.body.to_string().contains("m.login.sso"), "{flows:?}");
    let r = legacy.get(
        "/_matrix/client/v3/login/sso/redirect?redirectUrl=https://a.example/",
        None,
    );
    assert_eq!((r.status, r.errcode()), (404, "M_UNRECOGNIZED"));

    let Some(oauth) = TestServer::start(Db::Sqlite, "[oauth]\napis = \"oauth\"\n") else {
        return;
    };
    let r = oauth.get("/_matrix/client/v3/login", None);
    assert_eq!((r.status, r.errcode()), (404, "M_UNRECOGNIZED"));
    let r = oauth.post(
        "/_matrix/client/v3/register",
        None,
        json!({"username": "x"}),
    );
    assert_eq!((r.status, r.errcode()), (404, "M_UNRECOGNIZED"));
    let r = oauth.post(
        "/_matrix/client/v3/refresh",
        None,
        json!({"refresh_token": "x"}),
    );
    assert_eq!((r.status, r.errcode()), (404, "M_UNRECOGNIZED"));
    assert_eq!(
        oauth.get("/_matrix/client/v1/auth_metadata", None).status,
        200
    );

    let Some(both) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    assert_eq!(both.get("/_matrix/client/v3/login", None).status, 200);
    assert_eq!(
        both.get("/_matrix/client/v1/auth_metadata", None).status,
        200
    );
}

#[test]
fn a_flow_started_on_one_process_completes_on_another_sharing_postgresql() {
    let Some(a) = TestServer::start(Db::Postgres, "") else {
        return;
    };
    let b_server = a.another_process();
    let Some(b) = Browser::start(Viewport::Phone) else {
        return;
    };
    let Some(mut on_a) = registered_client(&a) else {
        return;
    };
    a.register("erin", PASSWORD);
    let cb = Callback::start();
    let auth = on_a
        .authorization_url(&AuthorizationParams::new(
            &cb.redirect_uri(),
            &scope("PGDEVICE"),
        ))
        .unwrap();
    b.open(&auth.url);
    b.wait_for("#username");
    // The same pages, served by the other process (cookies do not depend on
    // the port, so the browser's go along).
    let on_other = b.url().replace(&a.base, &b_server.base);
    assert_ne!(on_other, b.url());
    b.open(&on_other);
    log_in(&b, "erin");
    let landed = allow(&b, &cb);
    assert!(b.url().starts_with(&cb.redirect_uri()));
    // The code is exchanged at the other process's token endpoint.
    let client_id = on_a.state().unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let Some(mut on_b) = OAuthClient::start() else {
        return;
    };
    on_b.discover(&b_server.base).unwrap();
    on_b.use_client(&client_id).unwrap();
    let opts = ExchangeOptions {
        code_verifier: Some(auth.code_verifier.clone()),
        expected_state: Some(Some(auth.state.clone())),
        ..ExchangeOptions::default()
    };
    // The library checks `iss` against the issuer it discovered: B's.
    let landed = landed.replace(
        &form_urlencoded::byte_serialize(format!("{}/", a.base).as_bytes()).collect::<String>(),
        &form_urlencoded::byte_serialize(format!("{}/", b_server.base).as_bytes())
            .collect::<String>(),
    );
    let tokens = on_b
        .exchange_with(&landed, &opts)
        .expect("exchange on the other process");
    assert_eq!(
        whoami(&a, &tokens.access_token),
        Ok(("@erin:test.local".into(), "PGDEVICE".into()))
    );
    let refreshed = on_a.refresh(tokens.refresh_token.as_deref());
    assert!(refreshed.is_ok(), "{refreshed:?}");
}

// The device authorisation grant (RFC 8628): a device shows a code, a person
// types it on the verification page in a browser, logs in and answers; the
// device polls the token endpoint meanwhile.

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Test servers poll quickly: openid-client's loop waits `interval` seconds
/// between polls.
const DEVICE_CONFIG: &str = "[oauth]\ndevice_poll_interval_secs = 1\n";

/// The registration of a client that signs in with the device grant only: no
/// redirect URIs.
fn device_client() -> Value {
    json!({
        "client_name": "Test TV",
        "client_uri": "https://tv.example.org/",
        "application_type": "native",
        "token_endpoint_auth_method": "none",
        "grant_types": [DEVICE_GRANT, "refresh_token"],
        "response_types": [],
    })
}

/// A device client discovered at `s` and registered.
fn registered_device_client(s: &TestServer) -> Option<OAuthClient> {
    let mut c = OAuthClient::start()?;
    c.discover(&s.base).expect("discovery");
    c.register(device_client()).expect("registration");
    Some(c)
}

/// Whether `code` is shown as RFC 8628 §6.1 suggests: `XXXX-XXXX`, consonants.
fn is_user_code(code: &str) -> bool {
    code.len() == 9
        && code.char_indices().all(|(i, c)| match i {
            4 => c == '-',
            _ => "BCDFGHJKLMNPQRSTVWXZ".contains(c),
        })
}

/// What `c`'s polling loop (openid-client's) ends with, run while `person`
/// acts in the browser.
// OAuthFailure is large on purpose (see support/oauth_client.rs).
#[allow(clippy::result_large_err)]
fn poll_while(c: &mut OAuthClient, person: impl FnOnce()) -> Result<Tokens, OAuthFailure> {
    std::thread::scope(|scope| {
        let poller = scope.spawn(|| c.device_poll(Duration::from_secs(90)));
        person();
        poller.join().unwrap()
    })
}

/// Submits `code` on the verification page the browser shows.
fn enter_code(b: &Browser, code: &str) {
    b.wait_for("#user_code");
    b.type_into("#user_code", code);
    b.click("#submit");
}

/// The device-code token request of `client_id`, sent by hand: the status and
/// the body.
fn poll_by_hand(s: &TestServer, client_id: &str, device_code: &str) -> (u16, Value) {
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", DEVICE_GRANT)
        .append_pair("client_id", client_id)
        .append_pair("device_code", device_code)
        .finish();
    let req = http::Request::post(format!("{}/_account/v1/oauth2/token", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.into_bytes())
        .unwrap();
    let resp = s.send_http(req);
    let body: Value = serde_json::from_slice(resp.body()).unwrap();
    (resp.status().as_u16(), body)
}

#[test]
fn a_device_signs_in_with_a_code_typed_in_a_browser_or_is_denied() {
    let Some(s) = TestServer::start(Db::Sqlite, DEVICE_CONFIG) else {
        return;
    };
    let Some(b) = Browser::start(Viewport::Phone) else {
        return;
    };
    let Some(mut c) = OAuthClient::start() else {
        return;
    };
    s.register("frank", PASSWORD);
    let discovery = c.discover(&s.base).expect("discovery");
    let m = &discovery.metadata;
    assert_eq!(
        m["device_authorization_endpoint"],
        format!("{}/_account/v1/oauth2/device_authorization", s.base)
    );
    assert!(
        m["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(DEVICE_GRANT)),
        "{m}"
    );
    let registered = c.register(device_client()).expect("registration");
    assert_eq!(
        registered["grant_types"],
        json!([DEVICE_GRANT, "refresh_token"])
    );

    let device = c.device_start(&scope("TV1")).expect("device authorisation");
    let http = c.last_http().unwrap();
    assert_eq!(http["headers"]["cache-control"], "no-store", "{http}");
    let raw: Value = serde_json::from_str(http["body"].as_str().unwrap()).unwrap();
    // An integer, as RFC 8628 §3.2 has it: a client may refuse `1.0`.
    assert_eq!(raw["interval"].as_u64(), Some(1), "{raw}");
    assert_eq!(raw["expires_in"].as_u64(), Some(600), "{raw}");
    assert!(is_user_code(&device.user_code), "{}", device.user_code);
    assert_eq!(
        device.verification_uri,
        format!("{}/_account/v1/device", s.base)
    );
    let complete = device.verification_uri_complete.clone().unwrap();
    assert_eq!(
        complete,
        format!("{}?code={}", device.verification_uri, device.user_code)
    );
    assert_eq!(device.interval, Some(1.0));

    // Nobody has answered: pending; polled again at once: slow down.
    let e = c.device_poll_once().unwrap_err();
    assert_eq!(
        (e.status, e.error.as_deref()),
        (Some(400), Some("authorization_pending")),
        "{e:?}"
    );
    let e = c.device_poll_once().unwrap_err();
    assert_eq!(e.error.as_deref(), Some("slow_down"), "{e:?}");

    // The library's loop polls while the person answers in the browser.
    let tokens = poll_while(&mut c, || {
        b.open(&complete);
        b.wait_for("#user_code");
        // The link filled the code in; nothing is looked up before the post.
        let filled = b.execute("return document.querySelector('#user_code').value;", vec![]);
        assert_eq!(filled, json!(device.user_code));
        assert_eq!(b.text("label[for=user_code]"), "Code");
        b.screenshot("device-code");
        assert_page_sound(&b);
        b.click("#submit");
        // Nobody is logged in: the consent page sent the browser to log in.
        b.wait_for("#username");
        assert!(
            b.url().contains("/_account/v1/login?session=ods_"),
            "{}",
            b.url()
        );
        assert!(b.text("main").contains("Test TV"), "{}", b.text("main"));
        // A person without an account may create one here too.
        assert!(b.exists("#register"));
        b.screenshot("device-login");
        assert_page_sound(&b);
        log_in(&b, "frank");
        b.wait_for("#allow");
        assert!(
            b.url().contains("/_account/v1/device/consent?session="),
            "{}",
            b.url()
        );
        assert_eq!(b.text("#user"), "@frank:test.local");
        assert_eq!(b.text("#device"), "TV1");
        assert_eq!(b.text("#client-uri"), "https://tv.example.org/");
        b.screenshot("device-consent");
        assert_page_sound(&b);
        b.click("#allow");
        b.wait_for("#message");
        // The browser stays on this server: the device learns it by polling.
        assert!(
            b.url()
                .starts_with(&format!("{}/_account/v1/device/done", s.base)),
            "{}",
            b.url()
        );
        assert_eq!(b.text("h1"), "Device allowed");
        assert!(b.text("main").contains("Go back to your device"));
        b.screenshot("device-done");
        assert_page_sound(&b);
    })
    .expect("the device's tokens");
    assert_eq!(tokens.token_type, "bearer");
    assert_eq!(tokens.scope.as_deref(), Some(scope("TV1").as_str()));
    assert!(tokens.refresh_token.is_some(), "{:?}", tokens.raw);
    assert_eq!(
        whoami(&s, &tokens.access_token),
        Ok(("@frank:test.local".into(), "TV1".into()))
    );
    // The tokens come once.
    let e = c.device_poll_once().unwrap_err();
    assert_eq!(e.error.as_deref(), Some("invalid_grant"), "{e:?}");
    assert!(whoami(&s, &tokens.access_token).is_ok(), "nothing revoked");
    // The device's refresh token is the client's, as with the code grant.
    let refreshed = c.refresh(None).expect("refresh");
    assert_eq!(
        whoami(&s, &refreshed.access_token).map(|w| w.1),
        Ok("TV1".into())
    );

    // A second device; the person types its code by hand, in lower case and
    // without the dash, and denies it. The browser session remains, so the
    // code leads straight to consent.
    let second = c.device_start(&scope("TV2")).expect("device authorisation");
    let denied = poll_while(&mut c, || {
        b.open(&second.verification_uri);
        let typed = second.user_code.replace('-', "").to_lowercase();
        enter_code(&b, &typed);
        b.wait_for("#deny");
        assert_eq!(b.text("#device"), "TV2");
        b.click("#deny");
        b.wait_for("#message");
        assert_eq!(b.text("h1"), "Device denied");
        b.screenshot("device-denied");
        assert_page_sound(&b);
    })
    .unwrap_err();
    assert_eq!(denied.error.as_deref(), Some("access_denied"), "{denied:?}");
    assert_eq!(denied.status, Some(400));
    // The code is answered: the page no longer knows it.
    b.open(&second.verification_uri);
    enter_code(&b, &second.user_code);
    b.wait_for("#error");
    assert_eq!(b.status(), 400);
}

#[test]
fn device_codes_expire_and_unknown_codes_wrong_clients_and_guessing_are_refused() {
    let config = "[oauth]\ndevice_poll_interval_secs = 1\ndevice_code_lifetime_secs = 2\n\
                  [rate_limits]\nenabled = true\n\
                  [rate_limits.device_code_entry]\nper_second = 0.001\nburst = 3\n";
    let Some(s) = TestServer::start(Db::Sqlite, config) else {
        return;
    };
    let Some(b) = Browser::start(Viewport::Phone) else {
        return;
    };
    let Some(mut c) = registered_device_client(&s) else {
        return;
    };
    // A code nobody was given: the page says so (and it counts).
    b.open(&format!("{}/_account/v1/device", s.base));
    enter_code(&b, "BCDF-GHJK");
    assert!(
        b.text("#error").contains("not known"),
        "{}",
        b.text("#error")
    );
    assert_eq!(b.status(), 400);
    // The form again, with what was typed.
    assert_eq!(
        b.execute("return document.querySelector('#user_code').value;", vec![]),
        json!("BCDF-GHJK")
    );
    b.screenshot("device-unknown-code");
    assert_page_sound(&b);

    // A code that expires before anyone answers.
    let device = c
        .device_start(&scope("OLDTV"))
        .expect("device authorisation");
    assert_eq!(device.expires_in, 2.0);
    let e = c.device_poll_once().unwrap_err();
    assert_eq!(e.error.as_deref(), Some("authorization_pending"), "{e:?}");
    std::thread::sleep(Duration::from_millis(2500));
    let e = c.device_poll_once().unwrap_err();
    assert_eq!(
        (e.status, e.error.as_deref()),
        (Some(400), Some("expired_token")),
        "{e:?}"
    );
    b.open(device.verification_uri_complete.as_deref().unwrap());
    b.click("#submit");
    assert!(b.text("#error").contains("expired"), "{}", b.text("#error"));

    // Another client's device code is no grant of this one.
    let live = c.device_start(&scope("TV")).expect("device authorisation");
    let Some(other) = registered_device_client(&s) else {
        return;
    };
    let mut other = other;
    let other_id = other.state().unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = poll_by_hand(&s, &other_id, &live.device_code);
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_grant")),
        "{body}"
    );

    // A third wrong code uses up the bucket; the fourth entry, even of a good
    // code, is refused with a page saying when to try again.
    b.open(&format!("{}/_account/v1/device", s.base));
    enter_code(&b, "not a code");
    b.wait_for("#error");
    b.open(&live.verification_uri_complete.clone().unwrap());
    b.click("#submit");
    b.wait_for("#error");
    assert_eq!(b.status(), 429);
    assert!(
        b.text("#error").contains("Try again in"),
        "{}",
        b.text("#error")
    );
    b.screenshot("device-too-many-codes");
    assert_page_sound(&b);

    // A client registered without the device grant, an unknown client and a
    // scope without a device are refused.
    let Some(mut code_only) = registered_client(&s) else {
        return;
    };
    let e = code_only.device_start(&scope("TV")).unwrap_err();
    assert_eq!(
        (e.status, e.error.as_deref()),
        (Some(400), Some("unauthorized_client")),
        "{e:?}"
    );
    other.use_client("nobody").unwrap();
    let e = other.device_start(&scope("TV")).unwrap_err();
    assert_eq!(
        (e.status, e.error.as_deref()),
        (Some(401), Some("invalid_client")),
        "{e:?}"
    );
    let e = c.device_start("urn:matrix:client:api:*").unwrap_err();
    assert_eq!(e.error.as_deref(), Some("invalid_scope"), "{e:?}");
}

#[test]
fn a_new_account_allows_a_device_and_racing_polls_on_two_processes_get_the_tokens_once() {
    let Some(a) = TestServer::start(Db::Postgres, DEVICE_CONFIG) else {
        return;
    };
    let b_server = a.another_process();
    let Some(b) = Browser::start(Viewport::Desktop) else {
        return;
    };
    let Some(mut c) = registered_device_client(&a) else {
        return;
    };
    let client_id = c.state().unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let device = c
        .device_start(&scope("PGTV"))
        .expect("device authorisation");
    // The verification page of the other process (both share the database).
    let page = device
        .verification_uri_complete
        .clone()
        .unwrap()
        .replace(&a.base, &b_server.base);
    b.open(&page);
    b.click("#submit");
    // A person without an account creates one on the way (the login page
    // offers it for a device too) and comes back to the device's consent.
    b.click("#register");
    b.wait_for("#password");
    b.type_into("#username", "grace");
    b.type_into("#password", PASSWORD);
    b.click("#submit");
    b.wait_for("#allow");
    assert_eq!(b.text("#user"), "@grace:test.local");
    assert_eq!(b.text("#device"), "PGTV");
    b.click("#allow");
    b.wait_for("#message");
    b.screenshot("device-done-desktop");
    assert_page_sound(&b);
    let polls: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let racers: Vec<_> = [&a, &b_server, &a, &b_server]
            .into_iter()
            .map(|s| {
                let (client_id, device_code) = (&client_id, &device.device_code);
                scope.spawn(move || poll_by_hand(s, client_id, device_code))
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let tokens: Vec<&Value> = polls
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(tokens.len(), 1, "{polls:?}");
    assert!(
        polls
            .iter()
            .all(|(status, body)| *status == 200 || body["error"] == "invalid_grant"),
        "{polls:?}"
    );
    assert_eq!(
        whoami(&a, tokens[0]["access_token"].as_str().unwrap()),
        Ok(("@grace:test.local".into(), "PGTV".into()))
    );
}
