//! The email validation pages in a real browser: the server mails a message
//! over SMTP (to the real sink of `support/smtp.rs`), headless Chromium (see
//! `support/browser.rs`) opens the message's link, and the test clicks the
//! button as a person would. Proves the pages render and style under their
//! CSP, that only the button validates, that the form's CSRF cookie round-trips
//! through a real browser, and where the browser ends up. Screenshots go to
//! `<target dir>/test-screenshots/<test>/`. On SQLite only (tests/email.rs
//! covers PostgreSQL).

use std::time::Duration;

use matrix_api::client_server::registration::{self, request_token_to_register_email};
use matrix_api::types::RequestEmailValidation;
use matrix_tests::browser::{Browser, Viewport};
use matrix_tests::server::{auth_stage, ApiClient, Db, TestServer};
use matrix_tests::smtp::{Message, Mode, SmtpSink};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// The stylesheet every page links, and what it makes of the button
/// (`background: #0b6e4f` in server/templates/pages/style.css; a browser's
/// default button is grey).
const STYLESHEET: &str = "/_account/v1/static/style.css";
const BUTTON_BACKGROUND: &str = "rgb(11, 110, 79)";
/// `main { background: #fff }` (the default is transparent).
const MAIN_BACKGROUND: &str = "rgb(255, 255, 255)";

struct Setup {
    // Dropped in this order: the browser, then the server, then the sink.
    browser: Browser,
    server: TestServer,
    sink: SmtpSink,
}

/// A browser, an SMTP sink and a server (SQLite) mailing to it; `None` when
/// one of them is unavailable (skipped).
fn setup() -> Option<Setup> {
    let browser = Browser::start(Viewport::Phone)?;
    let sink = SmtpSink::start(Mode::Accept)?;
    let config = format!(
        "[email]\nsmtp_url = \"smtp://127.0.0.1:{}\"\nfrom = \"Test <noreply@test.local>\"\n",
        sink.port()
    );
    let server = TestServer::start(Db::Sqlite, &config)?;
    Some(Setup {
        browser,
        server,
        sink,
    })
}

/// Asks for a registration token for `email`; returns the session id.
fn request_token(c: &ApiClient, secret: &str, email: &str, next_link: Option<String>) -> String {
    let mut body = RequestEmailValidation::new(secret.into(), email.into(), 1);
    body.next_link = next_link;
    match c.send(&request_token_to_register_email::Request::new(body)) {
        Ok(request_token_to_register_email::Response::Ok(r)) => r.sid,
        other => panic!("{other:?}"),
    }
}

/// The validation link in a message's text part.
fn link(m: &Message) -> String {
    m.text_line_containing("/_account/v1/3pid/validate?")
        .expect("a validation link")
}

/// A registration of `user` whose only stage is the email session `sid`:
/// `Ok(user_id)` once the address is validated, else `Err(errcode)`.
fn register_with_email(
    c: &ApiClient,
    user: &str,
    sid: &str,
    secret: &str,
) -> Result<String, String> {
    let mut body = registration::register::RequestBody::new();
    body.username = Some(user.into());
    body.password = Some("correct horse".into());
    let uia = match c.send(&registration::register::Request::new(body.clone())) {
        Ok(registration::register::Response::Unauthorized(uia)) => uia,
        other => panic!("{other:?}"),
    };
    let mut auth = auth_stage("m.login.email.identity", uia.session);
    auth.extra.insert(
        "threepid_creds".into(),
        json!({"sid": sid, "client_secret": secret}),
    );
    body.auth = Some(auth);
    match c.send(&registration::register::Request::new(body)) {
        Ok(registration::register::Response::Ok(done)) => Ok(done.user_id.to_string()),
        Ok(registration::register::Response::Unauthorized(again)) => {
            Err(again.errcode.unwrap_or_default())
        }
        other => panic!("{other:?}"),
    }
}

/// Console errors every page has: the browser asks for `/favicon.ico`, which
/// the server does not serve (404).
const FAVICON: &str = "/favicon.ico - ";

