//! Wire compatibility with the ecosystem's standard types: the server is driven
//! with `ruma-client-api` requests (built by ruma, not by us) and every response is
//! parsed by ruma. A field name, status or error shape that differs from what ruma
//! expects fails here.

use std::borrow::Cow;

use matrix_tests::server::{Db, TestServer};
use ruma_client_api::account::{
    change_password, get_username_availability, register, request_openid_token, whoami,
};
use ruma_client_api::discovery::get_supported_versions;
use ruma_client_api::session::{login, logout, refresh_token};
use ruma_client_api::uiaa::{
    AuthData, Dummy, MatrixUserIdentifier, Password, UiaaResponse, UserIdentifier,
};
use ruma_common::api::auth_scheme::{AuthScheme, SendAccessToken};
use ruma_common::api::error::{ErrorKind, FromHttpResponseError};
use ruma_common::api::path_builder::VersionHistory;
use ruma_common::api::{
    IncomingResponseExt, Metadata, OutgoingRequest, OutgoingRequestExt, SupportedVersions,
};

/// One request through ruma: ruma builds it, ruma parses the answer.
fn call<R>(
    s: &TestServer,
    versions: &SupportedVersions,
    token: Option<&str>,
    req: R,
) -> Result<R::IncomingResponse, FromHttpResponseError<R::EndpointError>>
where
    R: OutgoingRequest + Metadata<PathBuilder = VersionHistory>,
    for<'a> <R as Metadata>::Authentication: AuthScheme<Input<'a> = SendAccessToken<'a>>,
{
    let access = match token {
        Some(t) => SendAccessToken::IfRequired(t),
        None => SendAccessToken::None,
    };
    let http = req
        .try_into_http_request::<Vec<u8>>(&s.base, access, Cow::Borrowed(versions))
        .expect("ruma builds the request");
    let (parts, body) = s.send_http(http).into_parts();
    R::IncomingResponse::try_from_http_response(http::Response::from_parts(parts, body.as_slice()))
}

fn versions(s: &TestServer) -> SupportedVersions {
    let req = get_supported_versions::Request::new()
        .try_into_http_request::<Vec<u8>>(&s.base, SendAccessToken::None, ())
        .unwrap();
    let (parts, body) = s.send_http(req).into_parts();
    let resp = get_supported_versions::Response::try_from_http_response(
        http::Response::from_parts(parts, body.as_slice()),
    )
    .expect("ruma parses /versions");
    let supported = SupportedVersions::from_parts(&resp.versions, &resp.unstable_features);
    assert!(
        !supported.versions.is_empty(),
        "ruma recognises the advertised versions: {:?}",
        resp.versions
    );
    supported
}

fn identifier(user: &str) -> UserIdentifier {
    UserIdentifier::Matrix(MatrixUserIdentifier::new(user.to_string()))
}

fn account_lifecycle_through_ruma(db: Db) {
    let Some(s) = TestServer::start(db, "") else {
        return;
    };
    let v = versions(&s);

    // Registration: the first answer is a UIA challenge ruma understands.
    let mut req = register::v3::Request::new();
    req.username = Some("ruma".into());
    req.password = Some("correct horse".into());
    let session = match call(&s, &v, None, req.clone()) {
        Err(FromHttpResponseError::Server(UiaaResponse::AuthResponse(info))) => {
            assert!(info
                .flows
                .iter()
                .any(|f| f.stages.iter().any(|st| st.as_str() == "m.login.dummy")));
            info.session.expect("session")
        }
        other => panic!("expected a UIA challenge, got {other:?}"),
    };
    let mut dummy = Dummy::new();
    dummy.session = Some(session);
    req.auth = Some(AuthData::Dummy(dummy));
    req.refresh_token = true;
    let registered = call(&s, &v, None, req).expect("registration completes");
    assert_eq!(registered.user_id.as_str(), "@ruma:test.local");
    let token = registered.access_token.expect("access token");
    assert!(registered.expires_in.is_some() && registered.refresh_token.is_some());

    let me = call(&s, &v, Some(&token), whoami::v3::Request::new()).expect("whoami");
    assert_eq!(
        (me.user_id.as_str(), me.is_guest),
        ("@ruma:test.local", false)
    );
    assert_eq!(me.device_id, registered.device_id);

    // Errors parse into ruma's error kinds.
    match call(
        &s,
        &v,
        None,
        get_username_availability::v3::Request::new("ruma".into()),
    ) {
        Err(FromHttpResponseError::Server(e)) => {
            assert_eq!(e.error_kind(), Some(&ErrorKind::UserInUse))
        }
        other => panic!("expected M_USER_IN_USE, got {other:?}"),
    }
    match call(&s, &v, Some("forged"), whoami::v3::Request::new()) {
        Err(FromHttpResponseError::Server(e)) => {
            assert!(matches!(e.error_kind(), Some(ErrorKind::UnknownToken(d)) if !d.soft_logout))
        }
        other => panic!("expected M_UNKNOWN_TOKEN, got {other:?}"),
    }

    let refreshed = call(
        &s,
        &v,
        None,
        refresh_token::v3::Request::new(registered.refresh_token.unwrap()),
    )
    .expect("refresh");
    let token = refreshed.access_token;

    // Password change with m.login.password, as ruma sends it.
    let mut change = change_password::v3::Request::new("a better passphrase".into());
    let session = match call(&s, &v, Some(&token), change.clone()) {
        Err(FromHttpResponseError::Server(UiaaResponse::AuthResponse(info))) => {
            info.session.expect("session")
        }
        other => panic!("expected a UIA challenge, got {other:?}"),
    };
    let mut password = Password::new(identifier("ruma"), "correct horse".into());
    password.session = Some(session);
    change.auth = Some(AuthData::Password(password));
    call(&s, &v, Some(&token), change).expect("password changed");

    let login = login::v3::Request::new(login::v3::LoginInfo::Password(login::v3::Password::new(
        identifier("ruma"),
        "a better passphrase".into(),
    )));
    let logged_in = call(&s, &v, None, login).expect("login");
    assert_eq!(logged_in.user_id.as_str(), "@ruma:test.local");

    let openid = call(
        &s,
        &v,
        Some(&logged_in.access_token),
        request_openid_token::v3::Request::new(logged_in.user_id.clone()),
    )
    .expect("openid");
    assert_eq!(openid.matrix_server_name.as_str(), "test.local");
    assert_eq!(openid.expires_in.as_secs(), 3600);

    call(
        &s,
        &v,
        Some(&logged_in.access_token),
        logout::v3::Request::new(),
    )
    .expect("logout");
    match call(
        &s,
        &v,
        Some(&logged_in.access_token),
        whoami::v3::Request::new(),
    ) {
        Err(FromHttpResponseError::Server(e)) => {
            assert!(matches!(e.error_kind(), Some(ErrorKind::UnknownToken(_))))
        }
        other => panic!("the token should be gone, got {other:?}"),
    }
}

