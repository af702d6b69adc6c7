//! `cargo xtask check --spec DIR --out DIR` on a small spec: each way an out
//! directory goes stale (a file differs, is missing, or is left over) fails with a
//! message naming the file, and — like rust-analyzer's `ensure_file_contents` — the
//! check rewrites the tree, so the next check passes.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::{root, xtask};

/// A fresh spec (a copy of the `enums` fixture) and its generated crate.
fn generated(name: &str) -> (PathBuf, PathBuf) {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("check")
        .join(name);
    let _ = std::fs::remove_dir_all(&base);
    let (spec, out) = (base.join("spec"), base.join("out"));
    std::fs::create_dir_all(&spec).unwrap();
    std::fs::copy(
        root().join("codegen/tests/fixtures/enums/api.yaml"),
        spec.join("api.yaml"),
    )
    .unwrap();
    let r = run(&["regenerate"], &spec, &out);
    assert!(r.status.success(), "{}", stderr(&r));
    (spec, out)
}

fn run(command: &[&str], spec: &Path, out: &Path) -> Output {
    let mut args = command.to_vec();
    args.extend([
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    xtask(&args)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `check` fails naming `problem` first, says it updated the tree, and a second
/// `check` passes. Returns the first check's report.
fn fails_then_passes(spec: &Path, out: &Path, problem: &str) -> String {
    let r = run(&["check"], spec, out);
    assert_eq!(r.status.code(), Some(1), "{}", stdout(&r));
    let err = stderr(&r);
    let first = err.lines().next().unwrap_or_default();
    assert_eq!(first, format!("{}/{problem}", out.display()), "{err}");
    assert!(
        err.ends_with(&format!(
            "\n\n{}/ was out of date with {}/: it is updated now; review and commit the changes\n",
            out.display(),
            spec.display()
        )),
        "{err}"
    );
    let again = run(&["check"], spec, out);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    err
}

#[test]
fn check_passes_on_a_fresh_tree() {
    let (spec, out) = generated("fresh");
    let r = run(&["check"], &spec, &out);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    assert!(
        stdout(&r).starts_with(&format!("{}/ matches {}/ (", out.display(), spec.display())),
        "{}",
        stdout(&r)
    );
}

#[test]
fn a_file_that_differs_is_named_with_a_diff_and_rewritten() {
    let (spec, out) = generated("differs");
    let lib = out.join("src/lib.rs");
    let fresh = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, format!("{fresh}// edited by hand\n")).unwrap();
    let err = fails_then_passes(&spec, &out, "src/lib.rs differs:");
    let lines = fresh.lines().count();
    assert!(
        err.contains(&format!(
            "differs:\n@@ line {} @@\n-// edited by hand\n(- committed, + regenerated)\n",
            lines + 1
        )),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&lib).unwrap(), fresh);
}

#[test]
fn a_missing_file_is_named_and_written() {
    let (spec, out) = generated("missing");
    let lib = out.join("src/lib.rs");
    let fresh = std::fs::read_to_string(&lib).unwrap();
    std::fs::remove_file(&lib).unwrap();
    fails_then_passes(&spec, &out, "src/lib.rs is missing");
    assert_eq!(std::fs::read_to_string(&lib).unwrap(), fresh);
}

#[test]
fn a_left_over_file_is_named_and_removed() {
    let (spec, out) = generated("left-over");
    let extra = out.join("src/old_area/gone.rs");
    std::fs::create_dir_all(extra.parent().unwrap()).unwrap();
    std::fs::write(&extra, "// from an earlier spec\n").unwrap();
    fails_then_passes(&spec, &out, "src/old_area/gone.rs is no longer generated");
    assert!(!extra.exists());
    assert!(!extra.parent().unwrap().exists(), "its empty directory too");
}

#[test]
fn a_spec_change_makes_the_tree_stale() {
    let (spec, out) = generated("spec-change");
    let api = spec.join("api.yaml");
    let text = std::fs::read_to_string(&api).unwrap();
    std::fs::write(
        &api,
        text.replacen("operationId: ", "operationId: renamed", 1),
    )
    .unwrap();
    let r = run(&["check"], &spec, &out);
    assert_eq!(r.status.code(), Some(1));
    assert!(stderr(&r).contains(" differs:\n"), "{}", stderr(&r));
    let again = run(&["check"], &spec, &out);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
}

#[test]
fn check_takes_both_flags_or_none() {
    for args in [
        &["check", "--spec", "x"][..],
        &["check", "--out", "x"],
        &["check", "--frobnicate", "x"],
    ] {
        let r = xtask(args);
        assert_eq!(r.status.code(), Some(1), "{args:?}");
        assert!(stderr(&r).contains("usage:"), "{args:?}");
    }
}
