//! Compatible spec changes do not break implementers. `tests/compat/v2` adds an
//! optional request field, an optional query parameter (with a default) and
//! optional response fields to `tests/compat/v1`, changes `cargo xtask diff`
//! calls compatible for servers. A server written against v1's generated crate
//! the intended way (`implementer.rs`: constructors and field assignment) must
//! build against both crates; the same server written with struct literals and
//! exhaustive patterns (`literal.rs`), which v2 would break, must already be
//! rejected against v1 — that is what `#[non_exhaustive]` is for.

mod support;

use std::path::{Path, PathBuf};

use matrix_codegen::diff::{diff, Impact, Scope};
use support::{cargo, try_cargo, write_crate, write_workspace};

fn compat() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat")
}

/// A crate `name` whose `src/lib.rs` is `source`, depending on `api-<version>`
/// under the name `api`.
fn write_user(scratch: &Path, name: &str, version: &str, source: &str) {
    let dir = scratch.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\napi = {{ path = \"../api-{version}\", package = \"compat-api-{version}\" }}\n"
        ),
    )
    .unwrap();
    let text = std::fs::read_to_string(compat().join(source)).unwrap();
    std::fs::write(dir.join("src/lib.rs"), text).unwrap();
}

#[test]
fn v1_implementation_builds_against_v2_and_struct_literals_do_not_build() {
    let spec = |v: &str| compat().join(v).join("account");

    // The change is one the diff calls compatible for servers.
    let load = |v: &str| matrix_codegen::load_spec(&spec(v)).unwrap().api;
    let report = diff(&load("v1"), &load("v2"), Scope::All);
    assert!(!report.is_empty(), "v1 and v2 differ");
    for (op, change) in report.changes() {
        assert_eq!(
            change.servers,
            Impact::Compatible,
            "{}: {} {}",
            op.key(),
            change.at,
            change.detail
        );
    }

    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat-crates");
    std::fs::create_dir_all(&scratch).unwrap();
    for v in ["v1", "v2"] {
        let options = matrix_codegen::Options {
            crate_name: format!("compat-api-{v}"),
            standalone: false,
            runtime: support::runtime(),
        };
        let out = matrix_codegen::generate(&spec(v), &options).unwrap();
        write_crate(&scratch.join(format!("api-{v}")), &out.files);
    }
    write_user(&scratch, "implementer-v1", "v1", "implementer.rs");
    write_user(&scratch, "implementer-v2", "v2", "implementer.rs");
    write_user(&scratch, "literal-v1", "v1", "literal.rs");
    let members = [
        "api-v1",
        "api-v2",
        "implementer-v1",
        "implementer-v2",
        "literal-v1",
    ];
    write_workspace(&scratch, &members.map(String::from));

    let built = cargo(
        &scratch,
        &[
            "build",
            "-p",
            "implementer-v1",
            "-p",
            "implementer-v2",
            "--message-format=short",
        ],
    );
    assert!(!built.contains("warning"), "{built}");

    let (ok, text) = try_cargo(
        &scratch,
        &["build", "-p", "literal-v1", "--message-format=short"],
    );
    assert!(
        !ok,
        "struct literals of generated types must not build:\n{text}"
    );
    // E0639: a struct literal of a non-exhaustive struct; E0638: an exhaustive
    // pattern of one. Both for every kind: a body, a shared type, a request.
    for expected in [
        "literal-v1/src/lib.rs:9:5: error[E0639]",
        "literal-v1/src/lib.rs:13:9: error[E0638]",
        "literal-v1/src/lib.rs:14:5: error[E0639]",
    ] {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }
}
