//! Snapshot tests: each fixture spec (one per construct) generates exactly the
//! committed code in `snapshots/`. Run with `UPDATE_SNAPSHOTS=1` to accept changes,
//! then read the diff.

mod support;

use support::{fixture_names, fixtures, options, snapshot_differs};

#[test]
fn fixtures_generate_their_snapshots() {
    let mut stale = Vec::new();
    for name in fixture_names() {
        let out = matrix_codegen::generate(&fixtures().join(&name), &options(&name))
            .unwrap_or_else(|e| panic!("fixture {name} does not generate:\n{e}"));
        // The parts that depend on the fixture: its types and its operations.
        let mut snapshot = String::new();
        for (path, text) in &out.files {
            if path.starts_with("runtime/") || path == "Cargo.toml" || path.ends_with("mod.rs") {
                continue;
            }
            snapshot.push_str(&format!("// ===== {path} =====\n{text}\n"));
        }
        let file = fixtures()
            .join("../snapshots")
            .join(format!("{name}.rs.txt"));
        if snapshot_differs(&file, &snapshot) {
            stale.push(name);
        }
    }
    assert!(stale.is_empty(), "snapshots differ for {stale:?}; review with UPDATE_SNAPSHOTS=1 cargo test -p matrix-codegen and git diff");
}

#[test]
fn generation_is_deterministic() {
    for name in fixture_names() {
        let a = matrix_codegen::generate(&fixtures().join(&name), &options(&name)).unwrap();
        let b = matrix_codegen::generate(&fixtures().join(&name), &options(&name)).unwrap();
        assert_eq!(a.files, b.files, "{name}");
    }
}