/// What every page must be: its stylesheet applied (so `style-src 'self'`
/// admits it: `styled` has the stylesheet's `background-color`), nothing
/// blocked by the CSP, no other error in the console but `expected`, and no
/// sideways scrolling.
fn assert_page_sound(b: &Browser, styled: &str, expected: &[&str]) {
    let background = match styled {
        "button" => BUTTON_BACKGROUND,
        _ => MAIN_BACKGROUND,
    };
    b.assert_styled(STYLESHEET, styled, "background-color", background);
    b.assert_console_clean(&[&[FAVICON], expected].concat());
    b.assert_fits_width();
}

#[test]
fn the_emailed_link_validates_on_the_button_in_a_real_browser() {
    let Some(Setup {
        browser: b,
        server: s,
        sink,
    }) = setup()
    else {
        return;
    };
    let c = s.client();
    let sid = request_token(&c, "in-browser", "ivy@example.org", None);
    let link = link(&sink.wait_for_message(WAIT));
    assert!(link.starts_with(&s.base), "{link} is this server");

    b.open(&link);
    b.screenshot("validate");
    assert_eq!(b.status(), 200);
    assert_eq!(b.title(), "Confirm ivy@example.org");
    let page = b.text("main");
    assert!(page.contains("ivy@example.org"), "{page}");
    assert!(page.contains("test.local"), "{page}");
    assert_eq!(b.text("#confirm"), "Confirm ivy@example.org");
    assert_page_sound(&b, "button", &[]);
    // The same page on a desktop.
    b.set_viewport(Viewport::Desktop);
    b.screenshot("validate-desktop");
    assert_page_sound(&b, "button", &[]);
    b.set_viewport(Viewport::Phone);

    // Loading the page (as a link preview would) validated nothing.
    assert_eq!(
        register_with_email(&c, "ivy", &sid, "in-browser"),
        Err("M_UNAUTHORIZED".into())
    );

    b.click("#confirm");
    assert_eq!(b.text("#done"), "Confirmed");
    assert_eq!(b.url(), format!("{}/_account/v1/3pid/validated", s.base));
    assert_eq!(b.status(), 200);
    b.screenshot("validated");
    assert_page_sound(&b, "main", &[]);

    assert_eq!(
        register_with_email(&c, "ivy", &sid, "in-browser"),
        Ok("@ivy:test.local".into())
    );
}

#[test]
fn after_the_button_the_browser_follows_next_link() {
    let Some(Setup {
        browser: b,
        server: s,
        sink,
    }) = setup()
    else {
        return;
    };
    let c = s.client();
    // Another origin than the page's (`localhost`, not `127.0.0.1`), as a
    // client's next_link is: no CSP of the page may stop the redirect.
    let next_link = format!(
        "{}/_account/v1/3pid/validated?from=next",
        s.base.replace("127.0.0.1", "localhost")
    );
    let sid = request_token(&c, "next", "jo@example.org", Some(next_link.clone()));
    b.open(&link(&sink.wait_for_message(WAIT)));
    b.click("#confirm");
    b.wait_for("#done");
    assert_eq!(b.url(), next_link, "the 303 to next_link was followed");
    b.screenshot("next-link");
    assert_page_sound(&b, "main", &[]);
    assert_eq!(
        register_with_email(&c, "jo", &sid, "next"),
        Ok("@jo:test.local".into())
    );
}

