//! This server as the authentication service of an unmodified Synapse (from
//! PyPI, through `support/synapse.rs`), both on SQLite on loopback. The test
//! client routes as the README's reverse-proxy rules do: login, registration,
//! logout and the OAuth 2.0 API to this server, rooms and sync to Synapse.
//!
//! End to end: accounts registered and logged in here (legacy API and OAuth
//! 2.0 code grant through the pages, in headless Chromium) create rooms and
//! sync on Synapse; Synapse publishes this server's OAuth metadata; devices
//! appear there and logout removes them at once; a locked account is refused;
//! an admin's token carries Synapse admin rights; deactivation here
//! deactivates there; a new cross-signing identity is taken once the person
//! allows it on this server's account page, whose profile shows and sets the
//! display name Synapse keeps. The failures: a wrong shared secret is refused both
//! ways, and a Synapse that is down makes registration fail cleanly, leaving
//! no account and the registration token unused.

use std::net::TcpListener;

use matrix_tests::browser::{Browser, Viewport};
use matrix_tests::oauth_client::{AuthorizationParams, Callback, OAuthClient};
use matrix_tests::relay::Relay;
use matrix_tests::server::{Db, TestServer};
use matrix_tests::synapse::{Synapse, SynapseOptions};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse";
const SERVER_NAME: &str = "test.local";
const WHOAMI: &str = "/_matrix/client/v3/account/whoami";

/// A port nothing listens on now: this server's, chosen before Synapse starts
/// so that Synapse can be told where its authentication service is.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `[homeserver]` configuration of a server on `port` delegated to by a
/// Synapse at `synapse_url`, with `secret` in a file in `dir`; what Synapse
/// missed is sent again after a second.
fn delegated_config(
    port: u16,
    synapse_url: &str,
    secret: &str,
    dir: &std::path::Path,
    extra: &str,
) -> String {
    let secret_path = dir.join("synapse-secret");
    std::fs::write(&secret_path, format!("{secret}\n")).unwrap();
    format!(
        "bind = \"127.0.0.1:{port}\"\npublic_baseurl = \"http://127.0.0.1:{port}/\"\n{extra}\n\
         [homeserver]\nkind = \"synapse\"\nurl = \"{synapse_url}\"\nsecret_path = \"{}\"\ntimeout_secs = 2\nretry_secs = 1\n",
        secret_path.display()
    )
}

/// Synapse delegating to a server of ours; `None` when either cannot start
/// here (skipped, as their helpers say).
fn pair(extra: &str) -> Option<(TestServer, Synapse, tempfile::TempDir)> {
    let (server, synapse, dir, _) = pair_through(None, extra)?;
    Some((server, synapse, dir))
}

/// [`pair`], with our server reaching Synapse through `relay` (started on
/// Synapse's port) when asked for one.
fn pair_through(
    relay: Option<fn(u16) -> Relay>,
    extra: &str,
) -> Option<(TestServer, Synapse, tempfile::TempDir, Option<Relay>)> {
    let port = free_port();
    let mut opts = SynapseOptions::new(format!("http://127.0.0.1:{port}/_account/v1/"));
    opts.server_name = SERVER_NAME.into();
    let synapse = Synapse::start(opts)?;
    let relay = relay.map(|start| start(synapse.port()));
    let synapse_url = relay
        .as_ref()
        .map_or_else(|| synapse.base_url(), Relay::url);
    let dir = tempfile::tempdir().unwrap();
    let config = delegated_config(port, &synapse_url, synapse.secret(), dir.path(), extra);
    let server = TestServer::start(Db::Sqlite, &config)?;
    Some((server, synapse, dir, relay))
}

fn register(s: &TestServer, user: &str, device: &str) -> Value {
    let r = s.post(
        "/_matrix/client/v3/register",
        None,
        json!({
            "username": user,
            "password": PASSWORD,
            "device_id": device,
            "initial_device_display_name": format!("{user}'s phone"),
            "auth": {"type": "m.login.dummy"},
        }),
    );
    assert_eq!(r.status, 200, "{r:?}\n{}", s.stderr());
    r.body
}

fn login(s: &TestServer, user: &str, device: &str) -> String {
    let r = s.post(
        "/_matrix/client/v3/login",
        None,
        json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
               "password": PASSWORD, "device_id": device}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    r.body["access_token"].as_str().unwrap().to_string()
}

