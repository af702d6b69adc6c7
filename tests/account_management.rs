//! The account management pages of the OAuth 2.0 API (the server metadata's
//! `account_management_uri`), on SQLite: headless Chromium
//! (`support/browser.rs`) signs in on the pages' own login page and uses them
//! as a person would — the profile, the device list, one device, signing one
//! out, removing an email address, changing the password, deactivating —
//! while the legacy API shows the effect (tokens refused, logins failing).
//! Adding an email address goes through a real SMTP sink (`support/smtp.rs`):
//! the delivered message's link is followed in the browser, and the legacy
//! API shows the address bound. Raw HTTP checks what a browser hides: the
//! CSRF refusals, the cookies, the login page's `next` refusing anything but
//! the account page, another browser session finding nothing to finish.
//! Screenshots go to `<target dir>/test-screenshots/<test>/`.

use std::time::Duration;

use matrix_tests::browser::{Browser, Viewport};
use matrix_tests::server::{Db, TestServer};
use matrix_tests::smtp::{Mode, SmtpSink};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse";
const NEW_PASSWORD: &str = "battery staple";
const WHOAMI: &str = "/_matrix/client/v3/account/whoami";
const ACCOUNT: &str = "/_account/v1/account";

/// Logs `user` in through the legacy API as `device_id`; its access token.
fn device(s: &TestServer, user: &str, device_id: &str, name: &str) -> String {
    let r = s.post(
        "/_matrix/client/v3/login",
        None,
        json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": PASSWORD,
            "device_id": device_id,
            "initial_device_display_name": name,
        }),
    );
    assert_eq!(r.status, 200, "{r:?}");
    r.body["access_token"].as_str().unwrap().to_string()
}

fn whoami(s: &TestServer, token: &str) -> u16 {
    s.get(WHOAMI, Some(token)).status
}

/// What every page must be: styled (so its CSP admits its stylesheet),
/// nothing blocked by the CSP, nothing overflowing a phone's width, every
/// field labelled and every button named.
fn assert_page_sound(b: &Browser) {
    b.assert_styled(
        "/_account/v1/static/style.css",
        "main",
        "background-color",
        "rgb(255, 255, 255)",
    );
    b.assert_no_csp_violations();
    b.assert_fits_width();
    let unlabelled = b.execute(
        "return Array.from(document.querySelectorAll('input:not([type=hidden]), button'))
             .filter(e => e.tagName === 'BUTTON'
                 ? !(e.getAttribute('aria-label') || e.textContent.trim())
                 : !(e.id && document.querySelector('label[for=\"' + e.id + '\"]')))
             .map(e => e.outerHTML);",
        vec![],
    );
    assert_eq!(unlabelled, json!([]), "fields without a label");
    // Server-rendered: no script at all.
    assert_eq!(
        b.execute("return document.scripts.length;", vec![]),
        json!(0)
    );
}

/// Signs in on the account login page the browser shows.
fn sign_in(b: &Browser, user: &str, password: &str) {
    b.wait_for("#username");
    b.type_into("#username", user);
    b.type_into("#password", password);
    b.click("#submit");
}

