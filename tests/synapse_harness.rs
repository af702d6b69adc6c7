//! The Synapse harness (`matrix_tests::synapse`) on its own, without the
//! account server: a real Synapse 1.163.2 with delegated authentication starts,
//! and the part of its `/_synapse/mas/` API our server relies on answers as
//! docs/synapse-delegation.md says (the shared secret guards it; users are
//! provisioned and queried by localpart). Nothing listens on the auth endpoint:
//! Synapse only contacts it for client requests.

use matrix_tests::smtp::unused_port;
use matrix_tests::synapse::{Synapse, SynapseOptions};
use serde_json::json;

fn start() -> Option<Synapse> {
    let endpoint = format!("http://127.0.0.1:{}/", unused_port());
    let synapse = Synapse::start(SynapseOptions::new(endpoint))?;
    eprintln!("Synapse started in {:?}", synapse.startup_time());
    Some(synapse)
}

#[test]
fn the_mas_api_takes_only_the_shared_secret() {
    let Some(synapse) = start() else { return };
    let path = "/_synapse/mas/is_localpart_available?localpart=alice";

    let (status, body) =
        synapse.admin_request("GET", "is_localpart_available?localpart=alice", None);
    assert_eq!((status, &body), (200, &json!({})), "with the secret");

    let (status, body) = synapse.request("GET", path, Some("not-the-secret"), None);
    assert_eq!(status, 403, "with a wrong secret: {body}");

    let (status, body) = synapse.request("GET", path, None, None);
    assert_eq!(status, 401, "without a secret: {body}");
}

#[test]
fn a_provisioned_user_can_be_queried_and_stop_ends_synapse() {
    let Some(synapse) = start() else { return };

    let (status, body) = synapse.admin_request("GET", "query_user?localpart=alice", None);
    assert_eq!(status, 404, "before provisioning: {body}");
    assert_eq!(body["errcode"], "M_NOT_FOUND", "{body}");

    let provision = json!({"localpart": "alice", "set_displayname": "Alice"});
    let (status, body) = synapse.admin_request("POST", "provision_user", Some(&provision));
    assert_eq!(status, 201, "created: {body}");
    let (status, body) = synapse.admin_request("POST", "provision_user", Some(&provision));
    assert_eq!(status, 200, "provisioned again: updated: {body}");

    let (status, body) = synapse.admin_request("GET", "query_user?localpart=alice", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], synapse.user_id("alice"), "{body}");
    assert_eq!(body["display_name"], "Alice", "{body}");
    assert_eq!(body["is_deactivated"], false, "{body}");
    assert_eq!(body["is_suspended"], false, "{body}");

    let (status, body) =
        synapse.admin_request("GET", "is_localpart_available?localpart=alice", None);
    assert_eq!(status, 400, "taken now: {body}");
    assert_eq!(body["errcode"], "M_USER_IN_USE", "{body}");

    // Closing stdin ends Synapse by itself (what protects against a killed
    // test process); nothing listens afterwards.
    let port = synapse.port();
    synapse.stop().expect("Synapse exits when its stdin closes");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still answers after stop"
    );
}
