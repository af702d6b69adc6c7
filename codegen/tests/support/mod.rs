//! Shared by the codegen integration tests (each uses part of it).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

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
        runtime_dir: None,
    }
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