/// The path and query of the browser's URL.
fn path_of(b: &Browser) -> String {
    let url = url::Url::parse(&b.url()).unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

#[test]
fn the_metadata_advertises_the_account_pages() {
    let Some(s) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    let m = s.get("/_matrix/client/v1/auth_metadata", None);
    assert_eq!(m.status, 200);
    assert_eq!(
        m.body["account_management_uri"],
        format!("{}{ACCOUNT}", s.base)
    );
    assert_eq!(
        m.body["account_management_actions_supported"],
        json!([
            "org.matrix.profile",
            "org.matrix.devices_list",
            "org.matrix.device_view",
            "org.matrix.device_delete",
            "org.matrix.account_deactivate",
        ])
    );
    // The RFC 8414 address serves the same document.
    let well_known = s.get("/.well-known/oauth-authorization-server", None);
    assert_eq!(well_known.body, m.body);
    // The cross-signing reset is a delegating homeserver's (tests/synapse.rs):
    // on its own this server has no such identity, and its form says so.
    let reset = http::Request::post(format!(
        "{}/_account/v1/account/cross_signing_reset",
        s.base
    ))
    .header("content-type", "application/x-www-form-urlencoded")
    .header("cookie", "oauth_csrf=c")
    .body(b"csrf=c&password=p".to_vec())
    .unwrap();
    let r = s.send_http(reset);
    let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(
        (r.status().as_u16(), &body["errcode"]),
        (404, &json!("M_UNRECOGNIZED")),
        "{body}"
    );
    // So is the display name, which is a homeserver's.
    let rename = http::Request::post(format!("{}/_account/v1/account/display_name", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", "oauth_csrf=c")
        .body(b"csrf=c&display_name=Ada".to_vec())
        .unwrap();
    let r = s.send_http(rename);
    let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(
        (r.status().as_u16(), &body["errcode"]),
        (404, &json!("M_UNRECOGNIZED")),
        "{body}"
    );

    // Without the OAuth 2.0 API there are no account pages.
    let Some(legacy) = TestServer::start(Db::Sqlite, "[oauth]\napis = \"legacy\"\n") else {
        return;
    };
    for (method, path) in [
        ("GET", ACCOUNT),
        ("GET", "/_account/v1/account/login"),
        ("POST", "/_account/v1/account/password"),
    ] {
        let r = legacy.request(method, path, None, None);
        assert_eq!((r.status, r.errcode()), (404, "M_UNRECOGNIZED"), "{path}");
    }
}

#[test]
fn devices_are_listed_viewed_and_signed_out() {
    let Some(s) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    let Some(b) = Browser::start(Viewport::Phone) else {
        return;
    };
    s.register("alice", PASSWORD);
    let phone = device(&s, "alice", "PHONE", "Alice's phone");
    let laptop = device(&s, "alice", "LAPTOP", "Alice's laptop");
    assert_eq!(whoami(&s, &phone), 200);

    // Nobody is signed in: the login page, then back to the requested action.
    b.open(&format!(
        "{}{ACCOUNT}?action=org.matrix.devices_list",
        s.base
    ));
    b.wait_for("#username");
    assert!(
        path_of(&b).starts_with("/_account/v1/account/login?next="),
        "{}",
        b.url()
    );
    b.screenshot("login");
    assert_page_sound(&b);
    // A wrong password shows the form again.
    sign_in(&b, "alice", "wrong password");
    assert_eq!(b.text("#error"), "Wrong username or password.");
    b.type_into("#password", PASSWORD);
    b.click("#submit");
    b.wait_for("#devices");
    assert_eq!(
        path_of(&b),
        "/_account/v1/account?action=org.matrix.devices_list"
    );
    let list = b.text("#devices");
    for expected in [
        "PHONE",
        "Alice's phone",
        "LAPTOP",
        "Alice's laptop",
        "Unnamed device",
    ] {
        assert!(list.contains(expected), "{expected} in {list}");
    }
    assert!(list.contains("Last seen 20"), "{list}");
    assert_eq!(b.text("#user"), "@alice:test.local");
    b.screenshot("devices");
    assert_page_sound(&b);
    b.set_viewport(Viewport::Desktop);
    b.screenshot("devices-desktop");
    b.assert_fits_width();
    b.set_viewport(Viewport::Phone);

    // One device.
    b.click("a.device[href$='device_id=LAPTOP']");
    b.wait_for("#device");
    assert_eq!(b.text("#device-id"), "LAPTOP");
    assert_eq!(b.text("#device-name"), "Alice's laptop");
    assert!(
        b.text("#last-seen").ends_with(" UTC"),
        "{}",
        b.text("#last-seen")
    );
    b.screenshot("device");
    assert_page_sound(&b);

    // Signing it out: a confirmation first.
    b.open(&format!(
        "{}{ACCOUNT}?action=org.matrix.device_view&device_id=LAPTOP",
        s.base
    ));
    b.click("#delete");
    b.wait_for("#confirm-delete");
    assert_eq!(
        path_of(&b),
        "/_account/v1/account?action=org.matrix.device_delete&device_id=LAPTOP"
    );
    assert_eq!(whoami(&s, &laptop), 200, "nothing happened yet");
    b.screenshot("device-delete");
    assert_page_sound(&b);
    b.click("#confirm-delete");
    b.wait_for("#notice");
    assert_eq!(b.text("#notice"), "The device was signed out.");
    assert!(!b.text("#devices").contains("LAPTOP"));
    b.screenshot("device-deleted");
    assert_page_sound(&b);
    assert_eq!(whoami(&s, &laptop), 401);
    assert_eq!(whoami(&s, &phone), 200);

    // A device that is gone (or never was) has no page.
    b.open(&format!(
        "{}{ACCOUNT}?action=org.matrix.device_view&device_id=LAPTOP",
        s.base
    ));
    b.wait_for("#back");
    assert_eq!(b.status(), 404);
    b.screenshot("no-such-device");
    assert_page_sound(&b);
    // A device action without a device shows the list.
    b.open(&format!(
        "{}{ACCOUNT}?action=org.matrix.device_delete",
        s.base
    ));
    b.wait_for("#devices");

    // Signing out of the pages ends the browser session, not the devices.
    b.click("#sign-out");
    b.wait_for("#notice");
    assert_eq!(b.text("#notice"), "You signed out of this page.");
    b.screenshot("signed-out");
    assert_page_sound(&b);
    b.open(&format!("{}{ACCOUNT}", s.base));
    b.wait_for("#username");
    assert_eq!(whoami(&s, &phone), 200);
}

#[test]
fn the_profile_removes_addresses_and_changes_the_password() {
    let Some(s) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    let Some(b) = Browser::start(Viewport::Phone) else {
        return;
    };
    s.register("bob", PASSWORD);
    let out = s.cli(&["user", "add-email", "bob", "Bob@Example.org"]);
    assert!(out.status.success(), "{out:?}");
    let tablet = device(&s, "bob", "TABLET", "Tablet");
    let desktop = device(&s, "bob", "DESKTOP", "Desktop");

    b.open(&format!("{}{ACCOUNT}", s.base));
    sign_in(&b, "bob", PASSWORD);
    b.wait_for("#user-id");
    assert_eq!(path_of(&b), ACCOUNT);
    assert_eq!(b.text("#user-id"), "@bob:test.local");
    assert!(
        b.text("#threepids").contains("bob@example.org"),
        "{}",
        b.text("#threepids")
    );
    b.screenshot("profile");
    assert_page_sound(&b);
    // An unknown action (and one this server does not offer) shows the profile.
    for action in ["made.up.action", "org.matrix.cross_signing_reset"] {
        b.open(&format!("{}{ACCOUNT}?action={action}", s.base));
        b.wait_for("#user-id");
        assert_eq!(b.status(), 200);
    }

    // Removing the address.
    b.click("button[aria-label='Remove bob@example.org']");
    b.wait_for("#notice");
    assert_eq!(
        b.text("#notice"),
        "The address was removed from your account."
    );
    assert!(b.exists("#no-threepids"));
    b.screenshot("address-removed");
    assert_page_sound(&b);
    let listed = s.get("/_matrix/client/v3/account/3pid", Some(&tablet));
    assert_eq!(listed.body["threepids"], json!([]), "{listed:?}");

    // A wrong current password, then a weak new one: refused, on the page.
    b.type_into("#current-password", "wrong password");
    b.type_into("#new-password", NEW_PASSWORD);
    b.click("#change-password");
    b.wait_for("#password-error");
    assert_eq!(b.status(), 401);
    assert!(b.text("#password-error").contains("current password"));
    b.screenshot("password-wrong");
    assert_page_sound(&b);
    b.type_into("#current-password", PASSWORD);
    b.type_into("#new-password", "short");
    b.click("#change-password");
    b.wait_for("#password-error");
    assert_eq!(b.status(), 400);
    assert!(
        b.text("#password-error").contains("at least 8"),
        "{}",
        b.text("#password-error")
    );
    assert_eq!(s.login("bob", PASSWORD).status, 200, "unchanged so far");
    // Another browser signed in to the pages with the old password.
    let raw = Raw::new(&s);
    let (_, other_browser) = raw.sign_in("bob", ACCOUNT);
    assert_eq!(raw.get(ACCOUNT, &other_browser).status, 200);
    let another = s.login("bob", PASSWORD).body["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    b.type_into("#current-password", PASSWORD);
    b.type_into("#new-password", NEW_PASSWORD);
    b.click("#change-password");
    b.wait_for("#notice");
    assert_eq!(
        b.text("#notice"),
        "Your password was changed. Every device was signed out."
    );
    b.screenshot("password-changed");
    assert_page_sound(&b);
    // The old password no longer logs in, the new one does; every device
    // was signed out, as the legacy endpoint does by default.
    assert_eq!(s.login("bob", PASSWORD).status, 403);
    assert_eq!(s.login("bob", NEW_PASSWORD).status, 200);
    for token in [&tablet, &desktop, &another] {
        assert_eq!(whoami(&s, token), 401);
    }
    // This browser stays signed in to the pages; the other one is signed out.
    b.open(&format!("{}{ACCOUNT}", s.base));
    b.wait_for("#user-id");
    assert_eq!(raw.get(ACCOUNT, &other_browser).status, 303);
}

#[test]
fn deactivation_needs_the_password_and_ends_the_session() {
    let Some(s) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    let Some(b) = Browser::start(Viewport::Phone) else {
        return;
    };
    s.register("carol", PASSWORD);
    let token = device(&s, "carol", "PHONE", "Phone");
    b.open(&format!(
        "{}{ACCOUNT}?action=org.matrix.account_deactivate",
        s.base
    ));
    sign_in(&b, "carol", PASSWORD);
    b.wait_for("#deactivate");
    b.screenshot("deactivate");
    assert_page_sound(&b);
    b.type_into("#password", "wrong password");
    b.click("#deactivate");
    b.wait_for("#error");
    assert_eq!(b.status(), 401);
    assert_eq!(b.text("#error"), "That is not your password.");
    b.screenshot("deactivate-wrong-password");
    assert_page_sound(&b);
    assert_eq!(whoami(&s, &token), 200, "still active");

    b.type_into("#password", PASSWORD);
    b.click("#deactivate");
    b.wait_for("#notice");
    assert_eq!(b.text("#notice"), "Your account was deactivated.");
    assert!(path_of(&b).starts_with("/_account/v1/account/login"));
    b.screenshot("deactivated");
    assert_page_sound(&b);
    assert_eq!(whoami(&s, &token), 401);
    let login = s.login("carol", PASSWORD);
    assert_eq!((login.status, login.errcode()), (403, "M_USER_DEACTIVATED"));
    // The page ended the session: the account pages ask to sign in, and the
    // password no longer signs in there either.
    b.open(&format!("{}{ACCOUNT}", s.base));
    sign_in(&b, "carol", PASSWORD);
    assert_eq!(b.text("#error"), "This account has been deactivated.");
    assert_eq!(b.status(), 403);
}

#[test]
fn the_login_page_goes_only_to_the_account_page() {
    let Some(s) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    let Some(b) = Browser::start(Viewport::Phone) else {
        return;
    };
    s.register("dave", PASSWORD);
    let evil = form_urlencoded::byte_serialize(b"https://evil.example/steal").collect::<String>();
    b.open(&format!("{}/_account/v1/account/login?next={evil}", s.base));
    sign_in(&b, "dave", PASSWORD);
    b.wait_for("#user-id");
    assert_eq!(path_of(&b), ACCOUNT);
    assert!(b.url().starts_with(&s.base), "{}", b.url());
    // Signed in: the login page sends the browser on at once.
    b.open(&format!(
        "{}/_account/v1/account/login?next=%2F_account%2Fv1%2Faccount%3Faction%3Dorg.matrix.devices_list",
        s.base
    ));
    b.wait_for("#devices");
}

/// Raw HTTP without following redirects: status, headers, body.
struct Raw {
    agent: ureq::Agent,
    base: String,
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// The value the `Set-Cookie` header sets for `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers.get_all("set-cookie").iter().find_map(|v| {
            v.to_str()
                .unwrap()
                .strip_prefix(&format!("{name}="))
                .map(|rest| rest.split(';').next().unwrap().to_string())
        })
    }
}

impl Raw {
    fn new(s: &TestServer) -> Raw {
        Raw {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
            base: s.base.clone(),
        }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        cookie: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Answer {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if !cookie.is_empty() {
            req = req.header("cookie", cookie);
        }
        let body = match form {
            Some(fields) => {
                req = req.header("content-type", "application/x-www-form-urlencoded");
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish()
                    .into_bytes()
            }
            None => Vec::new(),
        };
        let mut resp = self.agent.run(req.body(body).unwrap()).unwrap();
        Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn get(&self, path: &str, cookie: &str) -> Answer {
        self.send("GET", path, cookie, None)
    }

    fn post(&self, path: &str, cookie: &str, form: &[(&str, &str)]) -> Answer {
        self.send("POST", path, cookie, Some(form))
    }

    /// Signs in on the login page with `next`: the answer, and the cookies
    /// (CSRF and session) a browser would now send.
    fn sign_in(&self, user: &str, next: &str) -> (Answer, String) {
        let page = self.get("/_account/v1/account/login", "");
        assert_eq!(page.status, 200);
        let csrf = page.cookie("oauth_csrf").expect("a CSRF cookie");
        let done = self.post(
            "/_account/v1/account/login",
            &format!("oauth_csrf={csrf}"),
            &[
                ("csrf", &csrf),
                ("username", user),
                ("password", PASSWORD),
                ("next", next),
            ],
        );
        let session = done.cookie("account_session").unwrap_or_default();
        (
            done,
            format!("oauth_csrf={csrf}; account_session={session}"),
        )
    }
}

#[test]
fn an_admin_password_reset_signs_the_pages_out_too() {
    let Some(s) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    s.register("ivan", PASSWORD);
    let raw = Raw::new(&s);
    let (_, cookies) = raw.sign_in("ivan", ACCOUNT);
    assert_eq!(raw.get(ACCOUNT, &cookies).status, 200, "signed in");
    // The old password may be what an intruder signed in with.
    let out = s.cli(&["user", "reset-password", "ivan", "--password", NEW_PASSWORD]);
    assert!(out.status.success(), "{out:?}");
    let page = raw.get(ACCOUNT, &cookies);
    assert_eq!(page.status, 303, "the session ended");
    assert!(
        page.header("location")
            .starts_with("/_account/v1/account/login"),
        "{}",
        page.header("location")
    );
}

#[test]
fn forms_need_their_csrf_value_and_next_stays_on_the_account_page() {
    let Some(s) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    s.register("erin", PASSWORD);
    let token = device(&s, "erin", "PHONE", "Phone");
    let raw = Raw::new(&s);

    // No session: to the login page, which comes back to the page asked for.
    let page = raw.get(
        "/_account/v1/account?action=org.matrix.device_view&device_id=PHONE",
        "",
    );
    assert_eq!(page.status, 303);
    assert_eq!(
        page.header("location"),
        "/_account/v1/account/login?next=%2F_account%2Fv1%2Faccount%3Faction%3Dorg.matrix.device_view%26device_id%3DPHONE"
    );

    // Anything but the account page as `next` ends at the profile.
    for next in [
        "https://evil.example/",
        "//evil.example/_account/v1/account",
        "/\\evil.example",
        "/_account/v1/account/../../../elsewhere",
        "javascript:alert(1)",
    ] {
        let (done, _) = raw.sign_in("erin", next);
        assert_eq!(done.status, 303, "{next}");
        assert_eq!(done.header("location"), ACCOUNT, "{next}");
    }
    let (done, cookies) = raw.sign_in(
        "erin",
        "/_account/v1/account?action=org.matrix.devices_list",
    );
    assert_eq!(
        done.header("location"),
        "/_account/v1/account?action=org.matrix.devices_list"
    );
    let set_session = done
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("account_session="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/_account/v1"] {
        assert!(set_session.contains(attribute), "{set_session}");
    }
    let profile = raw.get(ACCOUNT, &cookies);
    assert_eq!(profile.status, 200);
    assert!(profile.body.contains("@erin:test.local"));
    assert!(profile.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));

    // Every form refuses a CSRF value that is not the cookie's, signed in or
    // not, and changes nothing.
    let session = cookies.split("; ").nth(1).unwrap();
    let forged = format!("oauth_csrf=csrf_other; {session}");
    for (path, form) in [
        (
            "/_account/v1/account/login",
            vec![("username", "erin"), ("password", PASSWORD)],
        ),
        ("/_account/v1/account/logout", vec![]),
        (
            "/_account/v1/account/password",
            vec![
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        ),
        (
            "/_account/v1/account/devices/delete",
            vec![("device_id", "PHONE")],
        ),
        (
            "/_account/v1/account/threepids/delete",
            vec![("medium", "email"), ("address", "erin@example.org")],
        ),
        (
            "/_account/v1/account/threepids/add",
            vec![("email", "erin@example.org")],
        ),
        ("/_account/v1/account/threepids/confirm", vec![]),
        (
            "/_account/v1/account/deactivate",
            vec![("password", PASSWORD)],
        ),
    ] {
        let mut fields = vec![("csrf", "csrf_forged")];
        fields.extend(form);
        let r = raw.post(path, &forged, &fields);
        assert_eq!(r.status, 403, "{path}");
        assert!(r.header("content-type").starts_with("text/html"), "{path}");
        assert!(r.body.contains("did not come from"), "{path}: {}", r.body);
    }
    assert_eq!(whoami(&s, &token), 200);
    assert_eq!(s.login("erin", PASSWORD).status, 200);
    assert_eq!(raw.get(ACCOUNT, &cookies).status, 200);

    // A form with the right CSRF value but no session goes to sign in.
    let csrf_only = cookies.split("; ").next().unwrap();
    let csrf = csrf_only.strip_prefix("oauth_csrf=").unwrap();
    let r = raw.post(
        "/_account/v1/account/devices/delete",
        csrf_only,
        &[("csrf", csrf), ("device_id", "PHONE")],
    );
    assert_eq!(r.status, 303);
    assert!(r
        .header("location")
        .starts_with("/_account/v1/account/login?next="));
    assert_eq!(whoami(&s, &token), 200);

    // Signing out deletes the session and clears the cookie.
    let out = raw.post("/_account/v1/account/logout", &cookies, &[("csrf", csrf)]);
    assert_eq!(out.status, 303);
    assert_eq!(
        out.header("location"),
        "/_account/v1/account/login?done=signed_out"
    );
    let cleared = out.header("set-cookie");
    assert!(
        cleared.starts_with("account_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    // The old cookie, sent again, is no session any more.
    assert_eq!(raw.get(ACCOUNT, &cookies).status, 303);
    let login: Value = s.login("erin", PASSWORD).body;
    assert!(login["access_token"].is_string());
}

#[test]
fn wrong_current_passwords_are_limited_like_failed_password_stages() {
    let mut config = String::from("[rate_limits]\nenabled = true\n");
    for bucket in [
        "registration",
        "availability",
        "login_address",
        "login_account",
        "login_failures",
        "account_changes",
    ] {
        config.push_str(&format!(
            "[rate_limits.{bucket}]\nper_second = 100.0\nburst = 1000\n"
        ));
    }
    config.push_str("[rate_limits.password_failures]\nper_second = 0.001\nburst = 2\n");
    let Some(s) = TestServer::start(Db::Sqlite, &config) else {
        return;
    };
    s.register("fay", PASSWORD);
    let raw = Raw::new(&s);
    let (_, cookies) = raw.sign_in("fay", ACCOUNT);
    let csrf = cookies
        .split("; ")
        .next()
        .unwrap()
        .strip_prefix("oauth_csrf=")
        .unwrap()
        .to_string();
    let change = |current: &str| {
        raw.post(
            "/_account/v1/account/password",
            &cookies,
            &[
                ("csrf", &csrf),
                ("current_password", current),
                ("new_password", NEW_PASSWORD),
            ],
        )
    };
    for _ in 0..2 {
        assert_eq!(change("guess").status, 401);
    }
    // Now even the right password waits, on both sensitive forms.
    let limited = change(PASSWORD);
    assert_eq!(limited.status, 429);
    assert!(limited.body.contains("Try again in"), "{}", limited.body);
    let deactivate = raw.post(
        "/_account/v1/account/deactivate",
        &cookies,
        &[("csrf", &csrf), ("password", PASSWORD)],
    );
    assert_eq!(deactivate.status, 429);
    assert_eq!(s.login("fay", PASSWORD).status, 200, "nothing changed");
}

/// The CSRF value of the cookies [`Raw::sign_in`] returns.
fn csrf_of(cookies: &str) -> String {
    cookies
        .split("; ")
        .next()
        .unwrap()
        .strip_prefix("oauth_csrf=")
        .unwrap()
        .to_string()
}

#[test]
fn an_email_address_is_added_once_its_link_is_followed_in_the_same_browser_session() {
    let Some(sink) = SmtpSink::start(Mode::Accept) else {
        return;
    };
    let config = format!(
        "[email]\nsmtp_url = \"smtp://127.0.0.1:{}\"\nfrom = \"Test <noreply@test.local>\"\n",
        sink.port()
    );
    let Some(s) = TestServer::start(Db::Sqlite, &config) else {
        return;
    };
    let Some(b) = Browser::start(Viewport::Phone) else {
        return;
    };
    s.register("gina", PASSWORD);
    s.register("hank", PASSWORD);
    let out = s.cli(&["user", "add-email", "hank", "hank@example.org"]);
    assert!(out.status.success(), "{out:?}");
    // A suspended account may add contact addresses (the spec).
    let out = s.cli(&["user", "suspend", "gina"]);
    assert!(out.status.success(), "{out:?}");
    let token = device(&s, "gina", "PHONE", "Phone");
    let threepids = || s.get("/_matrix/client/v3/account/3pid", Some(&token));

    b.open(&format!("{}{ACCOUNT}", s.base));
    sign_in(&b, "gina", PASSWORD);
    b.wait_for("#user-id");
    assert_eq!(b.text("label[for=email]"), "Add an email address");
    assert!(b.exists("#no-threepids"));
    b.screenshot("add-email");
    assert_page_sound(&b);

    // An address another account has is refused on the page, and not mailed.
    b.type_into("#email", "Hank@Example.org");
    b.click("#add-email");
    b.wait_for("#email-error");
    assert_eq!(b.status(), 400);
    assert_eq!(
        b.text("#email-error"),
        "That email address is already in use by another account."
    );
    assert_eq!(
        b.execute("return document.getElementById('email').value;", vec![]),
        json!("Hank@Example.org")
    );
    b.screenshot("add-email-in-use");
    assert_page_sound(&b);
    assert!(sink.messages().is_empty());

    // A free one: the link is mailed, and the browser waits for it.
    b.execute("document.getElementById('email').value = '';", vec![]);
    b.type_into("#email", "Gina@Example.org");
    b.click("#add-email");
    b.wait_for("#sent");
    assert_eq!(path_of(&b), "/_account/v1/account/threepids/confirm");
    assert_eq!(b.text("#address"), "gina@example.org");
    b.screenshot("add-email-sent");
    assert_page_sound(&b);
    // Continuing before the link is followed is refused, saying so.
    b.click("#continue");
    b.wait_for("#error");
    assert_eq!(b.status(), 400);
    assert!(
        b.text("#error").contains("not confirmed yet"),
        "{}",
        b.text("#error")
    );
    b.screenshot("add-email-not-confirmed");
    assert_page_sound(&b);
    assert_eq!(threepids().body["threepids"], json!([]));
    // The profile says what waits, and leads back to it.
    b.open(&format!("{}{ACCOUNT}", s.base));
    b.wait_for("#pending");
    assert!(b.text("#pending").contains("gina@example.org"));
    b.click("#pending-link");
    b.wait_for("#sent");

    // The message really delivered, its link, its page's button: back on the
    // waiting page, now confirmed.
    let m = sink.wait_for_message(Duration::from_secs(20));
    assert_eq!(m.to, ["gina@example.org"]);
    let link = m
        .text_line_containing("/_account/v1/3pid/validate?")
        .expect("a validation link");

    // Another browser session of the same user, and a browser without one,
    // find nothing to finish, even once the address is confirmed.
    let raw = Raw::new(&s);
    let (_, other) = raw.sign_in("gina", ACCOUNT);
    let elsewhere = raw.get("/_account/v1/account/threepids/confirm", &other);
    assert_eq!(elsewhere.status, 200);
    assert!(
        elsewhere.body.contains("id=\"elsewhere\""),
        "{}",
        elsewhere.body
    );
    let anonymous = raw.get("/_account/v1/account/threepids/confirm", "");
    assert_eq!(anonymous.status, 200);
    assert!(
        anonymous.body.contains("Continue where you started"),
        "{}",
        anonymous.body
    );

    b.open(&link);
    b.click("#confirm");
    b.wait_for("#confirmed");
    assert_eq!(path_of(&b), "/_account/v1/account/threepids/confirm");
    assert_eq!(b.text("#address"), "gina@example.org");
    b.screenshot("add-email-confirmed");
    assert_page_sound(&b);

    let stolen = raw.post(
        "/_account/v1/account/threepids/confirm",
        &other,
        &[("csrf", &csrf_of(&other))],
    );
    assert_eq!(stolen.status, 400);
    assert!(stolen.body.contains("id=\"elsewhere\""), "{}", stolen.body);
    assert_eq!(threepids().body["threepids"], json!([]));

    // The button binds it to the signed-in account.
    b.click("#continue");
    b.wait_for("#notice");
    assert_eq!(path_of(&b), "/_account/v1/account?done=threepid_added");
    assert_eq!(b.text("#notice"), "The address was added to your account.");
    assert!(
        b.text("#threepids").contains("gina@example.org"),
        "{}",
        b.text("#threepids")
    );
    assert!(!b.exists("#pending"));
    b.screenshot("add-email-added");
    assert_page_sound(&b);
    let listed = threepids();
    assert_eq!(listed.status, 200, "{listed:?}");
    let bound = &listed.body["threepids"];
    assert_eq!(bound.as_array().map(Vec::len), Some(1), "{bound}");
    assert_eq!(bound[0]["medium"], "email");
    assert_eq!(bound[0]["address"], "gina@example.org");
    // Once: the waiting page has nothing left.
    b.open(&format!("{}/_account/v1/account/threepids/confirm", s.base));
    b.wait_for("#elsewhere");
    // The address now logs in.
    let login = s.post(
        "/_matrix/client/v3/login",
        None,
        json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "gina@example.org"},
            "password": PASSWORD,
        }),
    );
    assert_eq!(login.status, 200, "{login:?}");
    assert_eq!(login.body["user_id"], "@gina:test.local");

    // An address already on the account is refused as such.
    b.open(&format!("{}{ACCOUNT}", s.base));
    b.type_into("#email", "gina@example.org");
    b.click("#add-email");
    b.wait_for("#email-error");
    assert_eq!(
        b.text("#email-error"),
        "gina@example.org is already on your account."
    );
    assert_eq!(sink.messages().len(), 1);

    // A locked account cannot act on the pages at all.
    let out = s.cli(&["user", "lock", "gina"]);
    assert!(out.status.success(), "{out:?}");
    let locked = raw.post(
        "/_account/v1/account/threepids/add",
        &other,
        &[("csrf", &csrf_of(&other)), ("email", "gina2@example.org")],
    );
    assert_eq!(locked.status, 303);
    assert!(locked
        .header("location")
        .starts_with("/_account/v1/account/login?next="));
    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn without_email_the_profile_offers_no_address_to_add() {
    let Some(s) = TestServer::start(Db::Sqlite, "") else {
        return;
    };
    s.register("ivy", PASSWORD);
    let raw = Raw::new(&s);
    let (_, cookies) = raw.sign_in("ivy", ACCOUNT);
    let profile = raw.get(ACCOUNT, &cookies);
    assert_eq!(profile.status, 200);
    assert!(
        !profile.body.contains("id=\"add-email\""),
        "{}",
        profile.body
    );
    // Posted anyway: refused on the page.
    let r = raw.post(
        "/_account/v1/account/threepids/add",
        &cookies,
        &[("csrf", &csrf_of(&cookies)), ("email", "ivy@example.org")],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("does not send email"), "{}", r.body);
}
