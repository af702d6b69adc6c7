//! A caller of the `client_only` fixture's client-only file (`mas.yaml`,
//! `x-served: false`), written as a server calls Synapse's `/_synapse/mas/*`:
//! the generated modules' `Request`s, sent with `runtime::Client` (the
//! `client` feature) or turned into HTTP and read back with
//! `runtime::ClientRequest`. `tests/compile.rs` runs its tests.

use api::client_only::mas::{delete_device, provision_user, query_user};
use api::runtime::{Client, ClientError, MatrixError};

/// Creates or updates the user: whether it was created.
pub async fn provision(
    synapse: &Client,
    localpart: &str,
    displayname: Option<String>,
) -> Result<bool, ClientError<MatrixError>> {
    let mut body = provision_user::RequestBody::new(localpart.to_owned());
    body.set_displayname = displayname;
    Ok(
        match synapse.send(&provision_user::Request::new(body)).await? {
            provision_user::Response::Created(_) => true,
            provision_user::Response::Ok(_) => false,
        },
    )
}

/// Deletes a device; `Ok(false)` when Synapse knows no such user.
pub async fn delete(
    synapse: &Client,
    localpart: &str,
    device_id: &str,
) -> Result<bool, ClientError<MatrixError>> {
    let body = delete_device::RequestBody::new(localpart.to_owned(), device_id.to_owned());
    match synapse.send(&delete_device::Request::new(body)).await {
        Ok(delete_device::Response::NoContent) => Ok(true),
        Err(ClientError::Api(e)) if e.errcode == "M_NOT_FOUND" => Ok(false),
        Err(e) => Err(e),
    }
}

/// The request for what Synapse knows of a user.
pub fn query(localpart: &str) -> query_user::Request {
    query_user::Request::new(localpart.to_owned())
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use api::runtime::{Bytes, ClientRequest};

    use super::*;

    const BASE: &str = "http://synapse.test";
    const SECRET: &str = "s3cret";

    fn answer(status: u16, body: &str) -> http::Response<Bytes> {
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Bytes::from(body.to_owned()))
            .unwrap()
    }

    fn json(request: &http::Request<Bytes>) -> serde_json::Value {
        serde_json::from_slice(request.body()).unwrap()
    }

    /// One HTTP/1.1 exchange on a local port: the request as received (head
    /// and body), after answering it `status` with `body`.
    fn serve_once(
        status: &'static str,
        body: &'static str,
    ) -> (String, std::thread::JoinHandle<(String, String)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let mut sent = vec![0; length];
            reader.read_exact(&mut sent).unwrap();
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            reader.get_mut().write_all(reply.as_bytes()).unwrap();
            (head, String::from_utf8(sent).unwrap())
        });
        (url, server)
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn the_client_sends_the_shared_secret_and_reads_a_201() {
        let (url, server) = serve_once("201 Created", "{}");
        let synapse = Client::new(url).with_access_token(SECRET);
        let created = block_on(provision(&synapse, "alice", Some("Alice".into()))).unwrap();
        assert!(created);
        let (head, body) = server.join().unwrap();
        assert!(
            head.starts_with("POST /_synapse/mas/provision_user HTTP/1.1\r\n"),
            "{head}"
        );
        let head = head.to_ascii_lowercase();
        assert!(head.contains("authorization: bearer s3cret\r\n"), "{head}");
        assert!(
            head.contains("content-type: application/json\r\n"),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"localpart": "alice", "set_displayname": "Alice"})
        );
    }

    #[test]
    fn a_404_error_envelope_is_the_callers_err() {
        let (url, server) = serve_once(
            "404 Not Found",
            r#"{"errcode":"M_NOT_FOUND","error":"No such user"}"#,
        );
        let synapse = Client::new(url).with_access_token(SECRET);
        assert!(!block_on(delete(&synapse, "bob", "DEVICE")).unwrap());
        let (head, body) = server.join().unwrap();
        assert!(
            head.starts_with("POST /_synapse/mas/delete_device HTTP/1.1\r\n"),
            "{head}"
        );
        assert_eq!(body, r#"{"localpart":"bob","device_id":"DEVICE"}"#);
    }

    #[test]
    fn requests_become_http_and_answers_their_variants() {
        // provision_user: 201 and 200 are variants.
        let request =
            provision_user::Request::new(provision_user::RequestBody::new("alice".into()));
        let http = request.to_http(BASE, Some(SECRET)).unwrap();
        assert_eq!(http.method(), http::Method::POST);
        assert_eq!(
            http.uri(),
            "http://synapse.test/_synapse/mas/provision_user"
        );
        assert_eq!(http.headers()["authorization"], "Bearer s3cret");
        assert_eq!(json(&http), serde_json::json!({"localpart": "alice"}));
        assert!(matches!(
            provision_user::Request::parse(answer(201, "{}")),
            Ok(provision_user::Response::Created(_))
        ));
        assert!(matches!(
            provision_user::Request::parse(answer(200, "{}")),
            Ok(provision_user::Response::Ok(_))
        ));
        // 403 is documented as the error envelope: an `Err`, not a variant.
        match provision_user::Request::parse(answer(403, r#"{"errcode":"M_FORBIDDEN"}"#)) {
            Err(ClientError::Api(e)) => assert_eq!(e.errcode, "M_FORBIDDEN"),
            other => panic!("{other:?}"),
        }

        // delete_device: 204 without a body, 404 an `Err`.
        assert!(matches!(
            delete_device::Request::parse(answer(204, "")),
            Ok(delete_device::Response::NoContent)
        ));
        match delete_device::Request::parse(answer(
            404,
            r#"{"errcode":"M_NOT_FOUND","error":"gone"}"#,
        )) {
            Err(ClientError::Api(e)) => {
                assert_eq!(
                    (e.errcode.as_str(), e.error.as_str()),
                    ("M_NOT_FOUND", "gone")
                );
                assert_eq!(e.status, 404);
            }
            other => panic!("{other:?}"),
        }
        // An undocumented status that is no error envelope.
        assert!(matches!(
            delete_device::Request::parse(answer(500, "oops")),
            Err(ClientError::UnexpectedStatus { .. })
        ));

        // query_user: a query parameter, and an identifier in the answer.
        let http = query("alice").to_http(BASE, Some(SECRET)).unwrap();
        assert_eq!(http.method(), http::Method::GET);
        assert_eq!(
            http.uri(),
            "http://synapse.test/_synapse/mas/query_user?localpart=alice"
        );
        match query_user::Request::parse(answer(
            200,
            r#"{"user_id":"@alice:synapse.test","is_suspended":false}"#,
        )) {
            Ok(query_user::Response::Ok(user)) => {
                assert_eq!(user.user_id.as_str(), "@alice:synapse.test");
                assert!(!user.is_suspended);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_router_routes_the_served_file_only() {
        let routed: Vec<&str> = api::router::ROUTES
            .iter()
            .map(|r| r.metadata.operation_id)
            .collect();
        assert_eq!(routed, ["whoami"]);
    }
}
