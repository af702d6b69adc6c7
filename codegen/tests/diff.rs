//! The semantic API diff: a fixture pair (`tests/diff/<case>/{old,new}`) per kind
//! of change, each with its expected report (`report.txt`), and the real pair
//! Matrix v1.15 → v1.19 with its report checked in under `snapshots/`. Run with
//! `UPDATE_SNAPSHOTS=1` to accept changed reports, then read the diff.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use matrix_codegen::diff::{diff, Change, ChangeKind, Impact, Report, Scope};
use matrix_codegen::ir::Api;
use matrix_codegen::load_spec;
use support::{snapshot_differs, upstream};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diff")
}

fn cases() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn load(path: &Path) -> Api {
    load_spec(path)
        .unwrap_or_else(|e| panic!("{}:\n{e}", path.display()))
        .api
}

fn case(name: &str) -> Report {
    let dir = cases_dir().join(name);
    diff(&load(&dir.join("old")), &load(&dir.join("new")), Scope::All)
}

/// The one change at `at` in the operation `key`.
fn change<'a>(report: &'a Report, key: &str, at: &str) -> &'a Change {
    let found: Vec<&Change> = report
        .changes()
        .filter(|(op, c)| op.key() == key && c.at == at)
        .map(|(_, c)| c)
        .collect();
    assert_eq!(found.len(), 1, "{key} {at} in:\n{}", report.to_text());
    found[0]
}

fn impacts(c: &Change) -> (Impact, Impact) {
    (c.clients, c.servers)
}

const BREAKING: Impact = Impact::Breaking;
const COMPATIBLE: Impact = Impact::Compatible;

#[test]
fn fixture_pairs_produce_their_reports() {
    let mut stale = Vec::new();
    for name in cases() {
        let text = case(&name).to_text();
        if snapshot_differs(&cases_dir().join(&name).join("report.txt"), &text) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "reports differ for {stale:?}; review with UPDATE_SNAPSHOTS=1 cargo test -p matrix-codegen --test diff and git diff"
    );
}

#[test]
fn every_kind_of_change_has_a_fixture_pair() {
    let seen: BTreeSet<ChangeKind> = cases()
        .iter()
        .flat_map(|name| {
            case(name)
                .changes()
                .map(|(_, c)| c.kind)
                .collect::<Vec<_>>()
        })
        .collect();
    let missing: Vec<&str> = ChangeKind::ALL
        .iter()
        .filter(|k| !seen.contains(k))
        .map(|k| k.as_str())
        .collect();
    assert!(missing.is_empty(), "no fixture shows {missing:?}");
}

#[test]
fn moving_endpoints_between_files_and_restructuring_refs_is_not_a_change() {
    // Seed 1: endpoints moved out of registration.yaml, a body inlined in one
    // version is a `$ref` (through `allOf`) in the other, security schemes are
    // renamed, descriptions rewritten.
    let report = case("moved");
    assert!(report.is_empty(), "{}", report.to_text());
}

#[test]
fn the_seed_changes_are_classified_for_clients_and_servers() {
    // Seed 0: requestToken responses gain `submit_url`; `id_server` stops being
    // required.
    let r = case("request_token");
    let op = "POST /_matrix/client/v3/account/3pid/email/requestToken";
    let submit_url = change(&r, op, "response 200.submit_url");
    assert_eq!(submit_url.kind, ChangeKind::Added);
    assert_eq!(impacts(submit_url), (COMPATIBLE, COMPATIBLE));
    let id_server = change(&r, op, "request.id_server");
    assert_eq!(id_server.kind, ChangeKind::NowOptional);
    assert_eq!(impacts(id_server), (COMPATIBLE, BREAKING));
    assert_eq!(id_server.reason, "existing servers expect it to be present");

    // Seed 3: the query-string access token goes away.
    let r = case("security");
    let query = change(&r, "GET /_matrix/client/v3/account/whoami", "security");
    assert_eq!(query.kind, ChangeKind::SchemeRemoved);
    assert!(query.detail.contains("`access_token` query parameter"));
    assert_eq!(impacts(query), (BREAKING, COMPATIBLE));
}

