//! Black-box tests of abuse resistance: sessions that must end when the user says
//! so, refresh-token rotation under races and theft, password guessing through
//! interactive auth, per-action rate limits, and slow clients. Each storage
//! behaviour runs on SQLite and on PostgreSQL.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use matrix_tests::both;
use matrix_tests::server::{eventually, Reply, TestServer};
use serde_json::{json, Value};

const REGISTER: &str = "/_matrix/client/v3/register";
const LOGIN: &str = "/_matrix/client/v3/login";
const REFRESH: &str = "/_matrix/client/v3/refresh";
const WHOAMI: &str = "/_matrix/client/v3/account/whoami";
const PASSWORD: &str = "/_matrix/client/v3/account/password";
const DEACTIVATE: &str = "/_matrix/client/v3/account/deactivate";

/// Rate-limit configuration: the named buckets as given, every other bucket
/// generous enough not to interfere with the test.
fn limits(tight: &[(&str, f64, u32)], top: &str) -> String {
    let mut text = format!("[rate_limits]\nenabled = true\n{top}");
    for bucket in [
        "registration",
        "availability",
        "login_address",
        "login_account",
        "login_failures",
        "password_failures",
        "account_changes",
        "request_token_address",
        "request_token_threepid",
        "refresh",
        "openid",
    ] {
        let (rate, burst) = tight
            .iter()
            .find(|(name, ..)| *name == bucket)
            .map_or((100.0, 1000), |&(_, r, b)| (r, b));
        text.push_str(&format!(
            "[rate_limits.{bucket}]\nper_second = {rate:?}\nburst = {burst}\n"
        ));
    }
    text
}

fn login_device(s: &TestServer, user: &str, device: Option<&str>, refresh: bool) -> Reply {
    let mut body = json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": "correct horse", "refresh_token": refresh});
    if let Some(d) = device {
        body["device_id"] = json!(d);
    }
    s.post(LOGIN, None, body)
}

fn str_of<'a>(r: &'a Reply, key: &str) -> &'a str {
    r.body[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key}: {r:?}"))
}

fn works(s: &TestServer, token: &str) -> bool {
    let r = s.get(WHOAMI, Some(token));
    assert!(r.status == 200 || r.status == 401, "{r:?}");
    r.status == 200
}

fn refresh(s: &TestServer, token: &str) -> Reply {
    s.post(REFRESH, None, json!({"refresh_token": token}))
}

/// Completes a UIA password stage for `user` on `path`; returns the answer.
fn with_password(
    s: &TestServer,
    path: &str,
    token: &str,
    body: Value,
    user: &str,
    password: &str,
) -> Reply {
    let first = s.post(path, Some(token), body.clone());
    assert_eq!(first.status, 401, "{first:?}");
    let mut body = body;
    body["auth"] = json!({"type": "m.login.password", "session": first.body["session"], "identifier": {"type": "m.id.user", "user": user}, "password": password});
    s.post(path, Some(token), body)
}

