//! The schema mapping, asserted on the IR: the rules the anchors get wrong.

mod support;

use matrix_codegen::ir::{Api, Envelope, IdKind, Module, SchemeKind, Status, Ty, TypeKind};
use support::fixtures;

fn lower(name: &str) -> Api {
    let dir = fixtures().join(name);
    let files = matrix_codegen::discover(&dir).unwrap();
    matrix_codegen::lower::lower(&fixtures(), &files).unwrap()
}

fn named<'a>(api: &'a Api, name: &str) -> &'a TypeKind {
    &api.types
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no type {name}"))
        .kind
}

fn field<'a>(api: &'a Api, ty: &str, wire: &str) -> &'a matrix_codegen::ir::Field {
    match named(api, ty) {
        TypeKind::Struct { fields, .. } => fields.iter().find(|f| f.wire == wire).expect("field"),
        other => panic!("{ty} is {other:?}"),
    }
}

#[test]
fn all_of_merges_members_and_a_wrapped_ref_is_the_type_itself() {
    let api = lower("all_of");
    let op = &api.files[0].operations[0];
    let ok = match &op.responses[0].content {
        Some(matrix_codegen::ir::Content::Json(Ty::Named(id))) => &api.types[*id],
        other => panic!("{other:?}"),
    };
    let TypeKind::Struct { fields, .. } = &ok.kind else {
        panic!()
    };
    let names: Vec<_> = fields
        .iter()
        .map(|f| (f.wire.as_str(), f.required))
        .collect();
    assert_eq!(names, [("id", true), ("meta", false), ("name", true)]);
    // `meta` is declared by both members: both apply.
    let Ty::Named(meta) = &fields[1].ty else {
        panic!()
    };
    let TypeKind::Struct { fields: meta, .. } = &api.types[*meta].kind else {
        panic!()
    };
    assert_eq!(
        meta.iter().map(|f| f.wire.as_str()).collect::<Vec<_>>(),
        ["age", "redacted"]
    );
    // 404 is `allOf: [$ref]` with a description: the shared `Base` type.
    let Some(matrix_codegen::ir::Content::Json(Ty::Named(id))) = &op.responses[1].content else {
        panic!()
    };
    assert_eq!(
        (api.types[*id].name.as_str(), &api.types[*id].module),
        ("Base", &Module::Shared)
    );
}