#[test]
fn the_same_change_breaks_the_side_that_produces_or_consumes_the_value() {
    let r = case("params");
    let op = "GET /_matrix/client/v3/rooms/{room_id}/messages";
    // Request values: clients produce, servers consume.
    let from = change(&r, op, "query.from");
    assert_eq!(from.kind, ChangeKind::NowRequired);
    assert_eq!(impacts(from), (BREAKING, COMPATIBLE));
    assert_eq!(from.reason, "existing clients may omit it");
    assert_eq!(impacts(change(&r, op, "query.to")), (COMPATIBLE, BREAKING));
    // A renamed path parameter is the same endpoint: no change reported.
    assert!(r.changes().all(|(_, c)| !c.at.starts_with("path.")));

    // Response values: servers produce, clients consume.
    let r = case("fields");
    let op = "POST /_matrix/client/v3/account/deactivate";
    let removed: Vec<(ChangeKind, Impact, Impact)> = r
        .changes()
        .filter(|(_, c)| c.at == "response 200.removed")
        .map(|(_, c)| (c.kind, c.clients, c.servers))
        .collect();
    assert_eq!(
        removed,
        [
            (ChangeKind::NowOptional, BREAKING, COMPATIBLE),
            (ChangeKind::NowNullable, BREAKING, COMPATIBLE)
        ]
    );
    let added = change(&r, op, "response 200.devices[].display_name");
    assert_eq!(added.kind, ChangeKind::Added);
    assert_eq!(impacts(added), (COMPATIBLE, BREAKING));
    let value = change(&r, op, "response 200.id_server_unbind_result");
    assert_eq!(value.kind, ChangeKind::EnumValueAdded);
    assert_eq!(impacts(value), (BREAKING, COMPATIBLE));
}

#[test]
fn json_and_markdown_carry_every_change() {
    for name in cases() {
        let report = case(&name);
        let json = report.to_json();
        let listed: Vec<&serde_json::Value> = json["operations"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|op| op["changes"].as_array().unwrap())
            .collect();
        let summary = report.summary();
        assert_eq!(listed.len(), summary.changes, "{name}");
        assert_eq!(json["summary"]["changes"], summary.changes, "{name}");
        for c in &listed {
            let kind = c["kind"].as_str().unwrap();
            assert!(ChangeKind::parse(kind).is_some(), "{name}: {kind}");
        }
        let markdown = report.to_markdown();
        let rows = markdown.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(rows, summary.changes, "{name}:\n{markdown}");
    }
}

#[test]
fn a_spec_compared_with_itself_has_no_changes() {
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("../api");
    let report = diff(&load(&api), &load(&api), Scope::All);
    assert!(report.is_empty(), "{}", report.to_text());
}

/// Lowers the named API files of one upstream release (those that exist there).
fn upstream_files(dir: &Path, names: &[String]) -> Api {
    let files: Vec<PathBuf> = names
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .collect();
    matrix_codegen::lower::lower(dir, &files).unwrap()
}

#[test]
fn upstream_v1_15_to_v1_19_matches_its_checked_in_report() {
    let (Some(v15), Some(v19)) = (upstream("v1.15"), upstream("v1.19")) else {
        return;
    };
    // The files of the issue: between these releases they changed only in prose
    // (and registration.yaml dropped unused `components`), which must not count.
    let account: Vec<String> = [
        "registration",
        "password_management",
        "account_deactivation",
        "openid",
    ]
    .iter()
    .map(|f| format!("client-server/{f}.yaml"))
    .collect();
    // Everything api/ describes, which did change.
    let mut described: Vec<String> =
        matrix_codegen::discover(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../api"))
            .unwrap()
            .iter()
            .map(|p| {
                let rel: Vec<String> = p
                    .iter()
                    .rev()
                    .take(2)
                    .map(|c| c.to_string_lossy().into_owned())
                    .collect();
                format!("{}/{}", rel[1], rel[0])
            })
            .collect();
    described.sort();

    let mut stale = Vec::new();
    for (name, files) in [("account", &account), ("api_files", &described)] {
        let report = diff(
            &upstream_files(&v15, files),
            &upstream_files(&v19, files),
            Scope::All,
        );
        let text = format!(
            "# cargo xtask diff, upstream v1.15 -> v1.19, files:\n{}\n\n{}",
            files
                .iter()
                .map(|f| format!("#   {f}"))
                .collect::<Vec<_>>()
                .join("\n"),
            report.to_text()
        );
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/snapshots/upstream_v1.15_v1.19_{name}.txt"));
        if snapshot_differs(&file, &text) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "reports differ for {stale:?}; review with UPDATE_SNAPSHOTS=1 cargo test -p matrix-codegen --test diff and git diff"
    );
}