both!(
    device_ids_are_checked_and_log_out_everywhere_reaches_every_device,
    |s| {
        s.user("dora");
        for bad in [
            String::new(),
            "x".repeat(256),
            "tab\there".into(),
            "nul\u{0}".into(),
        ] {
            let r = login_device(s, "dora", Some(&bad), false);
            assert_eq!((r.status, r.errcode()), (400, "M_INVALID_PARAM"), "{bad:?}");
            let r = s.post(
                REGISTER,
                None,
                json!({"username": "dev2", "password": "correct horse", "device_id": bad}),
            );
            assert_eq!(
                (r.status, r.errcode()),
                (400, "M_INVALID_PARAM"),
                "registration, {bad:?}"
            );
        }
        // Odd but valid IDs: every one of them is reached by "log out everywhere",
        // by a password change and by the admin command.
        let odd = ["x".repeat(255), " ".into(), "ü ☃".into(), "a'b\"c".into()];
        let tokens = |s: &TestServer| -> Vec<String> {
            odd.iter()
                .map(|d| {
                    str_of(&login_device(s, "dora", Some(d), true), "access_token").to_string()
                })
                .collect()
        };
        // OpenID tokens vouch for the user elsewhere: they end with the rest.
        let openid = |token: &str| {
            let r = s.post(
                "/_matrix/client/v3/user/@dora:test.local/openid/request_token",
                Some(token),
                json!({}),
            );
            str_of(&r, "access_token").to_string()
        };
        let vouches = |oid: &str| {
            s.get(
                &format!("/_matrix/federation/v1/openid/userinfo?access_token={oid}"),
                None,
            )
            .status
                == 200
        };
        let all = tokens(s);
        assert!(all.iter().all(|t| works(s, t)));
        let oid = openid(&all[1]);
        assert!(vouches(&oid));
        assert_eq!(
            s.post("/_matrix/client/v3/logout/all", Some(&all[0]), json!({}))
                .status,
            200
        );
        assert!(
            all.iter().all(|t| !works(s, t)),
            "logout/all left a device logged in"
        );
        assert!(!vouches(&oid), "an OpenID token survived logout/all");

        let all = tokens(s);
        let keep = str_of(&login_device(s, "dora", None, false), "access_token").to_string();
        let oid = openid(&keep);
        let r = with_password(
            s,
            PASSWORD,
            &keep,
            json!({"new_password": "another passphrase"}),
            "dora",
            "correct horse",
        );
        assert_eq!(r.status, 200, "{r:?}");
        assert!(
            all.iter().all(|t| !works(s, t)),
            "a password change left a device logged in"
        );
        assert!(works(s, &keep));
        assert!(!vouches(&oid), "an OpenID token survived a password change");

        let out = s.cli(&[
            "user",
            "reset-password",
            "dora",
            "--password",
            "correct horse",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let all = tokens(s);
        let out = s.cli(&[
            "user",
            "reset-password",
            "dora",
            "--password",
            "yet another one",
        ]);
        assert!(out.status.success());
        assert!(all.iter().all(|t| !works(s, t)) && !works(s, &keep));
    }
);

both!(
    concurrent_refreshes_of_one_token_leave_one_live_successor,
    |s| {
        s.user("rita");
        let login = login_device(s, "rita", Some("PHONE"), true);
        let original = str_of(&login, "access_token").to_string();
        let old = str_of(&login, "refresh_token").to_string();
        let answers: Vec<Reply> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..20).map(|_| scope.spawn(|| refresh(s, &old))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let successors: Vec<String> = answers
            .iter()
            .filter(|r| r.status == 200)
            .map(|r| str_of(r, "access_token").to_string())
            .collect();
        assert!(!successors.is_empty(), "{answers:?}");
        assert!(
            answers.iter().all(|r| r.status == 200 || r.status == 401),
            "{answers:?}"
        );
        // Use whichever successor still works: from then on, at most one access
        // token of the device works.
        let used = successors
            .iter()
            .find(|t| works(s, t))
            .expect("one successor is live");
        let live: Vec<&String> = successors
            .iter()
            .chain(std::iter::once(&original))
            .filter(|t| works(s, t))
            .collect();
        assert_eq!(
            live,
            vec![used],
            "more than one live token after refresh races"
        );
    }
);

/// Races refreshes of a device against `revoke` many times: afterwards, no token
/// any refresh returned may work.
fn refresh_racing(s: &TestServer, user: &str, revoke: &(dyn Fn(&str) + Sync)) {
    for round in 0..8 {
        let device = format!("RACE{round}");
        let login = login_device(s, user, Some(&device), true);
        let mut refresh_token = str_of(&login, "refresh_token").to_string();
        let issued = std::sync::Mutex::new(vec![str_of(&login, "access_token").to_string()]);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..6 {
                    let r = refresh(s, &refresh_token);
                    if r.status != 200 {
                        break;
                    }
                    issued
                        .lock()
                        .unwrap()
                        .push(str_of(&r, "access_token").to_string());
                    refresh_token = str_of(&r, "refresh_token").to_string();
                    // Using the new pair retires the old one, as a client would.
                    works(s, str_of(&r, "access_token"));
                }
            });
            scope.spawn(|| revoke(&device));
        });
        for t in issued.into_inner().unwrap() {
            assert!(
                !works(s, &t),
                "round {round}: a token survived the revocation"
            );
        }
        assert_eq!(refresh(s, &refresh_token).status, 401, "round {round}");
    }
}

both!(refresh_racing_logout_all_never_leaves_a_live_token, |s| {
    s.user("lou");
    refresh_racing(s, "lou", &|_| {
        let t = str_of(&login_device(s, "lou", None, false), "access_token").to_string();
        assert_eq!(
            s.post("/_matrix/client/v3/logout/all", Some(&t), json!({}))
                .status,
            200
        );
    });
});