/// Synapse's `whoami` for `token`: the user and device, or the status.
fn synapse_whoami(h: &Synapse, token: &str) -> Result<(String, String), u16> {
    match h.request("GET", WHOAMI, Some(token), None) {
        (200, body) => Ok((
            body["user_id"].as_str().unwrap().to_string(),
            body["device_id"].as_str().unwrap_or_default().to_string(),
        )),
        (status, body) => {
            eprintln!("Synapse whoami: {status} {body}");
            Err(status)
        }
    }
}

/// Creates a room on Synapse and syncs until it shows: what a person signed
/// up here does next.
fn use_rooms(h: &Synapse, token: &str) {
    let (status, room) = h.request(
        "POST",
        "/_matrix/client/v3/createRoom",
        Some(token),
        Some(&json!({"name": "Planning"})),
    );
    assert_eq!(status, 200, "createRoom: {room}");
    let room_id = room["room_id"].as_str().unwrap();
    let (status, sync) = h.request(
        "GET",
        "/_matrix/client/v3/sync?timeout=0",
        Some(token),
        None,
    );
    assert_eq!(status, 200, "sync: {sync}");
    assert!(
        sync["rooms"]["join"].get(room_id).is_some(),
        "the new room is in the sync: {sync}"
    );
}

fn synapse_devices(h: &Synapse, token: &str) -> Vec<String> {
    let (status, body) = h.request("GET", "/_matrix/client/v3/devices", Some(token), None);
    assert_eq!(status, 200, "{body}");
    let mut ids: Vec<String> = body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn accounts_made_here_use_rooms_and_sync_on_synapse() {
    let Some((s, h, _dir)) = pair("") else { return };

    // Legacy registration: the user and the device exist on Synapse before the
    // token is handed out.
    let alice = register(&s, "alice", "PHONE");
    let token = alice["access_token"].as_str().unwrap();
    assert_eq!(
        synapse_whoami(&h, token),
        Ok((format!("@alice:{SERVER_NAME}"), "PHONE".to_string()))
    );
    use_rooms(&h, token);
    let (status, user) = h.admin_request("GET", "query_user?localpart=alice", None);
    assert_eq!(status, 200, "{user}");

    // A second device, then logging it out here ends it on Synapse at once,
    // whatever Synapse cached of its token.
    let laptop = login(&s, "alice", "LAPTOP");
    assert!(synapse_whoami(&h, &laptop).is_ok());
    assert_eq!(synapse_devices(&h, token), ["LAPTOP", "PHONE"]);
    assert_eq!(
        s.post("/_matrix/client/v3/logout", Some(&laptop), json!({}))
            .status,
        200
    );
    assert_eq!(synapse_whoami(&h, &laptop), Err(401));
    assert_eq!(synapse_devices(&h, token), ["PHONE"]);
    assert!(
        synapse_whoami(&h, token).is_ok(),
        "the other device is untouched"
    );

    // A replayed refresh token logs its device out here; Synapse drops the
    // device too, at once, though it cached the access token a moment ago.
    let r = s.post(
        "/_matrix/client/v3/login",
        None,
        json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
               "password": PASSWORD, "device_id": "TABLET", "refresh_token": true}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let first_refresh = r.body["refresh_token"].as_str().unwrap().to_string();
    let refresh = |token: &str| {
        s.post(
            "/_matrix/client/v3/refresh",
            None,
            json!({"refresh_token": token}),
        )
    };
    let r = refresh(&first_refresh);
    assert_eq!(r.status, 200, "{r:?}");
    let tablet = r.body["access_token"].as_str().unwrap().to_string();
    assert!(synapse_whoami(&h, &tablet).is_ok());
    assert_eq!(refresh(&first_refresh).status, 401, "the replay is refused");
    assert_eq!(synapse_whoami(&h, &tablet), Err(401));
    assert_eq!(synapse_devices(&h, token), ["PHONE"]);

    // The name is taken on Synapse too.
    let r = s.get("/_matrix/client/v3/register/available?username=alice", None);
    assert_eq!((r.status, r.errcode()), (400, "M_USER_IN_USE"), "{r:?}");

    // Synapse gives clients this server's OAuth 2.0 metadata as its own.
    let (status, metadata) = h.request("GET", "/_matrix/client/v1/auth_metadata", None, None);
    assert_eq!(status, 200, "{metadata}");
    let ours = s.get("/_matrix/client/v1/auth_metadata", None).body;
    assert_eq!(metadata["issuer"], ours["issuer"]);
    assert_eq!(metadata["token_endpoint"], ours["token_endpoint"]);
    assert_eq!(
        metadata["account_management_uri"],
        ours["account_management_uri"]
    );

    // A locked account is refused by Synapse (its token not yet introspected,
    // so not in Synapse's two-minute cache).
    register(&s, "mallory", "M1");
    let mallory = login(&s, "mallory", "M2");
    assert!(s.cli(&["user", "lock", "mallory"]).status.success());
    assert_eq!(synapse_whoami(&h, &mallory), Err(401));

    // An admin's token is an admin's on Synapse; another's is not.
    let out = s.cli(&["user", "create", "root", "--password", PASSWORD, "--admin"]);
    assert!(out.status.success(), "{out:?}");
    let root = login(&s, "root", "CONSOLE");
    let admin_path = format!("/_synapse/admin/v2/users/@alice:{SERVER_NAME}");
    assert_eq!(h.request("GET", &admin_path, Some(&root), None).0, 200);
    assert_eq!(h.request("GET", &admin_path, Some(token), None).0, 403);

    // Email addresses added and removed here reach Synapse (as the account
    // page and the 3PID API send them; the CLI does too).
    let emails = || {
        let (status, user) = h.request("GET", &admin_path, Some(&root), None);
        assert_eq!(status, 200, "{user}");
        let mut emails: Vec<String> = user["threepids"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["medium"] == "email")
            .map(|t| t["address"].as_str().unwrap().to_string())
            .collect();
        emails.sort();
        emails
    };
    assert!(emails().is_empty());
    for address in ["Alice@Example.org", "alice@work.example"] {
        let out = s.cli(&["user", "add-email", "alice", address]);
        assert!(out.status.success(), "{out:?}");
    }
    assert_eq!(emails(), ["alice@example.org", "alice@work.example"]);
    let out = s.cli(&["user", "remove-email", "alice", "alice@example.org"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(emails(), ["alice@work.example"]);

    // Deactivation here deactivates the user on Synapse.
    let r = s.post(
        "/_matrix/client/v3/account/deactivate",
        Some(token),
        json!({"auth": {"type": "m.login.password", "password": PASSWORD,
                        "identifier": {"type": "m.id.user", "user": "alice"}}}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let (status, user) = h.request("GET", &admin_path, Some(&root), None);
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["deactivated"], json!(true), "{user}");
    assert_eq!(synapse_whoami(&h, token), Err(401));
}

#[test]
fn an_oauth_client_signs_up_here_and_uses_synapse() {
    let Some((s, h, _dir)) = pair("") else { return };
    let Some(mut client) = OAuthClient::start() else {
        return;
    };
    let Some(browser) = Browser::start(Viewport::Desktop) else {
        return;
    };
    let cb = Callback::start();
    client.discover(&s.base).expect("discovery");
    client
        .register(json!({
            "client_name": "Test App",
            "client_uri": "https://app.example.org/",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "application_type": "native",
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }))
        .expect("client registration");
    let mut params = AuthorizationParams::new(
        &cb.redirect_uri(),
        "urn:matrix:client:api:* urn:matrix:client:device:ELEMENTX",
    );
    params.prompt = Some("create".into());
    let auth = client.authorization_url(&params).unwrap();
    browser.open(&auth.url);
    browser.wait_for("#username");
    browser.type_into("#username", "carol");
    browser.type_into("#password", PASSWORD);
    if browser.exists("#password_confirm") {
        browser.type_into("#password_confirm", PASSWORD);
    }
    // Offered in front of Synapse, which keeps profiles.
    browser.type_into("#display_name", "Carol");
    browser.screenshot("registration");
    browser.click("#submit");
    browser.wait_for("#allow");
    browser.screenshot("consent");
    browser.click("#allow");
    let back = format!("http://127.0.0.1:{}/", cb.port);
    matrix_tests::server::eventually(
        "back at the client",
        std::time::Duration::from_secs(15),
        || browser.url().starts_with(&back),
    );
    let tokens = client.exchange(&browser.url()).expect("code exchange");

    assert_eq!(
        synapse_whoami(&h, &tokens.access_token),
        Ok((format!("@carol:{SERVER_NAME}"), "ELEMENTX".to_string()))
    );
    use_rooms(&h, &tokens.access_token);

    // Replacing the cross-signing identity: Synapse cannot ask for
    // interactive auth, so it sends the person to this server's account page;
    // once they allow it there, Synapse takes the new key.
    let (status, metadata) = h.request("GET", "/_matrix/client/v1/auth_metadata", None, None);
    assert_eq!(status, 200, "{metadata}");
    assert!(
        metadata["account_management_actions_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("org.matrix.cross_signing_reset")),
        "{metadata}"
    );
    let upload_master_key = |key: &str| {
        let body = json!({"master_key": {
            "user_id": format!("@carol:{SERVER_NAME}"),
            "usage": ["master"],
            "keys": {format!("ed25519:{key}"): key},
        }});
        h.request(
            "POST",
            "/_matrix/client/v3/keys/device_signing/upload",
            Some(&tokens.access_token),
            Some(&body),
        )
    };
    // Unpadded base64 of two 32-byte keys.
    let (first_key, second_key) = ("A".repeat(43), format!("{}A", "B".repeat(42)));
    let (status, body) = upload_master_key(&first_key);
    assert_eq!(status, 200, "the first identity needs no approval: {body}");
    let (status, body) = upload_master_key(&second_key);
    assert_eq!(status, 401, "a new identity needs approval: {body}");
    let approval_url = body["params"]["m.oauth"]["url"].as_str().unwrap();
    assert_eq!(
        approval_url,
        format!(
            "{}?action=org.matrix.cross_signing_reset",
            metadata["account_management_uri"].as_str().unwrap()
        )
    );
    // The browser is still signed in from the authorisation.
    browser.open(approval_url);
    browser.wait_for("#allow-reset");
    browser.screenshot("cross_signing_reset");
    browser.type_into("#password", "not the password");
    browser.click("#allow-reset");
    browser.wait_for("#error");
    assert_eq!(upload_master_key(&second_key).0, 401, "not allowed yet");
    browser.type_into("#password", PASSWORD);
    browser.click("#allow-reset");
    browser.wait_for("#allowed");
    browser.screenshot("cross_signing_reset_allowed");
    let (status, body) = upload_master_key(&second_key);
    assert_eq!(status, 200, "allowed on the account page: {body}");

    // The display name is Synapse's: the profile shows it and sets it there.
    browser.open(metadata["account_management_uri"].as_str().unwrap());
    browser.wait_for("#display-name");
    let shown = |b: &Browser| {
        b.execute(
            "return document.getElementById('display-name').value;",
            vec![],
        )
    };
    assert_eq!(shown(&browser), json!("Carol"), "as chosen at registration");
    browser.execute(
        "document.getElementById('display-name').value = '';",
        vec![],
    );
    browser.type_into("#display-name", "Carol Example");
    browser.click("#change-display-name");
    browser.wait_for("#notice");
    browser.screenshot("display_name_saved");
    assert_eq!(shown(&browser), json!("Carol Example"));
    let (status, profile) = h.request(
        "GET",
        &format!("/_matrix/client/v3/profile/@carol:{SERVER_NAME}/displayname"),
        Some(&tokens.access_token),
        None,
    );
    assert_eq!(
        (status, &profile["displayname"]),
        (200, &json!("Carol Example")),
        "{profile}"
    );

    // Revocation here ends the device on Synapse at once.
    client
        .revoke(&tokens.access_token, Some("access_token"))
        .expect("revocation");
    assert_eq!(synapse_whoami(&h, &tokens.access_token), Err(401));
}

#[test]
fn what_synapse_missed_while_unreachable_reaches_it_later() {
    let Some((mut s, h, _dir, relay)) = pair_through(Some(Relay::start), "") else {
        return;
    };
    let relay = relay.unwrap();
    let phone = register(&s, "alice", "PHONE")["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let laptop = login(&s, "alice", "LAPTOP");
    assert_eq!(synapse_devices(&h, &phone), ["LAPTOP", "PHONE"]);

    // The network to Synapse goes down: logging out is still answered (the
    // token is dead here at once), but Synapse keeps the device.
    relay.set_up(false);
    let r = s.post("/_matrix/client/v3/logout", Some(&laptop), json!({}));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(relay.refused() > 0, "the call to Synapse was cut");
    assert_eq!(synapse_devices(&h, &phone), ["LAPTOP", "PHONE"]);

    // What Synapse missed is kept in the database: a restart does not lose
    // it, and once Synapse can be reached it is told, with no further
    // logout to carry it.
    s.restart();
    relay.set_up(true);
    matrix_tests::server::eventually(
        "Synapse drops the device logged out while it was unreachable",
        std::time::Duration::from_secs(60),
        || synapse_devices(&h, &phone) == ["PHONE"],
    );
    assert!(synapse_whoami(&h, &phone).is_ok());
}

#[test]
fn a_wrong_shared_secret_is_refused_both_ways() {
    let port = free_port();
    let mut opts = SynapseOptions::new(format!("http://127.0.0.1:{port}/_account/v1/"));
    opts.server_name = SERVER_NAME.into();
    let Some(h) = Synapse::start(opts) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = delegated_config(port, &h.base_url(), "not Synapse's secret", dir.path(), "");
    let Some(s) = TestServer::start(Db::Sqlite, &config) else {
        return;
    };

    // This server's calls are refused by Synapse: no account is made.
    let r = s.post(
        "/_matrix/client/v3/register",
        None,
        json!({"username": "dave", "password": PASSWORD, "auth": {"type": "m.login.dummy"}}),
    );
    assert_eq!((r.status, r.errcode()), (503, "M_UNKNOWN"), "{r:?}");
    assert_eq!(s.login("dave", PASSWORD).status, 403);

    // Synapse's introspection, with its secret, is refused by this server.
    let introspect = |secret: &str| -> (u16, Value) {
        let req = http::Request::post(format!("{}/_account/v1/oauth2/introspect", s.base))
            .header("authorization", format!("Bearer {secret}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(b"token=mat_whatever&token_type_hint=access_token".to_vec())
            .unwrap();
        let resp = s.send_http(req);
        let body = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
        (resp.status().as_u16(), body)
    };
    let (status, body) = introspect(h.secret());
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token")),
        "{body}"
    );
    let (status, body) = introspect("not Synapse's secret");
    assert_eq!((status, body), (200, json!({"active": false})));
}

#[test]
fn a_synapse_that_is_down_leaves_no_half_made_account() {
    // Nothing listens where Synapse should be.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let config = delegated_config(
        port,
        &nowhere,
        "secret",
        dir.path(),
        "[registration]\nmode = \"token\"\n",
    );
    let Some(s) = TestServer::start(Db::Sqlite, &config) else {
        return;
    };
    let out = s.cli(&["token", "create", "--token", "ONCE", "--uses", "1"]);
    assert!(out.status.success(), "{out:?}");

    let body = json!({"username": "erin", "password": PASSWORD,
                      "auth": {"type": "m.login.registration_token", "token": "ONCE"}});
    let r = s.post("/_matrix/client/v3/register", None, body.clone());
    let r = match r.status {
        // The first request opens the session; the stage is then completed.
        401 => {
            let session = r.body["session"].as_str().unwrap().to_string();
            let mut b = body.clone();
            b["auth"]["session"] = json!(session);
            s.post("/_matrix/client/v3/register", None, b)
        }
        _ => r,
    };
    assert_eq!((r.status, r.errcode()), (503, "M_UNKNOWN"), "{r:?}");
    assert!(
        r.body["error"].as_str().unwrap().contains("Try again"),
        "{r:?}"
    );
    // No account, and the token keeps its use.
    assert_eq!(s.login("erin", PASSWORD).status, 403);
    let r = s.get(
        "/_matrix/client/v1/register/m.login.registration_token/validity?token=ONCE",
        None,
    );
    assert_eq!((r.status, &r.body["valid"]), (200, &json!(true)), "{r:?}");
    // Logins of existing accounts need Synapse too: none is answered with a
    // token Synapse would not take.
    let out = s.cli(&["user", "create", "frank", "--password", PASSWORD]);
    assert!(!out.status.success(), "no account without Synapse: {out:?}");
}
