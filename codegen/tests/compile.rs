//! Generated crates build without warnings and their spec examples round-trip:
//! every fixture, and the whole upstream Matrix v1.19 API (client-server,
//! server-server, identity, application-service, push-gateway) when `../shared` is
//! present. One scratch workspace, so dependencies build once.

mod support;

use std::path::Path;
use std::process::Command;

use support::{fixture_names, fixtures, options, upstream};

fn write_crate(dir: &Path, files: &std::collections::BTreeMap<String, String>) {
    let _ = std::fs::remove_dir_all(dir);
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

fn cargo(scratch: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .args(args)
        .arg("--manifest-path")
        .arg(scratch.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", scratch.join("target"))
        .output()
        .expect("cargo runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "cargo {args:?} failed:\n{text}");
    text
}

#[test]
fn generated_crates_build_cleanly_and_examples_round_trip() {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("generated-crates");
    std::fs::create_dir_all(&scratch).unwrap();
    let mut members = Vec::new();
    for name in fixture_names() {
        let out = matrix_codegen::generate(&fixtures().join(&name), &options(&name)).unwrap();
        write_crate(&scratch.join(&name), &out.files);
        members.push(name);
    }
    let upstream = upstream("v1.19");
    if let Some(dir) = &upstream {
        let opts = matrix_codegen::Options {
            crate_name: "upstream-v1-19".into(),
            standalone: false,
            runtime_dir: None,
        };
        let out =
            matrix_codegen::generate(dir, &opts).unwrap_or_else(|e| panic!("upstream v1.19:\n{e}"));
        assert_eq!(
            (out.api_files, out.operations),
            (113, 235),
            "all of upstream v1.19"
        );
        write_crate(&scratch.join("upstream"), &out.files);
        members.push("upstream".into());
    }
    let list: Vec<String> = members.iter().map(|m| format!("{m:?}")).collect();
    std::fs::write(
        scratch.join("Cargo.toml"),
        format!(
            "[workspace]\nresolver = \"2\"\nmembers = [{}]\n",
            list.join(", ")
        ),
    )
    .unwrap();
    // Resolve to the versions this repository is tested with.
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    if lock.exists() && !scratch.join("Cargo.lock").exists() {
        std::fs::copy(lock, scratch.join("Cargo.lock")).unwrap();
    }

    let mut test_args = vec!["test", "--workspace", "--message-format=short"];
    if upstream.is_some() {
        // Upstream's own examples disagree with its schemas in a few places (keys a
        // schema does not declare); it must compile, its examples are not ours.
        test_args.extend(["--exclude", "upstream-v1-19"]);
    }
    let text = cargo(&scratch, &test_args);
    if upstream.is_some() {
        let check = cargo(
            &scratch,
            &[
                "check",
                "-p",
                "upstream-v1-19",
                "--all-targets",
                "--message-format=short",
            ],
        );
        assert!(
            !check.contains("warning"),
            "upstream crate has warnings:\n{check}"
        );
    }
    assert!(
        !text.contains("warning"),
        "generated code has warnings:\n{text}"
    );
    assert!(!text.contains("FAILED"), "{text}");
}