both!(
    refresh_racing_a_password_change_never_leaves_a_live_token,
    |s| {
        s.user("pam");
        let current = std::sync::Mutex::new("correct horse".to_string());
        let keeper = std::sync::Mutex::new(None::<String>);
        refresh_racing(s, "pam", &|_| {
            let mut pw = current.lock().unwrap();
            let mut keep = keeper.lock().unwrap();
            let token = keep.get_or_insert_with(|| {
                str_of(&login_device(s, "pam", Some("KEEP"), false), "access_token").to_string()
            });
            let next = format!("{}!", *pw);
            let r = with_password(
                s,
                PASSWORD,
                token,
                json!({"new_password": next}),
                "pam",
                &pw,
            );
            assert_eq!(r.status, 200, "{r:?}");
            // The login helper uses "correct horse": put it back for the next round.
            let r = with_password(
                s,
                PASSWORD,
                token,
                json!({"new_password": "correct horse"}),
                "pam",
                &next,
            );
            assert_eq!(r.status, 200, "{r:?}");
            *pw = "correct horse".into();
        });
    }
);

both!(a_replayed_retired_refresh_token_logs_the_device_out, |s| {
    s.user("theo");
    let login = login_device(s, "theo", Some("LAPTOP"), true);
    let r0 = str_of(&login, "refresh_token").to_string();
    let first = refresh(s, &r0);
    assert_eq!(first.status, 200);
    // Until the new pair is used, the old token may be retried (a lost response).
    let retry = refresh(s, &r0);
    assert_eq!(retry.status, 200, "{retry:?}");
    assert!(
        !works(s, str_of(&first, "access_token")),
        "the retry replaced the unused pair"
    );
    let a1 = str_of(&retry, "access_token").to_string();
    assert!(works(s, &a1), "first use retires the old pair");
    assert!(!works(s, str_of(&login, "access_token")));
    // Someone replays the retired token: the whole device session ends.
    let replay = refresh(s, &r0);
    assert_eq!((replay.status, replay.errcode()), (401, "M_UNKNOWN_TOKEN"));
    assert!(
        !works(s, &a1),
        "the thief's replay must end the device session"
    );
    assert_eq!(refresh(s, str_of(&retry, "refresh_token")).status, 401);
    // Other devices are not affected.
    let other = login_device(s, "theo", Some("PHONE"), false);
    assert!(works(s, str_of(&other, "access_token")));
});

both!(refresh_is_refused_for_locked_and_deactivated_users, |s| {
    s.user("lena");
    let login = login_device(s, "lena", None, true);
    let rt = str_of(&login, "refresh_token").to_string();
    assert!(s.cli(&["user", "lock", "lena"]).status.success());
    let r = refresh(s, &rt);
    assert_eq!((r.status, r.errcode()), (401, "M_USER_LOCKED"), "{r:?}");
    assert_eq!(r.body["soft_logout"], true);
    assert!(s.cli(&["user", "unlock", "lena"]).status.success());
    let r = refresh(s, &rt);
    assert_eq!(r.status, 200, "unlocked: the same token refreshes: {r:?}");
    let rt = str_of(&r, "refresh_token").to_string();
    assert!(s.cli(&["user", "deactivate", "lena"]).status.success());
    let r = refresh(s, &rt);
    assert_eq!((r.status, r.errcode()), (401, "M_UNKNOWN_TOKEN"), "{r:?}");
});

