//! Version awareness: the release a spec pins (or, without a manifest, the newest
//! its annotations name) and the releases a server built on it may advertise.

mod support;

use matrix_codegen::load_spec;
use matrix_codegen::versions::{supported, Release, Version};
use support::{fixtures, upstream};

fn v(minor: u32) -> Version {
    Version { major: 1, minor }
}

#[test]
fn versions_parse_as_the_spec_writes_them() {
    assert_eq!(Version::parse("v1.19"), Some(v(19)));
    assert_eq!(Version::parse("1.3"), Some(v(3)));
    assert_eq!(v(10).to_string(), "v1.10");
    assert!(v(10) > v(9), "numeric, not text, order");
    for bad in ["", "v1", "r0.6.1", "v1.x", "1.2.3"] {
        assert_eq!(Version::parse(bad), None, "{bad}");
    }
}

#[test]
fn supported_versions_start_where_clients_first_send_every_required_input() {
    let spec = load_spec(&fixtures().join("versions")).unwrap();
    assert_eq!(spec.api.release, Some(Release::Pinned(v(12))));
    // `a` (required, added in v1.3) sets the floor; `b` is optional, `r` is a
    // response field, and `c` came with its operation (v1.10): none of them
    // stops an older client.
    assert_eq!(
        supported(&spec.api, v(12)),
        (3..=12).map(v).collect::<Vec<_>>()
    );
}

#[test]
fn without_a_manifest_the_release_is_the_newest_annotation() {
    let spec = load_spec(&fixtures().join("defaults")).unwrap();
    assert!(spec.manifest.is_none());
    assert_eq!(spec.api.release, Some(Release::Inferred(v(2))));
    let Some(dir) = upstream("v1.19") else { return };
    let spec = load_spec(&dir).unwrap();
    assert_eq!(spec.api.release, Some(Release::Inferred(v(19))));
}

#[test]
fn the_project_api_pins_its_release_and_serves_v1_1_onwards() {
    let api = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api");
    let spec = load_spec(&api).unwrap();
    let manifest = spec.manifest.expect("api/upstream.yaml");
    assert_eq!(manifest.release, "v1.19");
    assert_eq!(spec.api.release, Some(Release::Pinned(v(19))));
    assert_eq!(
        supported(&spec.api, v(19)),
        (1..=19).map(v).collect::<Vec<_>>()
    );
}
