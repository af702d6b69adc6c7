//! The `xtask` command line as a user runs it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{root, xtask};

fn fixtures() -> PathBuf {
    root().join("codegen/tests")
}

#[test]
fn regenerate_into_a_standalone_crate_that_builds_on_its_own() {
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("standalone-refs");
    let spec = fixtures().join("fixtures/refs");
    let out = xtask(&[
        "regenerate",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("1 API files, 1 operations"), "{summary}");
    let manifest = std::fs::read_to_string(out_dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("name = \"standalone-refs\"") && manifest.contains("[workspace]"),
        "{manifest}"
    );
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    std::fs::copy(lock, out_dir.join("Cargo.lock")).unwrap();
    let check = Command::new(env!("CARGO"))
        .args(["check", "--quiet", "--manifest-path"])
        .arg(out_dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", out_dir.join("target"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn regenerate_counts_the_client_only_operations() {
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("standalone-client-only");
    let spec = fixtures().join("fixtures/client_only");
    let out = xtask(&[
        "regenerate",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(": 2 API files, 4 operations (3 of them client-only), "),
        "{summary}"
    );
}

#[test]
fn bad_spec_fails_with_file_and_pointer_and_no_panic() {
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("never-written");
    let spec = fixtures().join("bad/unsupported");
    let out = xtask(&[
        "regenerate",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .all(|l| l.starts_with("unsupported/api.yaml#/paths/")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
    assert!(
        !out_dir.exists(),
        "nothing is written when generation fails"
    );
}

#[test]
fn missing_spec_directory_is_one_line() {
    let out = xtask(&[
        "regenerate",
        "--spec",
        "/nonexistent/spec",
        "--out",
        "/nonexistent/out",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("/nonexistent/spec: error: cannot read spec directory"),
        "{stderr}"
    );
}

#[test]
fn wrong_arguments_print_usage() {
    for args in [
        &["frobnicate"][..],
        &["regenerate", "--spec", "x"],
        &["regenerate", "--colour", "x"],
        &[],
    ] {
        let out = xtask(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("usage:"),
            "{args:?}"
        );
    }
}
