//! The workspace's skip rule (`tests/support/skip.rs`): a skipped test says so past
//! the runner's output capture and in the record `.ci/skipped` prints; in CI a skip
//! fails the test. Checked by running `probe` in a child process.

mod support;

use std::process::Command;

use support::skip;

#[test]
#[ignore = "run by skip_is_visible_recorded_and_a_failure_in_ci, in a child process"]
fn probe() {
    skip::skip("probe reason");
}

/// Runs `probe` with `CI` set to `ci` (or unset) and a record file of its own.
fn run_probe(ci: Option<&str>, record: &std::path::Path) -> std::process::Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", "probe"])
        .env("SKIPPED_TESTS_FILE", record)
        .env_remove("CI");
    if let Some(v) = ci {
        cmd.env("CI", v);
    }
    cmd.output().unwrap()
}

#[test]
fn skip_is_visible_recorded_and_a_failure_in_ci() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("skip-probe");
    std::fs::create_dir_all(&dir).unwrap();
    for ci in [None, Some(""), Some("0"), Some("false"), Some("FALSE")] {
        let record = dir.join("skipped.txt");
        let _ = std::fs::remove_file(&record);
        let out = run_probe(ci, &record);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "CI={ci:?}: {stderr}");
        // Not captured: the line is in the output of a plain `cargo test`.
        assert_eq!(stderr, "SKIPPED ci::probe: probe reason\n", "CI={ci:?}");
        assert_eq!(
            std::fs::read_to_string(&record).unwrap(),
            "SKIPPED ci::probe: probe reason\n"
        );
    }
    for ci in ["true", "1", "yes"] {
        let record = dir.join("skipped.txt");
        let _ = std::fs::remove_file(&record);
        let out = run_probe(Some(ci), &record);
        assert!(!out.status.success(), "CI={ci}: a skip fails");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("CI: ci::probe must not be skipped: probe reason"),
            "CI={ci}: {stdout}"
        );
        assert!(!record.exists(), "CI={ci}: nothing recorded");
    }
}
