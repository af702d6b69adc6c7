//! The router's own answers per operation (`framework::framework_responses`): the
//! rule on fixtures, and its result over api/ as a snapshot.

mod support;

use matrix_codegen::framework::{framework_responses, FrameworkResponse};
use matrix_codegen::ir::Envelope;
use matrix_codegen::ir::{Api, Operation};
use support::{fixtures, snapshot_differs};

fn lower(dir: &std::path::Path) -> Api {
    matrix_codegen::load_spec(dir).unwrap().api
}

fn op<'a>(api: &'a Api, id: &str) -> &'a Operation {
    api.files
        .iter()
        .flat_map(|f| &f.operations)
        .find(|o| o.operation_id == id)
        .unwrap_or_else(|| panic!("no operation {id}"))
}

fn statuses(responses: &[FrameworkResponse]) -> Vec<(u16, Vec<&str>)> {
    responses
        .iter()
        .map(|r| (r.status, r.errcodes.clone()))
        .collect()
}

#[test]
fn a_binary_body_is_never_json_and_any_security_may_miss_a_token() {
    let api = lower(&fixtures().join("operations"));
    // PUT with path, query and header parameters, a binary body, `- {}` security
    // (the implementation may still need a token for what it supports).
    assert_eq!(
        statuses(&framework_responses(
            op(&api, "uploadMedia"),
            Envelope::Matrix
        )),
        [
            (400, vec!["M_MISSING_PARAM", "M_INVALID_PARAM"]),
            (
                401,
                vec!["M_MISSING_TOKEN", "M_UNKNOWN_TOKEN", "M_USER_LOCKED"]
            ),
            (413, vec!["M_TOO_LARGE"]),
        ]
    );
    // An optional JSON body, no parameters, required security.
    assert_eq!(
        statuses(&framework_responses(
            op(&api, "signedCall"),
            Envelope::Matrix
        )),
        [
            (400, vec!["M_NOT_JSON", "M_BAD_JSON", "M_MISSING_PARAM"]),
            (
                401,
                vec!["M_MISSING_TOKEN", "M_UNKNOWN_TOKEN", "M_USER_LOCKED"]
            ),
            (413, vec!["M_TOO_LARGE"]),
        ]
    );
}

#[test]
fn api_operations_get_the_documented_framework_answers() {
    let api = lower(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api"));
    // Public, no parameters, no body: the router adds nothing.
    assert!(framework_responses(op(&api, "getWellknown"), Envelope::Matrix).is_empty());
    // A locked account may still log out.
    assert_eq!(
        statuses(&framework_responses(op(&api, "logout"), Envelope::Matrix)),
        [(401, vec!["M_MISSING_TOKEN", "M_UNKNOWN_TOKEN"])]
    );
    // Rate-limited operations (those with a 429) get M_LIMIT_EXCEEDED.
    let register = framework_responses(op(&api, "register"), Envelope::Matrix);
    assert_eq!(register.last().unwrap().status, 429);

    // The router answers for the operations it routes: the served files'.
    let mut text = String::new();
    for file in api.served_files() {
        for o in &file.operations {
            text.push_str(&format!(
                "{} {}{} ({})\n",
                o.method, file.base_path, o.path, o.operation_id
            ));
            for r in framework_responses(o, file.envelope) {
                text.push_str(&format!(
                    "  {} {}\n    {}\n",
                    r.status,
                    r.errcodes.join(" "),
                    r.description
                ));
            }
        }
    }
    let file = fixtures().join("../snapshots/framework_responses_api.txt");
    assert!(
        !snapshot_differs(&file, &text),
        "{} differs; review with UPDATE_SNAPSHOTS=1 cargo test -p matrix-codegen --test framework and git diff",
        file.display()
    );
}
