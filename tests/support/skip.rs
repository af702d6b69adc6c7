//! One definition of "in CI" and one way for a test to skip itself, shared by
//! every test crate of the workspace (`matrix-tests` has it as `skip`; the
//! codegen and xtask tests include this file by `#[path]`).
//!
//! A skip is never silent: it prints a `SKIPPED <test>: <reason>` line past the
//! test runner's output capture and appends it to [`record_file`], which
//! `.ci/skipped` prints at the end of `.ci/run`. In CI a skip is a failure.

use std::io::Write;
use std::path::PathBuf;

/// Whether this is a CI run: `CI` is set to anything but empty, `0` or `false`
/// (GitHub Actions, GitLab CI and most others set `CI=true`). `.ci/run` applies
/// the same rule.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

/// Skips the calling test for `reason` (the caller returns right after); in CI it
/// fails the test instead.
pub fn skip(reason: &str) {
    let test = test_name();
    assert!(!in_ci(), "CI: {test} must not be skipped: {reason}");
    let line = format!("SKIPPED {test}: {reason}\n");
    // `eprintln!` would be captured (and hidden) by the test runner.
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(path) = record_file() {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path);
        if let Ok(mut file) = file {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// `<test binary>::<test>`, e.g. `compile::generated_crates_build_cleanly`.
fn test_name() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            Some((name, _hash)) => name.to_string(),
            None => stem,
        })
        .unwrap_or_default();
    let thread = std::thread::current();
    format!("{binary}::{}", thread.name().unwrap_or("?"))
}

/// `$SKIPPED_TESTS_FILE`, or else `<target dir>/skipped-tests.txt` (test binaries
/// run from `<target dir>/<profile>/deps/`).
pub fn record_file() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("SKIPPED_TESTS_FILE") {
        return Some(file.into());
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("skipped-tests.txt"))
}
