//! Bad specs fail with every problem named by file and JSON pointer, never a panic.

use std::path::{Path, PathBuf};

fn bad() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad")
}

fn errors(name: &str) -> Vec<String> {
    let options = matrix_codegen::Options {
        crate_name: "bad".into(),
        standalone: false,
        runtime_dir: None,
    };
    match matrix_codegen::generate(&bad().join(name), &options) {
        Ok(_) => panic!("{name} should not generate"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn missing_file_names_the_referring_place() {
    let e = errors("missing_file");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("missing_file/api.yaml#/paths/~1a/get/responses/200/content/application~1json/schema: error: cannot read `missing_file/defs/nowhere.yaml`"), "{e:?}");
}

#[test]
fn broken_pointer_names_the_target() {
    let e = errors("broken_pointer");
    assert!(
        e[0].contains(
            "points at nothing (no `broken_pointer/api.yaml#/components/schemas/missing`)"
        ),
        "{e:?}"
    );
}

#[test]
fn unsupported_keywords_are_all_reported_at_once() {
    let e = errors("unsupported");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].contains("/properties/p: error: schema keyword `not` is not supported"),
        "{e:?}"
    );
    assert!(
        e[1].contains("/properties/q/properties/r: error: schema keyword `if` is not supported"),
        "{e:?}"
    );
}

#[test]
fn reference_cycles_are_detected() {
    let e = errors("ref_cycle");
    assert!(e.iter().any(|m| m.contains("`$ref` cycle")), "{e:?}");
}

#[test]
fn path_parameters_must_be_declared() {
    let e = errors("undeclared_path_param");
    assert!(
        e[0].contains("path parameter `userId` is not declared"),
        "{e:?}"
    );
}

#[test]
fn invalid_yaml_reports_line_and_column() {
    let e = errors("invalid_yaml");
    assert!(
        e[0].starts_with("invalid_yaml/api.yaml: error: invalid YAML (line 4"),
        "{e:?}"
    );
}

#[test]
fn a_directory_without_api_files_is_an_error() {
    let e = errors("../fixtures/all_of/defs");
    assert!(e[0].contains("no API files"), "{e:?}");
}

#[test]
fn a_bad_manifest_names_itself_and_the_field() {
    let e = errors("manifest");
    assert_eq!(
        e,
        ["manifest/upstream.yaml#/release: error: `latest` is not a release such as `v1.19`"]
    );
}
