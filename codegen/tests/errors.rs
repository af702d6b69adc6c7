//! Bad specs fail with every problem named by file and JSON pointer, never a panic.

use std::path::{Path, PathBuf};

fn bad() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad")
}

/// Generation options for the bad specs (they never reach a crate).
fn bad_options() -> matrix_codegen::Options {
    matrix_codegen::Options {
        crate_name: "bad".into(),
        standalone: false,
        runtime: matrix_codegen::Runtime::Vendored,
    }
}

fn errors(name: &str) -> Vec<String> {
    let options = bad_options();
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

/// `constructs/` holds one instance of every other construct lowering rejects; all
/// are reported at once, each as the full `file#pointer: error: message` line.
#[test]
fn every_unsupported_construct_is_an_error_at_its_pointer() {
    let paths = "constructs/api.yaml#/paths";
    let props =
        format!("{paths}/~1schemas/get/responses/200/content/application~1json/schema/properties");
    let keyword =
        |k: &str| format!("{props}/keywords: error: schema keyword `{k}` is not supported");
    let expected = [
        "constructs/api.yaml#/components/schemas/Endless: error: `allOf` nests too deeply (a cycle?)".to_string(),
        "constructs/api.yaml#/components/securitySchemes/cookieKey: error: security scheme `apiKey` in `cookie` is not supported: http, or apiKey in query or header".into(),
        "constructs/api.yaml#/components/securitySchemes/oauth: error: security scheme `oauth2` is not supported: http, or apiKey in query or header".into(),
        format!("{paths}/~1cookie/get/parameters/0: error: parameter location `cookie` is not supported: path, query or header"),
        format!("{paths}/~1default_response/get/responses/default: error: response key `default` is not supported (a status code or a class such as `4XX`)"),
        format!("{paths}/~1files~1{{name}}.txt/get: error: path segment `{{name}}.txt` mixes text and a parameter (not supported)"),
        format!("{paths}/~1mixed_media/post/requestBody/content: error: a body that is JSON for some media types and not for others is not supported"),
        format!("{paths}/~1no_id/get: error: operation has no `operationId`"),
        format!("{paths}/~1no_in/get/parameters/0: error: parameter has no location (`in`): path, query or header"),
        format!("{paths}/~1no_responses/get: error: operation has no `responses`"),
        format!("{paths}/~1object_param/get/parameters/0/schema: error: parameter type not supported: parameters must be strings (identifiers too), numbers, booleans, string enums or arrays of those"),
        format!("{props}/all_of_string/allOf/1: error: `allOf` can only merge object schemas (or wrap a single `$ref`)"),
        format!("{props}/anchor_ref: error: `$ref: #anchor`: only JSON-pointer fragments (`#/...`) are supported"),
        keyword("$dynamicRef"),
        keyword("contains"),
        keyword("dependentRequired"),
        keyword("dependentSchemas"),
        keyword("else"),
        keyword("prefixItems"),
        keyword("propertyNames"),
        keyword("then"),
        keyword("unevaluatedItems"),
        keyword("unevaluatedProperties"),
        format!("{props}/not_an_object: error: a schema must be an object"),
        format!("{props}/type_list/type: error: a type list must hold type names"),
        format!("{props}/type_number: error: `type` must be a string or a list of strings"),
        format!("{props}/unknown_type: error: unknown schema type `file`"),
        format!("{paths}/~1security_combined/get: error: a security requirement combining several schemes is not supported"),
        format!("{paths}/~1security_map/get: error: `security` must be a list"),
        "constructs/no_servers.yaml#/servers: error: no base path: expected `servers[0]` with a `basePath` variable or a URL path".into(),
        "constructs/not_api.yaml: error: not an API file: it has no `paths` object".into(),
    ];
    let e = errors("constructs");
    for (got, want) in e.iter().zip(&expected) {
        assert_eq!(got, want);
    }
    assert_eq!(e.len(), expected.len(), "{e:#?}");
}

#[test]
fn a_default_the_type_cannot_hold_fails_at_emission() {
    assert_eq!(
        errors("default_value"),
        ["default_value/api.yaml#/paths/~1a/post/requestBody/content/application~1json/schema/properties/limit: error: default value \"ten\" cannot be expressed for this field's type"]
    );
}

#[test]
fn an_undefined_security_scheme_is_a_warning_and_generation_goes_on() {
    let options = bad_options();
    let out = matrix_codegen::generate(&bad().join("undefined_scheme"), &options)
        .expect("a warning does not stop generation");
    let warnings: Vec<String> = out.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["undefined_scheme/api.yaml#/paths/~1a/get: warning: security scheme `signedRequest` is not defined in `components.securitySchemes`; the whole `Authorization` header is passed as its credential"]
    );
    let operation = out
        .files
        .values()
        .find(|t| t.contains("pub static METADATA"))
        .unwrap();
    assert!(
        operation.contains("(\"signedRequest\", crate::runtime::AuthScheme::Authorization(\"\"))"),
        "authenticated with the whole header:\n{operation}"
    );
}