#[test]
fn one_of_is_tagged_untagged_or_collapsed() {
    let api = lower("one_of");
    assert!(
        matches!(named(&api, "RequestBodyKey"), TypeKind::Untagged { variants } if variants.len() == 2 && variants[0].ty == Ty::String && variants[1].name == "SignedKey")
    );
    match named(&api, "RequestBodyLogin") {
        TypeKind::Tagged { tag, variants } => {
            assert_eq!(tag, "type");
            assert_eq!(
                variants
                    .iter()
                    .map(|v| v.wire.clone().unwrap())
                    .collect::<Vec<_>>(),
                ["m.id.user", "m.id.phone"]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(field(&api, "RequestBody", "room").ty, Ty::String);
}

#[test]
fn null_in_a_type_list_is_option_and_several_types_are_an_enum() {
    let api = lower("nullable");
    let f = field(&api, "OkBody", "status_msg");
    assert_eq!(
        (f.required, &f.ty),
        (true, &Ty::Option(Box::new(Ty::String)))
    );
    assert_eq!(
        field(&api, "OkBody", "last_active").ty,
        Ty::Option(Box::new(Ty::Integer))
    );
    let Ty::Option(inner) = &field(&api, "OkBody", "value").ty else {
        panic!()
    };
    let Ty::Named(id) = **inner else { panic!() };
    let TypeKind::Untagged { variants } = &api.types[id].kind else {
        panic!()
    };
    assert_eq!(
        variants.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        ["String", "Integer", "Boolean"]
    );
}

#[test]
fn additional_and_pattern_properties_are_maps_or_kept_extra_keys() {
    let api = lower("maps");
    assert_eq!(
        field(&api, "OkBody", "counts").ty,
        Ty::Map(Box::new(Ty::Integer))
    );
    assert_eq!(
        field(&api, "OkBody", "by_user").ty,
        Ty::Map(Box::new(Ty::String))
    );
    assert_eq!(field(&api, "OkBody", "free").ty, Ty::Object);
    assert!(
        matches!(
            named(&api, "OkBodyAuth"),
            TypeKind::Struct {
                extra: Some(Ty::Any),
                ..
            }
        ),
        "description-only additionalProperties keeps any extra key"
    );
    assert!(matches!(
        named(&api, "OkBodyCaps"),
        TypeKind::Struct {
            extra: Some(Ty::Named(_)),
            ..
        }
    ));
}

#[test]
fn string_enums_get_unique_variant_names() {
    let api = lower("enums");
    let TypeKind::StringEnum { values } = named(&api, "OkBodyKind") else {
        panic!()
    };
    let names: Vec<_> = values.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        ["MLoginPassword", "MLoginPassword2", "Empty", "Type", "V1x"]
    );
}

#[test]
fn integers_defaults_deprecation_and_versions_are_kept() {
    let api = lower("defaults");
    assert_eq!(field(&api, "RequestBody", "expires_in_ms").ty, Ty::Integer);
    assert_eq!(
        field(&api, "RequestBody", "logout_devices").default,
        Some(serde_json::json!(true))
    );
    let hs = field(&api, "RequestBody", "home_server");
    assert!(hs.doc.deprecated);
    assert_eq!(hs.doc.added_in.as_deref(), Some("1.1"));
    assert_eq!(
        hs.doc.changed_in,
        [("1.2".to_string(), "Became deprecated.".to_string())]
    );
}

#[test]
fn refs_share_one_type_per_target_and_same_stems_are_qualified() {
    let api = lower("refs");
    let shared: Vec<_> = api
        .types
        .iter()
        .filter(|t| t.module == Module::Shared)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(shared.iter().filter(|n| n.ends_with("Error")).count(), 2);
    assert!(
        shared.contains(&"RefsError") && shared.contains(&"OtherError"),
        "{shared:?}"
    );
    let op = &api.files[0].operations[0];
    let bodies: Vec<_> = op.responses.iter().map(|r| r.content.clone()).collect();
    let (
        Some(matrix_codegen::ir::Content::Json(Ty::Named(ok))),
        Some(matrix_codegen::ir::Content::Json(Ty::Named(err))),
    ) = (&bodies[0], &bodies[1])
    else {
        panic!()
    };
    assert_eq!(
        field(&api, &api.types[*ok].name, "here").ty,
        Ty::Named(*err),
        "one definition for both uses"
    );
    assert_eq!(
        field(&api, "Tree", "parent").ty,
        Ty::Boxed(api.types.iter().position(|t| t.name == "Tree").unwrap())
    );
    let schemes: Vec<_> = op.security.schemes.iter().map(|s| s.kind.clone()).collect();
    assert_eq!(
        schemes,
        [
            SchemeKind::Authorization("Bearer".into()),
            SchemeKind::Query("access_token".into())
        ]
    );
}

#[test]
fn operations_keep_parameters_bodies_statuses_and_security() {
    let api = lower("operations");
    assert_eq!(api.files[0].base_path, "/_test/v3");
    let op = &api.files[0].operations[0];
    assert!(op.security.optional);
    assert_eq!(
        op.responses.iter().map(|r| r.status).collect::<Vec<_>>(),
        [Status::Code(200), Status::Code(302), Status::Class(4)]
    );
    assert_eq!(
        op.responses[0]
            .headers
            .iter()
            .map(|h| h.wire.as_str())
            .collect::<Vec<_>>(),
        ["Content-Disposition"],
        "Content-Type travels with the bytes"
    );
    assert!(matches!(
        op.body.as_ref().unwrap().content,
        matrix_codegen::ir::Content::Binary
    ));
    let signed = &api.files[0].operations[1];
    assert!(signed.doc.deprecated && !signed.body.as_ref().unwrap().required);
    assert_eq!(
        signed.security.schemes[0].kind,
        SchemeKind::Authorization(String::new())
    );
}

#[test]
fn identifier_formats_are_identifier_types() {
    let api = lower("identifiers");
    let op = &api.files[0].operations[0];
    let params: Vec<(&str, &Ty)> = op.params.iter().map(|p| (p.wire.as_str(), &p.ty)).collect();
    assert_eq!(
        params,
        [
            ("roomId", &Ty::Id(IdKind::RoomId)),
            ("userId", &Ty::Id(IdKind::UserId)),
            ("via", &Ty::Vec(Box::new(Ty::Id(IdKind::ServerName)))),
        ]
    );
    let body = |wire: &str| field(&api, "OkBody", wire).ty.clone();
    assert_eq!(body("user_id"), Ty::Id(IdKind::UserId));
    assert_eq!(body("server"), Ty::Id(IdKind::ServerName));
    assert_eq!(body("alias"), Ty::Id(IdKind::RoomAlias));
    assert_eq!(body("last_event"), Ty::Id(IdKind::EventId));
    // Known formats without a type of their own, and strings that differ only
    // in format, stay strings.
    assert_eq!(body("avatar"), Ty::String);
    assert_eq!(body("homepage"), Ty::String);
    assert_eq!(body("room"), Ty::String);
}

#[test]
fn responses_whose_body_is_the_envelope_are_errors_not_variants() {
    let api = lower("envelopes");
    let status_of = |file: usize, errors: bool| -> Vec<Status> {
        let op = &api.files[file].operations[0];
        if errors {
            op.error_statuses().collect()
        } else {
            op.variants().map(|r| r.status).collect()
        }
    };
    let matrix = api
        .files
        .iter()
        .position(|f| f.source.ends_with("matrix.yaml"))
        .unwrap();
    let oauth = 1 - matrix;
    assert_eq!(api.files[matrix].envelope, Envelope::Matrix);
    assert_eq!(api.files[oauth].envelope, Envelope::OAuth);
    // `errcode` required (also through `allOf`) is an error; `errcode` optional
    // (a UIA challenge) is not.
    assert_eq!(
        status_of(matrix, true),
        [Status::Code(400), Status::Code(429)]
    );
    assert_eq!(
        status_of(matrix, false),
        [Status::Code(200), Status::Code(401)]
    );
    assert_eq!(status_of(oauth, true), [Status::Code(400)]);
    assert_eq!(status_of(oauth, false), [Status::Code(200)]);
}

#[test]
fn patterns_become_checked_strings_unless_an_identifier_format_says_more() {
    let api = lower("patterns");
    let op = &api.files[0].operations[0];
    let param = |wire: &str| &op.params.iter().find(|p| p.wire == wire).unwrap().ty;
    assert_eq!(param("userId"), &Ty::Id(IdKind::UserId));
    assert_eq!(
        param("client_secret"),
        &Ty::Pattern("^[0-9a-zA-Z.=_-]{1,255}$".into())
    );
    assert_eq!(
        field(&api, "RequestBody", "sid").ty,
        Ty::Pattern("^[0-9a-zA-Z.=_-]{1,255}$".into())
    );
    // One marker per distinct pattern, sorted.
    assert_eq!(api.patterns.len(), 3);
    assert!(api.patterns.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn identical_inline_types_at_the_same_property_are_one_shared_type() {
    let api = lower("sharing");
    let mut shared: Vec<&str> = api
        .types
        .iter()
        .filter(|t| t.module == Module::Shared)
        .map(|t| t.name.as_str())
        .collect();
    shared.sort();
    // `result` would shadow the prelude's `Result`: qualified by its file.
    assert_eq!(shared, ["ApiResult", "Medium"]);
    // The same values at another property stay the operation's own type.
    let delete = &api.files[0]
        .operations
        .iter()
        .find(|o| o.name == "delete")
        .unwrap();
    let body = match &delete.body.as_ref().unwrap().content {
        matrix_codegen::ir::Content::Json(Ty::Named(id)) => *id,
        other => panic!("{other:?}"),
    };
    let TypeKind::Struct { fields, .. } = &api.types[body].kind else {
        panic!()
    };
    let kind = fields.iter().find(|f| f.wire == "kind").unwrap();
    let Ty::Named(kind) = kind.ty else {
        panic!("{:?}", kind.ty)
    };
    assert!(matches!(api.types[kind].module, Module::Operation(..)));
}
