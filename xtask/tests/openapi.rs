//! `cargo xtask openapi`: the bundled OpenAPI document of api/ that the fuzz run
//! reads.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{api_calling_synapse, root, xtask};

fn bundle() -> (Value, String) {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openapi/api.json");
    let run = xtask(&["openapi", "--out", out.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let value = serde_json::from_str(&text).expect("the bundle is JSON");
    (value, text)
}

fn operation<'a>(bundle: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &bundle["paths"][path][method];
    assert!(op.is_object(), "no {method} {path} in the bundle");
    op
}

fn errcodes(response: &Value) -> Vec<&str> {
    response["x-framework-errcodes"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap()).collect())
        .unwrap_or_default()
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_bundle_has_every_operation_under_its_full_path_and_resolves_every_ref() {
    let (bundle, text) = bundle();
    assert_eq!(bundle["openapi"], "3.1.0");
    assert_eq!(bundle["info"]["version"], "v1.19");
    let operations: Vec<String> = bundle["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    assert_eq!(operations.len(), 78, "{operations:#?}");
    for expected in [
        "POST /_matrix/client/v3/register",
        "GET /_matrix/client/v1/admin/lock/{userId}",
        "GET /_matrix/federation/v1/openid/userinfo",
        "GET /.well-known/matrix/client",
    ] {
        assert!(operations.iter().any(|o| o == expected), "{expected}");
    }
    // Every reference points into the document's own schemas.
    let schemas = bundle["components"]["schemas"].as_object().unwrap();
    let mut all = Vec::new();
    refs(&bundle, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("a reference outside components/schemas: {r}"));
        assert!(schemas.contains_key(name), "{r} points at nothing");
    }
    // The security schemes are kept; an operation's file-level security is explicit.
    let schemes = bundle["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["accessTokenBearer"]["scheme"], "bearer");
    assert_eq!(schemes["accessTokenQuery"]["in"], "query");
    let whoami = operation(&bundle, "get", "/_matrix/client/v3/account/whoami");
    assert!(whoami["security"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!({"accessTokenBearer": []})));
    // Deterministic: a second run writes the same bytes, and stdout is the same.
    let (_, again) = bundle_again();
    assert_eq!(text, again);
}

fn bundle_again() -> (Value, String) {
    let run = xtask(&["openapi"]);
    assert!(run.status.success());
    let text = String::from_utf8(run.stdout).unwrap();
    (serde_json::from_str(&text).unwrap(), text)
}

#[test]
fn the_routers_own_answers_are_added_where_the_operation_does_not_list_them() {
    let (bundle, _) = bundle();
    // `/logout` lists only 200: the router may answer 401 (but a locked account
    // may still log out: no M_USER_LOCKED).
    let logout = operation(&bundle, "post", "/_matrix/client/v3/logout");
    let added = &logout["responses"]["401"];
    assert_eq!(errcodes(added), ["M_MISSING_TOKEN", "M_UNKNOWN_TOKEN"]);
    let schema = &added["content"]["application/json"]["schema"];
    assert_eq!(schema["allOf"][0]["$ref"], "#/components/schemas/Error");
    assert_eq!(
        schema["allOf"][1]["properties"]["errcode"]["enum"],
        serde_json::json!(["M_MISSING_TOKEN", "M_UNKNOWN_TOKEN"])
    );
    // A body and no 400 or 413 of its own.
    let add = operation(&bundle, "post", "/_matrix/client/v3/account/3pid/add");
    assert_eq!(
        errcodes(&add["responses"]["400"]),
        ["M_NOT_JSON", "M_BAD_JSON", "M_MISSING_PARAM"]
    );
    assert_eq!(errcodes(&add["responses"]["413"]), ["M_TOO_LARGE"]);
    // Parameters only.
    let available = operation(&bundle, "get", "/_matrix/client/v3/register/available");
    assert!(available["responses"].get("413").is_none());
    // A declared 400 of Matrix errors stays as declared (any errcode).
    let register = operation(&bundle, "post", "/_matrix/client/v3/register");
    assert_eq!(
        register["responses"]["400"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Error"
    );
    // A declared 401 that is a UIA challenge also admits the router's 401 (with
    // optional security, a server that needs a token may still say it is missing).
    let password = operation(&bundle, "post", "/_matrix/client/v3/account/password");
    let any_of = &password["responses"]["401"]["content"]["application/json"]["schema"]["anyOf"];
    assert_eq!(any_of[0]["$ref"], "#/components/schemas/AuthResponse");
    assert_eq!(
        any_of[1]["allOf"][1]["properties"]["errcode"]["enum"],
        serde_json::json!(["M_MISSING_TOKEN", "M_UNKNOWN_TOKEN", "M_USER_LOCKED"])
    );
    // Public, without parameters or body: nothing to add.
    let wellknown = operation(&bundle, "get", "/.well-known/matrix/client");
    let codes: Vec<&String> = wellknown["responses"].as_object().unwrap().keys().collect();
    assert_eq!(codes, ["200", "404"]);
}

/// A file api/ calls but does not serve (`x-served: false`) is not part of
/// what the server answers: the bundle (and so the fuzz run) leaves it out,
/// its security scheme too.
#[test]
fn the_bundle_leaves_out_a_file_api_only_calls() {
    let api = api_calling_synapse("openapi-client-only", false);
    let run = xtask(&["openapi", "--spec", api.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let with_synapse: Value = serde_json::from_slice(&run.stdout).unwrap();
    let (bundle, _) = bundle();
    // The same operations and schemes as api/'s. (Schema components are named
    // like the generated types, which the file's own `Error` schema takes
    // part in naming: `Error` and it are told apart by their directories.)
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&with_synapse["paths"]), keys(&bundle["paths"]));
    assert!(!keys(&with_synapse["paths"])
        .iter()
        .any(|p| p.starts_with("/_synapse")));
    for (path, item) in bundle["paths"].as_object().unwrap() {
        assert_eq!(
            keys(&with_synapse["paths"][path]),
            keys(item),
            "the methods of {path}"
        );
    }
    let schemes = &with_synapse["components"]["securitySchemes"];
    assert_eq!(schemes, &bundle["components"]["securitySchemes"]);
    assert!(schemes.get("sharedSecret").is_none());
}

#[test]
fn a_bad_spec_fails_with_one_line_per_problem_naming_file_and_pointer() {
    let spec = root().join("codegen/tests/bad/unsupported");
    let run = xtask(&["openapi", "--spec", spec.to_str().unwrap()]);
    assert!(!run.status.success());
    assert!(run.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!stderr.trim().is_empty());
    for line in stderr.lines() {
        assert!(
            line.starts_with("unsupported/api.yaml#/paths/") && line.contains(": error: "),
            "{stderr}"
        );
    }

    let run = xtask(&["openapi", "--spec", "no/such/dir"]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        stderr.trim(),
        "no/such/dir: no such spec directory or file",
        "{stderr}"
    );
}
