//! Generated crates build without warnings and their spec examples round-trip:
//! every fixture, and the whole upstream Matrix v1.19 API (client-server,
//! server-server, identity, application-service, push-gateway) when `../shared` is
//! present. One scratch workspace, so dependencies build once.

mod support;

use std::path::Path;

use support::{cargo, fixture_names, fixtures, options, upstream, write_crate, write_workspace};

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
            runtime: support::runtime(),
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
    write_workspace(&scratch, &members);

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

/// A crate generated with the runtime vendored is its own workspace with a copy
/// of the runtime crate, and builds (with and without the router) where nothing
/// else of this repository is.
#[test]
fn vendored_crate_builds_on_its_own() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vendored-crate");
    let opts = matrix_codegen::Options {
        crate_name: "vendored-api".into(),
        standalone: true,
        runtime: matrix_codegen::Runtime::Vendored,
    };
    let out = matrix_codegen::generate(&fixtures().join("operations"), &opts).unwrap();
    write_crate(&dir, &out.files);
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    std::fs::copy(lock, dir.join("Cargo.lock")).unwrap();
    for args in [
        &["check", "--all-targets", "--message-format=short"][..],
        &["check", "--no-default-features", "--message-format=short"],
    ] {
        let text = cargo(&dir, args);
        assert!(!text.contains("warning"), "cargo {args:?}:\n{text}");
    }
}

/// A client-only API file (`x-served: false`, the `client_only` fixture's
/// `mas.yaml`) builds with the `client` feature and is called the intended
/// way: `client_only/caller.rs` sends its operations with `runtime::Client`
/// to a local server and reads 201, 200, 204 and a 404 envelope back, and
/// sees only the served file's route in the router. The file alone, a crate
/// with nothing to serve, builds without a router, with and without features.
#[test]
fn client_only_operations_build_with_the_client_feature_and_are_called() {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("client-only-crates");
    std::fs::create_dir_all(&scratch).unwrap();
    let fixture = fixtures().join("client_only");
    let out = matrix_codegen::generate(&fixture, &options("client_only")).unwrap();
    write_crate(&scratch.join("api"), &out.files);
    let out =
        matrix_codegen::generate(&fixture.join("mas.yaml"), &options("client_only_alone")).unwrap();
    write_crate(&scratch.join("alone"), &out.files);

    let caller = scratch.join("caller");
    let _ = std::fs::remove_dir_all(&caller);
    std::fs::create_dir_all(caller.join("src")).unwrap();
    std::fs::write(
        caller.join("Cargo.toml"),
        "[package]\nname = \"client-only-caller\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\n\
         api = { path = \"../api\", package = \"fixture-client-only\", features = [\"client\"] }\n\
         http = \"1\"\nserde_json = \"1\"\ntokio = { version = \"1\", features = [\"rt\"] }\n",
    )
    .unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/client_only/caller.rs");
    std::fs::copy(source, caller.join("src/lib.rs")).unwrap();
    write_workspace(&scratch, &["api", "alone", "caller"].map(String::from));

    let text = cargo(
        &scratch,
        &["test", "-p", "client-only-caller", "--message-format=short"],
    );
    assert!(!text.contains("warning"), "{text}");
    assert!(text.contains("test result: ok. 4 passed"), "{text}");
    for args in [
        &[
            "check",
            "-p",
            "fixture-client-only-alone",
            "--all-targets",
            "--message-format=short",
        ][..],
        &[
            "check",
            "-p",
            "fixture-client-only-alone",
            "--no-default-features",
            "--features",
            "client",
            "--message-format=short",
        ],
        &[
            "check",
            "-p",
            "fixture-client-only-alone",
            "--no-default-features",
            "--message-format=short",
        ],
    ] {
        let text = cargo(&scratch, args);
        assert!(!text.contains("warning"), "cargo {args:?}:\n{text}");
    }
}

/// The list of runtime files the generator vendors is the runtime crate's folder.
#[test]
fn vendored_runtime_lists_every_runtime_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime");
    let mut on_disk = vec!["Cargo.toml".to_string()];
    for entry in std::fs::read_dir(root.join("src")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        on_disk.push(format!("src/{name}"));
    }
    on_disk.sort();
    let mut listed: Vec<String> = matrix_codegen::RUNTIME_FILES
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, on_disk);
}
