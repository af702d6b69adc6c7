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
