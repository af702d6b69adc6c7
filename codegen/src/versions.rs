//! Matrix spec versions: the release a description pins, and the range of
//! releases a server built on it may advertise in `/versions`.

use std::collections::BTreeSet;
use std::fmt;

use crate::ir::{Api, Content, Module, Ty, TypeDef, TypeId, TypeKind};

/// A Matrix release `v{major}.{minor}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

impl Version {
    /// The first release with numbered versions (and `/v3` client paths).
    pub const FIRST: Version = Version { major: 1, minor: 1 };

    /// `v1.19`, `1.19` (as the `x-…InMatrixVersion` annotations write it).
    pub fn parse(s: &str) -> Option<Version> {
        let (major, minor) = s.strip_prefix('v').unwrap_or(s).split_once('.')?;
        Some(Version {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}", self.major, self.minor)
    }
}

/// Where an API's release comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Stated by the spec's manifest (`upstream.yaml`).
    Pinned(Version),
    /// The newest version its annotations mention (a lower bound).
    Inferred(Version),
}

impl Release {
    pub fn version(self) -> Version {
        match self {
            Release::Pinned(v) | Release::Inferred(v) => v,
        }
    }
}

/// The newest version any annotation in the API the service serves mentions: a
/// lower bound for the release of a spec that does not say which it is. The
/// operations of a file with `x-served: false`, and their own types, are
/// another party's API and do not count.
pub fn newest_annotation(api: &Api) -> Option<Version> {
    let served_type = |t: &&TypeDef| match t.module {
        Module::Shared => true,
        Module::Operation(f, _) => api.files[f].served,
    };
    let docs = api
        .served_files()
        .flat_map(|f| &f.operations)
        .flat_map(|op| std::iter::once(&op.doc).chain(op.params.iter().map(|p| &p.doc)))
        .chain(api.types.iter().filter(served_type).flat_map(|t| {
            let fields: Vec<_> = match &t.kind {
                TypeKind::Struct { fields, .. } => fields.iter().map(|f| &f.doc).collect(),
                _ => Vec::new(),
            };
            std::iter::once(&t.doc).chain(fields)
        }));
    docs.flat_map(|d| {
        d.added_in
            .iter()
            .chain(d.changed_in.iter().map(|(v, _)| v))
            .filter_map(|v| Version::parse(v))
            .collect::<Vec<_>>()
    })
    .max()
}

/// The releases whose clients a server implementing `api` serves, oldest first:
/// from [`Version::FIRST`] (or, if later, the newest release that added an input
/// clients *must* send: older clients do not send it) up to `release`. Within
/// `v1.x` the spec only makes backwards-compatible changes, so everything
/// between is served too.
pub fn supported(api: &Api, release: Version) -> Vec<Version> {
    let floor = required_inputs_added(api)
        .into_iter()
        .filter(|v| *v <= release)
        .fold(Version::FIRST, Version::max);
    if floor.major != release.major {
        return vec![release];
    }
    (floor.minor..=release.minor)
        .map(|minor| Version {
            major: release.major,
            minor,
        })
        .collect()
}

/// `x-addedInMatrixVersion` of every required parameter and every required field
/// reachable from a request body, unless its operation was added in that release
/// too (older clients do not call the operation at all). Only the operations the
/// service serves: what it sends as a client (`x-served: false`) says nothing
/// about which clients it serves.
fn required_inputs_added(api: &Api) -> Vec<Version> {
    let mut out = Vec::new();
    for op in api.served_files().flat_map(|f| &f.operations) {
        let since = op.doc.added_in.as_deref().and_then(Version::parse);
        let mut found = Vec::new();
        for p in op.params.iter().filter(|p| p.required) {
            found.extend(p.doc.added_in.as_deref().and_then(Version::parse));
        }
        let mut seen = BTreeSet::new();
        let mut todo: Vec<TypeId> = Vec::new();
        if let Some(Content::Json(ty)) = op.body.as_ref().map(|b| &b.content) {
            named(ty, &mut todo);
        }
        while let Some(id) = todo.pop() {
            if !seen.insert(id) {
                continue;
            }
            match &api.types[id].kind {
                TypeKind::Struct { fields, extra } => {
                    for f in fields {
                        if f.required {
                            found.extend(f.doc.added_in.as_deref().and_then(Version::parse));
                        }
                        named(&f.ty, &mut todo);
                    }
                    if let Some(t) = extra {
                        named(t, &mut todo);
                    }
                }
                TypeKind::Untagged { variants } | TypeKind::Tagged { variants, .. } => {
                    for v in variants {
                        named(&v.ty, &mut todo);
                    }
                }
                TypeKind::StringEnum { .. } => {}
            }
        }
        out.extend(found.into_iter().filter(|v| since.is_none_or(|s| *v > s)));
    }
    out
}

fn named(ty: &Ty, out: &mut Vec<TypeId>) {
    match ty {
        Ty::Named(id) | Ty::Boxed(id) => out.push(*id),
        Ty::Option(t) | Ty::Vec(t) | Ty::Map(t) => named(t, out),
        Ty::Any
        | Ty::Object
        | Ty::String
        | Ty::Id(_)
        | Ty::Pattern(_)
        | Ty::Integer
        | Ty::Number
        | Ty::Boolean => {}
    }
}
