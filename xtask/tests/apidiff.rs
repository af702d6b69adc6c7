//! `cargo xtask diff` and `cargo xtask drift` as a user runs them: reports,
//! formats, exit codes (0 nothing failing, 1 changes, 2 unreadable input).

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::{api_calling_synapse, copy_dir, root, xtask};

/// `old` and `new` of a diff fixture pair.
fn pair(case: &str) -> (String, String) {
    let dir = root().join("codegen/tests/diff").join(case);
    let s = |side: &str| dir.join(side).to_string_lossy().into_owned();
    (s("old"), s("new"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn diff_exits_0_when_identical_and_1_on_changes() {
    let (old, new) = pair("moved");
    let out = xtask(&["diff", &old, &new]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "No API changes.\n");

    let (old, new) = pair("request_token");
    let out = xtask(&["diff", &old, &new]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.starts_with(
        "POST /_matrix/client/v3/account/3pid/email/requestToken (requestTokenTo3PIDEmail)\n"
    ));
    assert!(text.contains(
        "  request.id_server: became optional\n      breaking for servers: existing servers expect it to be present\n"
    ), "{text}");
}

#[test]
fn fail_on_picks_which_changes_fail() {
    // request_token breaks servers (id_server became optional) but no client.
    let (old, new) = pair("request_token");
    for (fail_on, code) in [
        ("any", 1),
        ("breaking", 1),
        ("breaking-for-servers", 1),
        ("breaking-for-clients", 0),
    ] {
        let out = xtask(&["diff", &old, &new, "--fail-on", fail_on]);
        assert_eq!(out.status.code(), Some(code), "--fail-on {fail_on}");
        assert!(
            stdout(&out).contains("submit_url"),
            "the report is printed either way"
        );
    }
}

#[test]
fn json_and_markdown_outputs() {
    let (old, new) = pair("security");
    let out = xtask(&["diff", &old, &new, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json["summary"]["changes"], 4);
    assert_eq!(json["summary"]["breaking_for_clients"], 2);
    let whoami = json["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["operation_id"] == "whoami")
        .unwrap();
    assert_eq!(whoami["method"], "GET");
    assert_eq!(whoami["path"], "/_matrix/client/v3/account/whoami");
    assert_eq!(whoami["changes"][0]["kind"], "security-scheme-removed");
    assert_eq!(whoami["changes"][0]["clients"], "breaking");
    assert_eq!(whoami["changes"][0]["servers"], "compatible");

    let out = xtask(&["diff", &old, &new, "--markdown"]);
    let md = stdout(&out);
    assert!(
        md.contains("### `GET /_matrix/client/v3/account/whoami` (`whoami`)"),
        "{md}"
    );
    assert!(md.contains("| `security` | no longer accepts credentials in the `access_token` query parameter | **breaking** | compatible |"), "{md}");
}

#[test]
fn unreadable_input_exits_2_with_the_file_and_the_problem() {
    let (old, _) = pair("moved");
    let out = xtask(&["diff", &old, "/nonexistent/spec"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "/nonexistent/spec: no such spec directory or file\n"
    );

    let bad = root().join("codegen/tests/bad/unsupported");
    let out = xtask(&["diff", &old, bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.lines()
            .all(|l| l.starts_with("unsupported/api.yaml#/paths/")),
        "{err}"
    );

    for args in [
        &["diff", &old][..],
        &["diff", &old, &old, "--fail-on", "sometimes"],
        &["diff", &old, &old, "--yaml"],
        &["drift", "--upstream"],
    ] {
        let out = xtask(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains("usage:"), "{args:?}");
        assert!(!stderr(&out).contains("panicked"));
    }
}

fn upstream() -> Option<PathBuf> {
    let dir = root().join("../shared/matrix-spec/v1.19/data/api");
    if dir.is_dir() {
        return Some(dir);
    }
    support::skip::skip("../shared/matrix-spec/v1.19/data/api not found beside the project");
    None
}

/// A copy of api/ whose manifest is `edit`ed, for drift to check.
fn api_copy(name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(name)
        .join("api");
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&root().join("api"), &dir);
    let manifest = dir.join("upstream.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, edit(text)).unwrap();
    dir
}

#[test]
fn drift_passes_on_api_and_explains_its_deviations() {
    if upstream().is_none() {
        return;
    }
    let out = xtask(&["drift"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).starts_with("api/ matches upstream v1.19 in all 78 operations"),
        "{}",
        stdout(&out)
    );
}

fn drift(api: &Path, upstream: &str) -> Output {
    xtask(&[
        "drift",
        "--api",
        api.to_str().unwrap(),
        "--upstream",
        upstream,
    ])
}

#[test]
fn drift_fails_on_an_unexplained_difference_and_on_a_stale_deviation() {
    let Some(upstream) = upstream() else { return };
    let upstream = upstream.to_str().unwrap();

    // Without the deviation for `erase`'s default, that default is drift.
    let api = api_copy("drift-unexplained", |t| {
        let start = t
            .find("  - operation: POST /_matrix/client/v3/account/deactivate")
            .unwrap();
        let end = t[start..].find("  - operation: \"*\"").unwrap() + start;
        format!("{}{}", &t[..start], &t[end..])
    });
    let out = drift(&api, upstream);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "POST /_matrix/client/v3/account/deactivate (deactivateAccount)\n  \
         request.erase: default `false` added\n      \
         breaking for servers: existing servers do not apply it to an omitted value\n\n\
         1 operation affected (1 changed): 1 change, 0 breaking for clients, 1 breaking for servers.\n"
    );
    assert!(stderr(&out).contains("api/upstream.yaml does not explain it"));

    // A deviation that matches nothing must go (it is appended: its index is
    // the number of deviations api/ has).
    let manifest = std::fs::read_to_string(root().join("api/upstream.yaml")).unwrap();
    let index = manifest.matches("\n  - operation: ").count();
    let api = api_copy("drift-stale", |t| {
        t + "  - operation: GET /_matrix/client/v3/account/whoami\n    at: response 200.user_id\n    change: removed\n    reason: Not true.\n"
    });
    let out = drift(&api, upstream);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!("api/upstream.yaml#/deviations/{index}: `removed` at `response 200.user_id` in GET /_matrix/client/v3/account/whoami matches no difference from upstream v1.19: remove it\n")
    );
}

/// A file api/ calls but does not serve (`x-served: false`) describes another
/// party's API: its operations upstream does not have are not deviations
/// from the release (none is listed, and drift passes, saying so), while the
/// same file served is three operations added.
#[test]
fn drift_leaves_out_the_operations_of_a_file_api_only_calls() {
    let Some(upstream) = upstream() else { return };
    let upstream = upstream.to_str().unwrap();

    let api = api_calling_synapse("drift-client-only", false);
    let out = drift(&api, upstream);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.starts_with("api/ matches upstream v1.19 in all 78 operations, except "),
        "{text}"
    );
    assert!(
        text.ends_with("; 3 operations of files it calls but does not serve (`x-served: false`) are not in upstream v1.19 and were not compared\n"),
        "{text}"
    );

    let api = api_calling_synapse("drift-served", true);
    let out = drift(&api, upstream);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(
            "POST /_synapse/mas/provision_user (provisionUser)\n  operation: operation added\n"
        ),
        "{text}"
    );
    assert!(text.contains("3 operations affected"), "{text}");
}

#[test]
fn drift_rejects_a_bad_manifest_or_a_missing_upstream() {
    let api = api_copy("drift-bad-kind", |t| {
        t.replace("change: added", "change: appeared")
    });
    let out = xtask(&["drift", "--api", api.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("api/upstream.yaml#/deviations/3/change: error: unknown change `appeared`"),
        "{err}"
    );

    let api = api_copy("drift-no-upstream", |t| {
        t.replace("release: v1.19", "release: v1.99")
    });
    let out = xtask(&["drift", "--api", api.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("upstream v1.99 not found"),
        "{}",
        stderr(&out)
    );
}