both!(
    sessions_end_at_their_absolute_lifetime,
    "[tokens]\nsession_lifetime_secs = 2\naccess_token_lifetime_secs = 60\n",
    |s| {
        s.user("sol");
        let started = Instant::now();
        let with = login_device(s, "sol", None, true);
        let without = login_device(s, "sol", None, false);
        assert!(
            with.body["expires_in_ms"].as_i64().unwrap() <= 2000,
            "{with:?}"
        );
        let mut rt = str_of(&with, "refresh_token").to_string();
        let mut access = str_of(&with, "access_token").to_string();
        // Refresh until the session is over; it must end, and not early.
        let deadline = started + Duration::from_secs(15);
        loop {
            let r = refresh(s, &rt);
            if r.status == 401 {
                assert_eq!(r.errcode(), "M_UNKNOWN_TOKEN");
                assert!(started.elapsed() >= Duration::from_secs(2), "ended early");
                break;
            }
            assert_eq!(r.status, 200, "{r:?}");
            assert!(r.body["expires_in_ms"].as_i64().unwrap() <= 2000);
            rt = str_of(&r, "refresh_token").to_string();
            access = str_of(&r, "access_token").to_string();
            assert!(Instant::now() < deadline, "the session never ended");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(!works(s, &access));
        let r = s.get(WHOAMI, without.body["access_token"].as_str());
        assert_eq!((r.status, r.errcode()), (401, "M_UNKNOWN_TOKEN"));
        assert_eq!(
            r.body["soft_logout"], true,
            "a session without refresh ends too"
        );
    }
);

both!(
    registration_retried_with_a_completed_session_gets_its_result,
    |s| {
        let body = json!({"username": "rex", "password": "correct horse"});
        let first = s.post(REGISTER, None, body.clone());
        let mut done = body.clone();
        done["auth"] = json!({"type": "m.login.dummy", "session": first.body["session"]});
        let ok = s.post(REGISTER, None, done.clone());
        assert_eq!(ok.status, 200, "{ok:?}");
        let again = s.post(REGISTER, None, done.clone());
        assert_eq!(
            again.status, 200,
            "the spec: a completed session gets the call's result: {again:?}"
        );
        assert_eq!(again.body["user_id"], "@rex:test.local");
        assert!(works(s, str_of(&again, "access_token")));
        assert!(
            works(s, str_of(&ok, "access_token")),
            "a new device, the first one stays"
        );
        // Without the session the name is taken, as before.
        let taken = s.post(REGISTER, None, body);
        assert_eq!((taken.status, taken.errcode()), (400, "M_USER_IN_USE"));
        // A session of another body is not a way in.
        let mut other = done;
        other["password"] = json!("another password");
        let r = s.post(REGISTER, None, other);
        assert_eq!((r.status, r.errcode()), (400, "M_USER_IN_USE"), "{r:?}");
    }
);

both!(
    a_completed_session_runs_nothing_twice_and_dies_with_the_password,
    |s| {
        let (_, token) = s.user("cora");
        // A completed password change, retried: the 401 lists the completed
        // stage, and nothing runs again.
        let body = json!({"new_password": "a better passphrase", "logout_devices": false});
        let first = s.post(PASSWORD, Some(&token), body.clone());
        let mut done = body;
        done["auth"] = json!({"type": "m.login.password", "session": first.body["session"], "user": "cora", "password": "correct horse"});
        assert_eq!(s.post(PASSWORD, Some(&token), done.clone()).status, 200);
        let r = with_password(
            s,
            PASSWORD,
            &token,
            json!({"new_password": "the third one!", "logout_devices": false}),
            "cora",
            "a better passphrase",
        );
        assert_eq!(r.status, 200);
        let retry = s.post(PASSWORD, Some(&token), done);
        assert_eq!(retry.status, 401, "{retry:?}");
        assert_eq!(retry.body["completed"], json!(["m.login.password"]));
        assert_eq!(
            s.login("cora", "the third one!").status,
            200,
            "the retry did not undo the later change"
        );

        // A completed registration can be retried for its result only until the
        // account logs out everywhere or changes its password.
        let reg = json!({"username": "rita2", "password": "correct horse"});
        let first = s.post(REGISTER, None, reg.clone());
        let mut done = reg;
        done["auth"] = json!({"type": "m.login.dummy", "session": first.body["session"]});
        let ok = s.post(REGISTER, None, done.clone());
        assert_eq!(s.post(REGISTER, None, done.clone()).status, 200);
        let t = str_of(&ok, "access_token").to_string();
        assert_eq!(
            s.post("/_matrix/client/v3/logout/all", Some(&t), json!({}))
                .status,
            200
        );
        let replay = s.post(REGISTER, None, done);
        assert_eq!(
            (replay.status, replay.errcode()),
            (400, "M_USER_IN_USE"),
            "{replay:?}"
        );

        // Login tokens do not survive a password change either.
        let first = s.post(
            "/_matrix/client/v1/login/get_token",
            Some(&token),
            json!({}),
        );
        let lt = s.post("/_matrix/client/v1/login/get_token", Some(&token), json!({"auth": {"type": "m.login.password", "session": first.body["session"], "user": "cora", "password": "the third one!"}}));
        let lt = str_of(&lt, "login_token").to_string();
        let r = with_password(
            s,
            PASSWORD,
            &token,
            json!({"new_password": "number four!!", "logout_devices": false}),
            "cora",
            "the third one!",
        );
        assert_eq!(r.status, 200);
        let r = s.post(LOGIN, None, json!({"type": "m.login.token", "token": lt}));
        assert_eq!((r.status, r.errcode()), (403, "M_FORBIDDEN"));
    }
);

both!(adding_a_3pid_challenges_before_anything_else, |s| {
    let (_, token) = s.user("tess");
    let r = s.post(
        "/_matrix/client/v3/account/3pid/add",
        Some(&token),
        json!({"client_secret": "secret", "sid": "nosuchsession"}),
    );
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.body["flows"], json!([{"stages": ["m.login.password"]}]));
});