#[test]
fn a_wrong_or_unknown_link_shows_the_error_page() {
    let Some(Setup {
        browser: b,
        server: s,
        sink,
    }) = setup()
    else {
        return;
    };
    let c = s.client();
    let sid = request_token(&c, "tamper", "kim@example.org", None);
    let link = link(&sink.wait_for_message(WAIT));
    let (start, token) = link.split_once("token=").expect("a token in the link");
    let token = token.split('&').next().unwrap();
    // The same code with its last character changed.
    let last = if token.ends_with('A') { "B" } else { "A" };
    let wrong = format!("{}{last}", &token[..token.len() - 1]);
    let tampered = link.replacen(&format!("token={token}"), &format!("token={wrong}"), 1);
    assert_ne!(tampered, link);
    assert!(tampered.starts_with(start));

    // The page only checks the session; the wrong code shows on the button.
    b.open(&tampered);
    assert_eq!(b.status(), 200);
    b.click("#confirm");
    assert_eq!(b.text("#error"), "The code in this link is wrong.");
    assert_eq!(b.status(), 400);
    assert!(!b.exists("#done"));
    b.screenshot("error");
    assert_page_sound(&b, "main", &["status of 400"]);
    assert_eq!(
        register_with_email(&c, "kim", &sid, "tamper"),
        Err("M_UNAUTHORIZED".into())
    );

    // A link to no session shows the error page at once.
    let unknown = link.replacen(&format!("sid={sid}"), "sid=nosuchsession", 1);
    assert_ne!(unknown, link);
    b.open(&unknown);
    assert_eq!(b.status(), 400);
    let error = b.text("#error");
    assert!(error.contains("not valid"), "{error}");
    assert!(!b.exists("#confirm"));
    b.screenshot("error-unknown-link");
    assert_page_sound(&b, "main", &["status of 400"]);
}