#[test]
fn an_unknown_string_format_is_a_warning_and_a_plain_string() {
    let options = bad_options();
    let out = matrix_codegen::generate(&bad().join("unknown_format"), &options)
        .expect("a warning does not stop generation");
    let warnings: Vec<String> = out.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["unknown_format/api.yaml#/paths/~1a/get/responses/200/content/application~1json/schema/properties/colour/format: warning: string format `css-colour` is not known: generated as a plain `String`"]
    );
    assert!(out
        .files
        .values()
        .any(|t| t.contains("pub colour: Option<String>")));
}

#[test]
fn a_manifest_deviation_needs_a_known_change_and_a_reason() {
    assert_eq!(
        errors("manifest_reason"),
        ["manifest_reason/upstream.yaml#/deviations/0/reason: error: a deviation needs its reason"]
    );
    let e = errors("manifest_change");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("manifest_change/upstream.yaml#/deviations/1/change: error: unknown change `appeared` (one of: operation-added, "),
        "{e:?}"
    );
    assert_eq!(
        errors("manifest_unknown_key"),
        ["manifest_unknown_key/upstream.yaml: error: invalid manifest: unknown field `pinned_at`, expected `release` or `deviations` at line 2 column 1"]
    );
}

#[test]
fn an_error_envelope_is_matrix_or_oauth() {
    assert_eq!(
        errors("unknown_envelope"),
        ["unknown_envelope/api.yaml#/x-error-envelope: error: `x-error-envelope` must be `matrix` or `oauth`"]
    );
}

#[test]
fn x_served_is_a_boolean() {
    // `no` is a string in YAML 1.2 (serde_norway), not `false`: one error at
    // the extension, naming the file, and nothing generated.
    assert_eq!(
        errors("served_not_bool"),
        ["served_not_bool/api.yaml#/x-served: error: `x-served` must be `true` or `false` (a YAML boolean), not \"no\": `false` makes the file an API this service calls but does not serve"]
    );
}

#[test]
fn a_pattern_the_regex_crate_cannot_check_is_a_warning_and_a_plain_string() {
    let options = bad_options();
    let out = matrix_codegen::generate(&bad().join("uncheckable_pattern"), &options)
        .expect("a warning does not stop generation");
    let warnings: Vec<String> = out.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("uncheckable_pattern/api.yaml#/paths/~1a/get/responses/200/content/application~1json/schema/properties/word/pattern: warning: pattern `^(?!x)[a-z]+$` cannot be checked ("),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].ends_with("): generated as a plain `String`"),
        "{}",
        warnings[0]
    );
    assert!(out
        .files
        .values()
        .any(|t| t.contains("pub word: Option<String>")));
}

#[test]
fn a_rename_must_match_a_generated_name_and_give_a_type_name() {
    assert_eq!(
        errors("settings_stale"),
        ["settings_stale/codegen.yaml#/rename/Full: error: no generated type or route trait is named `Full`"]
    );
    assert_eq!(
        errors("settings_bad_name"),
        ["settings_bad_name/codegen.yaml#/rename/ApiApi: error: `not a name` is not a type name (UpperCamelCase, ASCII)"]
    );
}