both!(
    failed_password_stages_are_limited_like_failed_logins,
    &limits(&[("password_failures", 0.001, 2)], ""),
    |s| {
        let (_, token) = s.user("gus");
        let body = json!({"new_password": "a better passphrase"});
        for _ in 0..2 {
            let r = with_password(s, PASSWORD, &token, body.clone(), "gus", "guess");
            assert_eq!((r.status, r.errcode()), (401, "M_FORBIDDEN"), "{r:?}");
        }
        for path in [PASSWORD, DEACTIVATE, "/_matrix/client/v1/login/get_token"] {
            let first = s.post(
                path,
                Some(&token),
                json!({"new_password": "a better passphrase"}),
            );
            let mut b = json!({"new_password": "a better passphrase"});
            b["auth"] = json!({"type": "m.login.password", "session": first.body["session"], "identifier": {"type": "m.id.user", "user": "gus"}, "password": "correct horse"});
            let r = s.post(path, Some(&token), b);
            assert_eq!(
                (r.status, r.errcode()),
                (429, "M_LIMIT_EXCEEDED"),
                "{path}: even the right password waits: {r:?}"
            );
            assert!(r.headers.contains_key("retry-after"));
        }
        // Failures count per address too: another account from the same address
        // is refused as well.
        let (_, other) = s.user("gil");
        let r = with_password(s, PASSWORD, &other, body.clone(), "gil", "correct horse");
        assert_eq!(
            (r.status, r.errcode()),
            (429, "M_LIMIT_EXCEEDED"),
            "the address is limited too"
        );
    }
);

both!(
    failed_logins_are_counted_per_account_and_only_failures,
    &limits(&[("login_failures", 0.001, 2)], ""),
    |s| {
        s.user("vic");
        s.user("val");
        for _ in 0..5 {
            assert_eq!(
                s.login("vic", "correct horse").status,
                200,
                "successes never count"
            );
        }
        for _ in 0..2 {
            assert_eq!(s.login("vic", "wrong").errcode(), "M_FORBIDDEN");
        }
        let r = s.login("vic", "correct horse");
        assert_eq!((r.status, r.errcode()), (429, "M_LIMIT_EXCEEDED"));
        assert_eq!(s.login("val", "correct horse").status, 200, "per account");
    }
);

both!(
    forwarded_addresses_count_only_from_trusted_proxies_and_exempt_users_pass,
    &limits(
        &[("availability", 0.001, 1), ("openid", 0.001, 1)],
        "trusted_proxies = [\"127.0.0.1/32\"]\nexempt_users = [\"@bot:test.local\"]\n"
    ),
    |s| {
        let available = |xff: &str| {
            let req = http::Request::get(format!(
                "{}/_matrix/client/v3/register/available?username=free",
                s.base
            ))
            .header("x-forwarded-for", xff)
            .body(Vec::new())
            .unwrap();
            s.send_http(req).status().as_u16()
        };
        assert_eq!(available("203.0.113.1"), 200);
        assert_eq!(available("203.0.113.1"), 429);
        assert_eq!(
            available("203.0.113.2"),
            200,
            "another client behind the proxy"
        );
        assert_eq!(available("2001:db8::1"), 200);
        assert_eq!(
            available("2001:db8::2"),
            429,
            "IPv6 clients are keyed by /64"
        );
        let openid = |user_id: &str, token: &str| {
            s.post(
                &format!("/_matrix/client/v3/user/{user_id}/openid/request_token"),
                Some(token),
                json!({}),
            )
            .status
        };
        let (alice, at) = s.user("alice");
        assert_eq!(
            (openid(&alice, &at), openid(&alice, &at)),
            (200, 429),
            "per user"
        );
        let (bot, bt) = s.user("bot");
        for _ in 0..3 {
            assert_eq!(openid(&bot, &bt), 200, "exempt");
        }
    }
);