/// The interactive-auth fallback in a real browser, as an app's embedded
/// browser uses it: the app defines `window.onAuthDone`, opens the page for
/// the password stage of its password change, the person types the password,
/// and the page's script calls the app back; the app repeats its request with
/// just the session, and the password changes.
#[test]
fn the_fallback_page_completes_a_password_stage_and_calls_the_app_back() {
    let Some(Setup {
        browser, server, ..
    }) = setup()
    else {
        return;
    };
    let (_, token) = server.user("fred");
    let c = server.client().with_access_token(&token);
    use matrix_api::client_server::password_management::change_password::{
        Request, RequestBody, Response,
    };
    let mut body = RequestBody::new("a better password".into());
    let session = match c.send(&Request::new(body.clone())) {
        Ok(Response::Unauthorized(uia)) => uia.session.expect("a session"),
        other => panic!("{other:?}"),
    };
    browser.before_every_page("window.onAuthDone = () => { window.authDoneCalled = true; };");
    let page = format!(
        "{}/_matrix/client/v3/auth/m.login.password/fallback/web?session={session}",
        server.base
    );
    browser.open(&page);
    assert_eq!(browser.status(), 200);
    assert!(browser.text("main").contains("@fred:test.local"));
    assert_eq!(browser.text("label[for=password]"), "Password");
    browser.assert_styled(STYLESHEET, "button", "background-color", BUTTON_BACKGROUND);
    browser.screenshot("fallback-password");
    // A wrong password first: the page says so, nothing is completed.
    browser.type_into("#password", "not it");
    browser.click("#submit");
    browser.wait_for("#error");
    assert_eq!(browser.status(), 400);
    browser.screenshot("fallback-wrong-password");
    browser.open(&page);
    browser.type_into("#password", "correct horse");
    browser.click("#submit");
    browser.wait_for("#done");
    browser.screenshot("fallback-done");
    assert_eq!(
        browser.execute("return window.authDoneCalled === true;", vec![]),
        json!(true),
        "the page called window.onAuthDone()"
    );
    browser.assert_no_csp_violations();
    // The app repeats its request with just the session.
    body.auth = Some(auth_stage_session(&session));
    match c.send(&Request::new(body)) {
        Ok(Response::Ok(_)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(server.login("fred", "a better password").status, 200);
}

/// `auth: {session}`: what a client sends after the fallback page.
fn auth_stage_session(session: &str) -> matrix_api::types::AuthData {
    let mut auth = matrix_api::types::AuthData::new();
    auth.session = Some(session.to_string());
    auth
}

/// The login fallback in a real browser, as an app's embedded browser uses
/// it: the page logs in through `POST /login` with the query's `device_id`
/// and hands the response to `window.matrixLogin.onLogin`.
#[test]
fn the_login_fallback_logs_in_and_hands_the_response_to_the_app() {
    let Some(Setup {
        browser, server, ..
    }) = setup()
    else {
        return;
    };
    server.user("gwen");
    browser.before_every_page(
        "window.matrixLogin = { onLogin: function (r) { window.loginResponse = r; } };",
    );
    let page = format!(
        "{}/_matrix/static/client/login/?device_id=BROWSERDEV",
        server.base
    );
    browser.open(&page);
    assert_eq!(browser.status(), 200);
    assert_eq!(browser.text("label[for=user]"), "Username");
    assert_eq!(browser.text("label[for=password]"), "Password");
    browser.assert_styled(STYLESHEET, "button", "background-color", BUTTON_BACKGROUND);
    browser.screenshot("login");
    browser.type_into("#user", "gwen");
    browser.type_into("#password", "wrong password");
    browser.click("#submit");
    browser.wait_for("#error:not([hidden])");
    assert_eq!(browser.text("#error"), "Invalid username or password");
    browser.screenshot("login-wrong-password");
    browser.open(&page);
    browser.type_into("#user", "gwen");
    browser.type_into("#password", "correct horse");
    browser.click("#submit");
    browser.wait_for("#done:not([hidden])");
    browser.screenshot("login-done");
    let response = browser.execute("return window.loginResponse;", vec![]);
    assert_eq!(response["user_id"], "@gwen:test.local", "{response}");
    assert_eq!(
        response["device_id"], "BROWSERDEV",
        "the query's device_id was forwarded"
    );
    let token = response["access_token"].as_str().expect("an access token");
    let who = server.get("/_matrix/client/v3/account/whoami", Some(token));
    assert_eq!(who.body["device_id"], "BROWSERDEV");
    browser.assert_no_csp_violations();
}

/// The email stage's fallback page: a registration whose app cannot do the
/// email stage opens the page; the person gives an address, follows the link
/// the server mails (really delivered), confirms, lands back on the page,
/// continues, and the app is called back; its repeated request registers the
/// account with the address bound.
#[test]
fn the_fallback_page_validates_an_email_address_for_a_registration() {
    let Some(Setup {
        browser,
        server,
        sink,
    }) = setup()
    else {
        return;
    };
    let c = server.client();
    let mut body = registration::register::RequestBody::new();
    body.username = Some("hope".into());
    body.password = Some("correct horse".into());
    let session = match c.send(&registration::register::Request::new(body.clone())) {
        Ok(registration::register::Response::Unauthorized(uia)) => uia.session.expect("a session"),
        other => panic!("{other:?}"),
    };
    browser.before_every_page("window.onAuthDone = () => { window.authDoneCalled = true; };");
    let page = format!(
        "{}/_matrix/client/v3/auth/m.login.email.identity/fallback/web?session={session}",
        server.base
    );
    browser.open(&page);
    assert_eq!(browser.text("label[for=email]"), "Email address");
    browser.screenshot("fallback-email");
    browser.type_into("#email", "Hope@Example.org");
    browser.click("#submit");
    browser.wait_for("#sent");
    browser.screenshot("fallback-email-sent");
    // Continuing before the link is followed says so.
    browser.click("#submit");
    browser.wait_for("#error");
    // The really delivered message's link, then its page's button.
    let m = sink.wait_for_message(WAIT);
    assert_eq!(m.to, ["hope@example.org"]);
    browser.open(&link(&m));
    browser.click("#confirm");
    // Back on the fallback page (the link's next_link), which continues.
    browser.wait_for("#submit");
    assert!(
        browser
            .url()
            .contains("/auth/m.login.email.identity/fallback/web"),
        "{}",
        browser.url()
    );
    browser.click("#submit");
    browser.wait_for("#done");
    browser.screenshot("fallback-email-done");
    assert_eq!(
        browser.execute("return window.authDoneCalled === true;", vec![]),
        json!(true)
    );
    browser.assert_no_csp_violations();
    let mut auth = matrix_api::types::AuthData::new();
    auth.session = Some(session);
    body.auth = Some(auth);
    match c.send(&registration::register::Request::new(body)) {
        Ok(registration::register::Response::Ok(done)) => {
            assert_eq!(done.user_id, "@hope:test.local")
        }
        other => panic!("{other:?}"),
    }
    let r = server.post(
        "/_matrix/client/v3/login",
        None,
        json!({"type": "m.login.password", "password": "correct horse",
               "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "hope@example.org"}}),
    );
    assert_eq!(
        r.body["user_id"], "@hope:test.local",
        "the address is bound"
    );
}