#[test]
fn account_lifecycle_through_ruma_sqlite() {
    account_lifecycle_through_ruma(Db::Sqlite);
}

#[test]
fn account_lifecycle_through_ruma_postgres() {
    account_lifecycle_through_ruma(Db::Postgres);
}

/// The generated layer's identifier types accept and refuse what ruma's do, on
/// a corpus of edge cases (lengths, historical characters, IPv6 server names with
/// ports), except where the spec's prose is stricter than ruma (listed).
#[test]
fn identifier_types_agree_with_ruma() {
    use matrix_api::runtime as ours;
    let long_local = "a".repeat(255 - "@:x.org".len());
    let servers = [
        "matrix.org",
        "matrix.org:8448",
        "matrix.org:65536",
        "matrix.org:",
        ":8448",
        "1.2.3.4:1234",
        "[1234:5678::abcd]:5678",
        "[::ffff:1.2.3.4]",
        "[::1",
        "[zz::1]",
        "under_score.org",
        "UPPER.org",
        "host/path",
        "exämple.org",
    ];
    let mut disagree = Vec::new();
    for s in servers {
        if ours::ServerName::parse(s).is_ok() != ruma_common::ServerName::parse(s).is_ok() {
            disagree.push(format!("server name {s:?}"));
        }
    }
    let users = [
        "@alice:matrix.org".to_string(),
        "@alice:[::1]:8448".into(),
        "@Alice:matrix.org".into(),
        "@a!b#c:matrix.org".into(),
        "@:matrix.org".into(),
        "@alice".into(),
        "alice:matrix.org".into(),
        "@alice:bad_server".into(),
        format!("@{long_local}:x.org"),
        format!("@{long_local}a:x.org"),
    ];
    for u in &users {
        if ours::UserId::parse(u).is_ok() != ruma_common::UserId::parse(u.as_str()).is_ok() {
            disagree.push(format!("user ID {u:?}"));
        }
    }
    // Each kind: the corpus, whether ours accepts, whether ruma's does.
    type Check = (
        &'static str,
        &'static [&'static str],
        fn(&str) -> bool,
        fn(&str) -> bool,
    );
    let kinds: [Check; 3] = [
        (
            "room alias",
            &[
                "#room:matrix.org",
                "#:matrix.org",
                "room:matrix.org",
                "#room:bad_server",
            ],
            |s| ours::RoomAlias::parse(s).is_ok(),
            |s| ruma_common::RoomAliasId::parse(s).is_ok(),
        ),
        (
            "room ID",
            &[
                "!abc:matrix.org",
                "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM",
                "abc",
            ],
            |s| ours::RoomId::parse(s).is_ok(),
            |s| ruma_common::RoomId::parse(s).is_ok(),
        ),
        (
            "event ID",
            &[
                "$abc:matrix.org",
                "$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk",
                "abc",
            ],
            |s| ours::EventId::parse(s).is_ok(),
            |s| ruma_common::EventId::parse(s).is_ok(),
        ),
    ];
    for (kind, corpus, ours_ok, ruma_ok) in kinds {
        for s in corpus {
            if ours_ok(s) != ruma_ok(s) {
                disagree.push(format!("{kind} {s:?}"));
            }
        }
    }
    assert!(
        disagree.is_empty(),
        "disagreements with ruma:\n{}",
        disagree.join("\n")
    );
    // The one known difference: the spec says IPv4 literals are four numbers
    // from 0 to 255, so a dotted quad out of range is refused here; ruma reads it
    // as a DNS name.
    assert!(ours::ServerName::parse("1.2.3.256").is_err());
    assert!(ruma_common::ServerName::parse("1.2.3.256").is_ok());
    // Same wire form: what one side parsed, the other reads back unchanged.
    let ours = ours::UserId::parse("@alice:[::1]:8448").unwrap();
    let json = serde_json::to_string(&ours).unwrap();
    let theirs: ruma_common::OwnedUserId = serde_json::from_str(&json).unwrap();
    assert_eq!(theirs.as_str(), ours.as_str());
    assert_eq!(
        (theirs.localpart(), theirs.server_name().as_str()),
        (ours.localpart(), ours.server_name())
    );
}