both!(
    refresh_is_rate_limited,
    &limits(&[("refresh", 0.001, 2)], ""),
    |s| {
        s.user("rae");
        let mut rt = str_of(&login_device(s, "rae", None, true), "refresh_token").to_string();
        for _ in 0..2 {
            let r = refresh(s, &rt);
            assert_eq!(r.status, 200);
            rt = str_of(&r, "refresh_token").to_string();
        }
        let r = refresh(s, &rt);
        assert_eq!((r.status, r.errcode()), (429, "M_LIMIT_EXCEEDED"));
    }
);

both!(
    deactivated_is_said_only_to_the_password_holder_and_3pids_are_released,
    |s| {
        let (user_id, token) = s.user("dana");
        s.user("erin");
        if let Some(db) = s.postgres() {
            db.execute(&format!("INSERT INTO threepids (medium, address, user_id, validated_ms, added_ms) VALUES ('email', 'dana@example.org', '{user_id}', 1, 1)"));
        }
        let openid = s.post(
            &format!("/_matrix/client/v3/user/{user_id}/openid/request_token"),
            Some(&token),
            json!({}),
        );
        let openid = str_of(&openid, "access_token").to_string();
        let userinfo = |t: &str| {
            s.get(
                &format!("/_matrix/federation/v1/openid/userinfo?access_token={t}"),
                None,
            )
            .status
        };
        assert_eq!(userinfo(&openid), 200);
        let r = with_password(s, DEACTIVATE, &token, json!({}), "dana", "correct horse");
        assert_eq!(
            (r.status, &r.body),
            (200, &json!({"id_server_unbind_result": "success"}))
        );
        assert_eq!(userinfo(&openid), 401, "OpenID tokens end with the account");
        let wrong = s.login("dana", "not the password");
        assert_eq!(
            (wrong.status, wrong.errcode()),
            (403, "M_FORBIDDEN"),
            "no hint for a guesser"
        );
        let right = s.login("dana", "correct horse");
        assert_eq!((right.status, right.errcode()), (403, "M_USER_DEACTIVATED"));
        if let Some(db) = s.postgres() {
            assert_eq!(
                db.count("SELECT count(*) FROM threepids"),
                0,
                "3PIDs are released"
            );
        }
        // Erasing forgets the password too.
        let t = str_of(&login_device(s, "erin", None, false), "access_token").to_string();
        let r = with_password(
            s,
            DEACTIVATE,
            &t,
            json!({"erase": true}),
            "erin",
            "correct horse",
        );
        assert_eq!(r.status, 200);
        assert_eq!(s.login("erin", "correct horse").errcode(), "M_FORBIDDEN");
    }
);

#[test]
fn the_database_holds_nothing_to_guess_uia_passwords_with() {
    let Some(s) = TestServer::start(matrix_tests::server::Db::Postgres, "") else {
        return;
    };
    let (_, token) = s.user("nina");
    let pending = s.post(
        PASSWORD,
        Some(&token),
        json!({"new_password": "guess me if you can"}),
    );
    let session = str_of(&pending, "session");
    let db = s.postgres().expect("PostgreSQL test");
    // The registration's completed session and this pending one.
    assert_eq!(db.count("SELECT count(*) FROM uia_sessions"), 2);
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM uia_sessions WHERE session_id = '{session}'"
        )),
        0,
        "the session ID, which keys the binding, must not be stored"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM server_secrets"),
        0,
        "no binding key in the database"
    );
    // The binding is an HMAC of the bound fields keyed by the session ID: with
    // the ID it verifies a guess; with what the database holds it does not.
    let row = "FROM uia_sessions WHERE endpoint LIKE '%password'";
    let stored_id = db.text(&format!("SELECT session_id {row}"));
    let binding = db.text(&format!("SELECT binding {row}"));
    let fields = ["guess me if you can", "1"];
    assert_eq!(
        bind_hash(session.as_bytes(), &fields),
        binding,
        "the binding scheme changed"
    );
    assert_ne!(bind_hash(stored_id.as_bytes(), &fields), binding);
}

