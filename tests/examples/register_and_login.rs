//! Registers an account (user-interactive auth with the `m.login.dummy` stage)
//! and logs in with the typed client: `cargo run -p matrix-tests --example
//! register_and_login -- http://127.0.0.1:8008 ada`. Shown in the README.

use matrix_api::client_server::{login::login, registration::register};
use matrix_api::runtime::Client;
use matrix_api::types::{AuthData, UserIdentifier};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let client = Client::new(args.next().unwrap_or("http://127.0.0.1:8008".into()));
    let (user, password) = (args.next().unwrap_or("ada".into()), "correct horse battery");

    let mut body = register::RequestBody::new();
    (body.username, body.password) = (Some(user.clone()), Some(password.into()));
    // The first attempt answers 401 with the flows and a session; complete the dummy stage.
    let register::Response::Unauthorized(uia) =
        client.send(&register::Request::new(body.clone())).await?
    else {
        return Err("no UIA".into());
    };
    let mut auth = AuthData::new();
    (auth.type_, auth.session) = (Some("m.login.dummy".into()), uia.session);
    body.auth = Some(auth);
    let register::Response::Ok(account) = client.send(&register::Request::new(body)).await? else {
        return Err("not registered".into());
    };

    let mut identifier = UserIdentifier::new("m.id.user".into());
    identifier.extra.insert("user".into(), user.into());
    let mut body = login::RequestBody::new("m.login.password".into());
    (body.identifier, body.password) = (Some(identifier), Some(password.into()));
    // Refusals (403 wrong password, 429) are the error: 200 is the only variant.
    let login::Response::Ok(session) = client.send(&login::Request::new(body)).await?;
    println!(
        "{} logged in as device {:?}",
        account.user_id, session.device_id
    );
    Ok(())
}
