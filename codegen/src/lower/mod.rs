//! Lowering: OpenAPI documents (as loaded JSON values) → [`crate::ir::Api`].
//!
//! `schema.rs` maps JSON Schema to types, `operation.rs` maps paths, parameters,
//! bodies, responses and security to operations, `names.rs` settles the final Rust
//! names once every type is known (collisions are resolved over the whole API, so
//! the result does not depend on the order files are read).

pub(crate) mod names;
mod operation;
mod schema;
mod share;
mod text;

pub use names::status_variant;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::diag::{Error, Location};
use crate::ir::{Api, ApiFile, Content, Envelope, Ty, TypeId, TypeKind};
use crate::load::Loader;

pub(crate) struct Lowerer {
    pub loader: Loader,
    pub api: Api,
    /// Schema identity (file + pointer) → the type generated for it.
    pub by_location: HashMap<Location, TypeId>,
    /// Types whose definition is being built: a reference to one needs a `Box`.
    pub in_progress: HashSet<TypeId>,
}

/// Lowers the given API files (OpenAPI documents with `paths`); `display_root` is the
/// directory file names in messages and headers are relative to.
pub fn lower(display_root: &Path, files: &[PathBuf]) -> Result<Api, Error> {
    let mut l = Lowerer {
        loader: Loader::new(display_root),
        api: Api::default(),
        by_location: HashMap::new(),
        in_progress: HashSet::new(),
    };
    for path in files {
        let (name, doc) = l.loader.load(path, None);
        let Some(doc) = doc else { continue };
        l.file(&name, &doc);
    }
    share::share_identical(&mut l.api);
    names::assign(&mut l);
    mark_errors(&mut l.api);
    let mut patterns: Vec<String> = l
        .api
        .all_tys()
        .into_iter()
        .filter_map(|t| match t {
            Ty::Pattern(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    patterns.sort();
    patterns.dedup();
    l.api.patterns = patterns;
    let mut sources: Vec<String> = l.loader_files();
    sources.sort();
    l.api.sources = sources;
    let diags = std::mem::take(&mut l.loader.diags);
    if diags.has_errors() {
        Err(Error(diags.into_sorted()))
    } else {
        l.api.warnings = diags.into_sorted();
        Ok(l.api)
    }
}

impl Lowerer {
    fn loader_files(&self) -> Vec<String> {
        self.loader.file_names()
    }

    fn file(&mut self, name: &str, doc: &Value) {
        let root = Location::new(name, "");
        if doc.get("paths").and_then(Value::as_object).is_none() {
            self.loader
                .diags
                .push(&root, "not an API file: it has no `paths` object");
            return;
        }
        let base_path = self.base_path(&root, doc);
        let (area, stem) = area_and_stem(name);
        let envelope = match doc.get("x-error-envelope") {
            None => Envelope::Matrix,
            Some(v) => match v.as_str().and_then(Envelope::from_extension) {
                Some(e) => e,
                None => {
                    self.loader.diags.push(
                        &root.join("x-error-envelope"),
                        "`x-error-envelope` must be `matrix` or `oauth`",
                    );
                    Envelope::Matrix
                }
            },
        };
        let served = match doc.get("x-served") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.loader.diags.push(
                    &root.join("x-served"),
                    format!(
                        "`x-served` must be `true` or `false` (a YAML boolean), not {other}: \
                         `false` makes the file an API this service calls but does not serve"
                    ),
                );
                true
            }
        };
        let file_index = self.api.files.len();
        self.api.files.push(ApiFile {
            source: name.to_string(),
            module: vec![names::module_name(&area), names::module_name(&stem)],
            trait_name: String::new(),
            title: text::str_at(doc, "/info/title").unwrap_or_default(),
            base_path,
            envelope,
            served,
            operations: Vec::new(),
        });
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        for (path, item) in &paths {
            let at = root.join("paths").join(path);
            self.path_item(file_index, doc, &at, path, item);
        }
    }

    /// The `basePath` a file's operations live under, from `servers`.
    fn base_path(&mut self, root: &Location, doc: &Value) -> String {
        let server = doc.pointer("/servers/0");
        let from_var = server
            .and_then(|s| s.pointer("/variables/basePath/default"))
            .and_then(Value::as_str);
        if let Some(base) = from_var {
            return base.trim_end_matches('/').to_string();
        }
        if let Some(url) = server.and_then(|s| s.get("url")).and_then(Value::as_str) {
            // `{protocol}://{hostname}/_matrix/...` or a plain path.
            let path = match url.find("://") {
                Some(i) => url[i + 3..]
                    .find('/')
                    .map(|j| &url[i + 3 + j..])
                    .unwrap_or(""),
                None => url,
            };
            if !path.contains('{') {
                return path.trim_end_matches('/').to_string();
            }
        }
        self.loader.diags.push(
            &root.join("servers"),
            "no base path: expected `servers[0]` with a `basePath` variable or a URL path",
        );
        String::new()
    }
}

/// Marks the responses whose body is their file's error envelope: a JSON object
/// that requires the envelope's key (`errcode`; `error` for OAuth).
fn mark_errors(api: &mut Api) {
    let types = &api.types;
    let is_envelope = |content: &Option<Content>, envelope: Envelope| {
        let Some(Content::Json(Ty::Named(id) | Ty::Boxed(id))) = content else {
            return false;
        };
        matches!(&types[*id].kind, TypeKind::Struct { fields, .. }
            if fields.iter().any(|f| f.required && f.wire == envelope.key()))
    };
    for file in &mut api.files {
        for op in &mut file.operations {
            for r in &mut op.responses {
                r.error = is_envelope(&r.content, file.envelope);
            }
        }
    }
}

/// `api/client-server/registration.yaml` → (`client-server`, `registration`).
fn area_and_stem(name: &str) -> (String, String) {
    let mut parts = name.rsplit('/');
    let file = parts.next().unwrap_or(name);
    let stem = file
        .strip_suffix(".yaml")
        .or(file.strip_suffix(".yml"))
        .unwrap_or(file);
    let area = parts.next().unwrap_or("api");
    (area.to_string(), stem.to_string())
}