/// The server's binding: HMAC-SHA-256 over length-prefixed fields, base64url.
fn bind_hash(key: &[u8], fields: &[&str]) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    for f in fields {
        mac.update(&(f.len() as u64).to_be_bytes());
        mac.update(f.as_bytes());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Reads from `stream` until the server closes it; `Err` when it is still open at
/// the deadline. Whatever the client tries to send meanwhile comes from `feed`.
fn closed_within(
    stream: &mut TcpStream,
    deadline: Duration,
    mut feed: impl FnMut(&mut TcpStream) -> bool,
) -> Result<String, String> {
    let end = Instant::now() + deadline;
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut got = Vec::new();
    loop {
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(0) => return Ok(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Ok(String::from_utf8_lossy(&got).into_owned()),
        }
        if Instant::now() > end {
            return Err(String::from_utf8_lossy(&got).into_owned());
        }
        if !feed(stream) {
            // The write failed: the server closed its end.
            return Ok(String::from_utf8_lossy(&got).into_owned());
        }
    }
}

#[test]
fn slow_and_idle_clients_are_disconnected_while_others_are_served() {
    let Some(s) = TestServer::start(
        matrix_tests::server::Db::Sqlite,
        "[connections]\nheader_timeout_secs = 1\nbody_timeout_secs = 1\n",
    ) else {
        return;
    };
    let addr = s.base.trim_start_matches("http://").to_string();
    // Headers, one byte every 300 ms (slowloris): cut off after about a second.
    let head = b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut slow = TcpStream::connect(&addr).unwrap();
    let mut sent = 0;
    let started = Instant::now();
    let r = closed_within(&mut slow, Duration::from_secs(10), |st| {
        // Meanwhile the server answers other clients.
        assert_eq!(s.get("/_matrix/client/versions", None).status, 200);
        let ok = st
            .write_all(&head[sent % head.len()..sent % head.len() + 1])
            .is_ok();
        sent += 1;
        ok
    });
    assert!(
        r.is_ok(),
        "a client trickling headers was never disconnected"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "cut off before its time"
    );

    // A body promised but trickled: the request fails and the connection closes.
    let mut trickle = TcpStream::connect(&addr).unwrap();
    trickle
        .write_all(b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        .unwrap();
    let r = closed_within(&mut trickle, Duration::from_secs(10), |st| {
        st.write_all(b" ").is_ok()
    });
    let text = r.expect("a client trickling its body was never disconnected");
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");

    // An idle keep-alive connection is closed too.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = closed_within(&mut idle, Duration::from_secs(10), |_| true);
    assert!(r
        .expect("an idle connection stayed open")
        .starts_with("HTTP/1.1 200"));
    assert_eq!(s.get("/_matrix/client/versions", None).status, 200);
}

#[test]
fn one_address_cannot_take_every_connection() {
    let Some(s) = TestServer::start(
        matrix_tests::server::Db::Sqlite,
        "[connections]\nmax_per_address = 2\n[rate_limits]\nenabled = false\ntrusted_proxies = []\n",
    ) else {
        return;
    };
    let addr = s.base.trim_start_matches("http://").to_string();
    let hold: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    let mut third = TcpStream::connect(&addr).unwrap();
    let r = closed_within(&mut third, Duration::from_secs(5), |_| true);
    assert_eq!(
        r.as_deref(),
        Ok(""),
        "the third connection from one address is closed at once"
    );
    drop(hold);
    eventually("slots are given back", Duration::from_secs(5), || {
        s.try_request("GET", "/_matrix/client/versions", None, None)
            .is_ok_and(|r| r.status == 200)
    });
}

#[test]
fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let Some(s) = TestServer::start(
        matrix_tests::server::Db::Sqlite,
        "[connections]\nmax = 2\nheader_timeout_secs = 2\n",
    ) else {
        return;
    };
    let addr = s.base.trim_start_matches("http://").to_string();
    let hold: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // Both slots are taken by silent clients; a third is answered only once the
    // header timeout frees one, and is answered then.
    let started = Instant::now();
    let r = s.get("/_matrix/client/versions", None);
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "served while every slot was taken ({:?})",
        started.elapsed()
    );
    drop(hold);
}
