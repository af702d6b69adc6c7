//! Shared by the codegen integration tests (each uses part of it).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every fixture directory, sorted.
pub fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .expect("fixtures dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn options(name: &str) -> matrix_codegen::Options {
    matrix_codegen::Options {
        crate_name: format!("fixture-{}", name.replace('_', "-")),
        standalone: false,
        runtime: runtime(),
    }
}

/// The runtime crate of this repository, as a path dependency: the scratch
/// workspaces hold many generated crates, and one runtime builds once.
pub fn runtime() -> matrix_codegen::Runtime {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime");
    matrix_codegen::Runtime::Path(dir.to_string_lossy().into_owned())
}

/// The workspace's one definition of "in CI" and of a visible skip.
#[path = "../../../tests/support/skip.rs"]
pub mod skip;

/// `../shared/matrix-spec/<version>/data/api`, when present. A missing copy skips
/// the caller (see [`skip`]); in CI it is a failure.
pub fn upstream(version: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/matrix-spec")
        .join(version)
        .join("data/api");
    if dir.is_dir() {
        return Some(dir);
    }
    skip::skip(&format!(
        "../shared/matrix-spec/{version}/data/api not found beside the project"
    ));
    None
}

/// Compares `text` with the committed file; with `UPDATE_SNAPSHOTS` set, writes it
/// instead. Returns whether they differed (and were not updated).
pub fn snapshot_differs(file: &Path, text: &str) -> bool {
    let committed = std::fs::read_to_string(file).unwrap_or_default();
    if committed == text {
        return false;
    }
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
        return false;
    }
    true
}

/// Writes a generated crate's files under `dir`, replacing what was there.
pub fn write_crate(dir: &Path, files: &std::collections::BTreeMap<String, String>) {
    let _ = std::fs::remove_dir_all(dir);
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// Runs cargo on the scratch workspace `scratch`: success or not, and everything
/// it printed. Every scratch workspace shares one target directory, so the
/// generated crates' dependencies build once.
pub fn try_cargo(scratch: &Path, args: &[&str]) -> (bool, String) {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("generated-crates/target");
    let out: Output = Command::new(env!("CARGO"))
        .args(args)
        .arg("--manifest-path")
        .arg(scratch.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("cargo runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// [`try_cargo`] that must succeed; returns what it printed.
pub fn cargo(scratch: &Path, args: &[&str]) -> String {
    let (ok, text) = try_cargo(scratch, args);
    assert!(ok, "cargo {args:?} failed:\n{text}");
    text
}

/// Writes the workspace manifest of a scratch workspace with these members, and
/// this repository's `Cargo.lock`, so dependencies resolve to the tested versions.
pub fn write_workspace(scratch: &Path, members: &[String]) {
    let list: Vec<String> = members.iter().map(|m| format!("{m:?}")).collect();
    std::fs::write(
        scratch.join("Cargo.toml"),
        format!(
            "[workspace]\nresolver = \"2\"\nmembers = [{}]\n",
            list.join(", ")
        ),
    )
    .unwrap();
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    if lock.exists() && !scratch.join("Cargo.lock").exists() {
        std::fs::copy(lock, scratch.join("Cargo.lock")).unwrap();
    }
}
