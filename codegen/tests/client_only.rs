//! `x-served: false`: an API file the service calls but does not serve. The
//! `client_only` fixture has one served file and one client-only file
//! (Synapse's `/_synapse/mas/*` in small: a Bearer shared secret, JSON
//! bodies, 201/200/204 answers and a 404 error); its snapshot shows the whole
//! output, these tests state what matters. `compile.rs` builds it with the
//! `client` feature and calls it.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use matrix_codegen::versions::{self, Version};
use support::{fixtures, options};

fn generate(spec: &Path) -> BTreeMap<String, String> {
    matrix_codegen::generate(spec, &options("client_only"))
        .unwrap_or_else(|e| panic!("{}:\n{e}", spec.display()))
        .files
}

#[test]
fn a_client_only_file_is_marked_in_the_ir_and_has_no_route_trait_name() {
    let api = matrix_codegen::load_spec(&fixtures().join("client_only"))
        .unwrap()
        .api;
    let files: Vec<(&str, bool, &str)> = api
        .files
        .iter()
        .map(|f| (f.source.as_str(), f.served, f.trait_name.as_str()))
        .collect();
    assert_eq!(
        files,
        [
            ("client_only/mas.yaml", false, ""),
            ("client_only/served.yaml", true, "ServedApi"),
        ]
    );
    let served: Vec<&str> = api.served_files().map(|f| f.source.as_str()).collect();
    assert_eq!(served, ["client_only/served.yaml"]);
}

#[test]
fn a_client_only_file_gets_its_client_side_and_no_route_trait_or_route() {
    let files = generate(&fixtures().join("client_only"));
    let mas = &files["src/client_only/mas.rs"];
    // Every operation has its module, types and client side as usual…
    for op in ["provision_user", "delete_device", "query_user"] {
        assert!(mas.contains(&format!("pub mod {op} {{")), "{op}");
    }
    assert_eq!(mas.matches("pub static METADATA").count(), 3);
    assert_eq!(
        mas.matches("impl crate::runtime::ClientRequest for Request")
            .count(),
        3
    );
    assert!(mas.contains("Created(CreatedBody)"), "201 is a variant");
    assert!(mas.contains("NoContent"), "204 is a variant");
    assert!(
        mas.contains("(\"sharedSecret\", crate::runtime::AuthScheme::Authorization(\"Bearer\"))")
    );
    // …but nothing to implement: no route trait, no stub of one.
    assert!(!mas.contains("pub trait"), "{mas}");
    assert!(!mas.contains("Stub"), "{mas}");
    assert!(
        mas.contains("says `x-served: false`"),
        "the module says why"
    );

    // The router routes the served file only.
    let router = &files["src/router.rs"];
    assert!(router.contains("pub trait Api: crate::client_only::served::ServedApi {}"));
    assert!(!router.contains("mas"), "{router}");
    assert_eq!(router.matches("crate::runtime::Route {").count(), 1);
    assert!(files["src/client_only/served.rs"].contains("pub trait ServedApi"));
}

#[test]
fn a_crate_of_client_only_files_has_no_router() {
    // One file, on its own: nothing is served.
    let files = generate(&fixtures().join("client_only/mas.yaml"));
    assert!(!files.contains_key("src/router.rs"));
    let lib = &files["src/lib.rs"];
    assert!(!lib.contains("mod router"), "{lib}");
    assert!(!lib.contains("router::"), "{lib}");
    assert!(lib.contains("pub mod client_only;"));
    assert!(files["src/client_only/mas.rs"].contains("impl crate::runtime::ClientRequest"));
}

#[test]
fn the_bundle_describes_the_served_operations_only() {
    let bundle = matrix_codegen::bundle::bundle(&fixtures().join("client_only")).unwrap();
    let paths: Vec<&String> = bundle["paths"].as_object().unwrap().keys().collect();
    assert_eq!(paths, ["/_test/v1/whoami"]);
    // The client-only file's security scheme (the shared secret) is not the
    // server's either.
    let schemes: Vec<&String> = bundle["components"]["securitySchemes"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(schemes, ["accessToken"]);
}

/// A spec directory under the test's scratch space with these files.
fn spec(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("client-only-specs")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

/// A client-only file whose operation takes a required field added in v1.7.
fn calls(served: &str) -> String {
    format!(
        "openapi: 3.1.0\n\
         info: {{title: calls, version: 1.0.0}}\n\
         x-served: {served}\n\
         servers: [{{url: /_other/v1}}]\n\
         paths:\n  /call:\n    post:\n      operationId: call\n\
         \x20     requestBody:\n        required: true\n        content:\n          application/json:\n\
         \x20           schema:\n              type: object\n              required: [since]\n\
         \x20             properties:\n                since: {{type: string, x-addedInMatrixVersion: \"1.7\"}}\n\
         \x20     responses:\n        \"204\": {{description: Done.}}\n"
    )
}

#[test]
fn what_the_service_calls_does_not_narrow_the_versions_it_serves() {
    let served = std::fs::read_to_string(fixtures().join("client_only/served.yaml")).unwrap();
    let release = Version::parse("v1.19").unwrap();
    let first = |files: &[(&str, &str)], name: &str| {
        let api = matrix_codegen::load_spec(&spec(name, files)).unwrap().api;
        versions::supported(&api, release)[0].to_string()
    };
    // Served, the required field means clients before v1.7 cannot call it.
    let calls_served = calls("true");
    assert_eq!(
        first(
            &[("served.yaml", &served), ("calls.yaml", &calls_served)],
            "versions-served"
        ),
        "v1.7"
    );
    // Called, it says nothing about the clients the service serves, nor about
    // the release of a spec without a pin.
    let calls_only = calls("false");
    let files = [
        ("served.yaml", served.as_str()),
        ("calls.yaml", &calls_only),
    ];
    assert_eq!(first(&files, "versions-called"), "v1.1");
    let api = matrix_codegen::load_spec(&spec("versions-called", &files))
        .unwrap()
        .api;
    assert_eq!(versions::newest_annotation(&api), None);
}

#[test]
fn a_client_only_file_has_no_route_trait_to_rename() {
    let mas = std::fs::read_to_string(fixtures().join("client_only/mas.yaml")).unwrap();
    let dir = spec(
        "rename",
        &[
            ("mas.yaml", &mas),
            ("codegen.yaml", "rename:\n  MasApi: SynapseApi\n"),
        ],
    );
    let e = matrix_codegen::generate(&dir, &options("rename")).unwrap_err();
    assert_eq!(
        e.to_string().trim(),
        "rename/codegen.yaml#/rename/MasApi: error: no generated type or route trait is named `MasApi`"
    );
}
