//! One self-contained OpenAPI 3.1 document for a whole spec directory: what a
//! generic OpenAPI tool (a fuzzer, a client generator, a viewer) reads, since
//! those expect one document with one set of paths rather than a file per API
//! area joined by relative `$ref`s.
//!
//! - every operation of every API file the service serves, under its full path
//!   (the file's base path plus the path), path-level parameters merged into it
//!   and the file's default `security` made explicit. A file with
//!   `x-served: false` (an API the service calls, [`crate::ir::ApiFile::served`])
//!   is left out, its security schemes too: the bundle describes the server;
//! - every `$ref` to a schema becomes `#/components/schemas/<Name>` (the generated
//!   type's name where there is one, so the bundle and the Rust agree), every other
//!   `$ref` (parameters, bodies, responses, headers, examples, security schemes,
//!   example files referenced inside example values) is inlined; the security
//!   schemes of all files are merged (one name for two different mechanisms is an
//!   error);
//! - the router's own answers ([`framework_responses`]) are added where an
//!   operation does not declare that status: the shared Matrix error schema
//!   (`client-server/definitions/errors/error.yaml` when the spec has it) with
//!   `errcode` limited to the codes the router uses, listed again in
//!   `x-framework-errcodes`. So a checker that validates bodies also catches an
//!   implementation answering its own error under a status only the router
//!   documents. Where the operation declares the status with a body that is not
//!   a Matrix error (the `401` of user-interactive authentication), the body
//!   becomes `anyOf` the declared one and the router's error; where it declares a
//!   Matrix error, any error code stays allowed.
//!
//! The output is deterministic: paths in file and spec order, components sorted.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::diag::{Error, Location};
use crate::framework::{framework_responses, FrameworkResponse};
use crate::ir::{Envelope, Module, Operation, Status};
use crate::load::Loader;
use crate::lower::names::{qualifiers, shared_name, unique};

/// The Matrix error schema's place in a spec directory (relative to it).
pub const ERROR_SCHEMA: &str = "client-server/definitions/errors/error.yaml";

/// Keys whose values are data (copied, example files inlined), outside schemas.
const DATA_KEYS: &[&str] = &["example", "value", "default", "const", "enum"];

/// Schema keywords whose value is a schema.
const SCHEMA_KEYS: &[&str] = &[
    "items",
    "additionalProperties",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "contentSchema",
];
/// Schema keywords whose value is a list of schemas.
const SCHEMA_LISTS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];
/// Schema keywords whose value maps names to schemas.
const SCHEMA_MAPS: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

/// A placeholder for a component reference, settled once every name is known.
const PLACEHOLDER: &str = "\u{0}component:";

/// Bundles the spec directory (or single API file) `spec` into one OpenAPI 3.1
/// document.
pub fn bundle(spec: &Path) -> Result<Value, Error> {
    let loaded = crate::load_spec(spec)?;
    let api = &loaded.api;
    let canon = spec.canonicalize().unwrap_or_else(|_| spec.to_path_buf());
    let dir = if canon.is_file() {
        canon.parent().unwrap_or(&canon).to_path_buf()
    } else {
        canon.clone()
    };
    let root = dir.parent().unwrap_or(&dir).to_path_buf();
    let mut b = Bundler {
        loader: Loader::new(&root),
        components: BTreeMap::new(),
        inlining: Vec::new(),
    };
    for file in api.served_files() {
        b.loader.load(&root.join(&file.source), None);
    }
    let error_file = dir.join(ERROR_SCHEMA);
    let error_schema = if error_file.is_file() {
        let (name, _) = b.loader.load(&error_file, None);
        let at = Location::new(name, "");
        b.component(&at);
        Some(at)
    } else {
        None
    };

    let mut paths: Map<String, Value> = Map::new();
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    let mut schemes: Map<String, Value> = Map::new();
    let mut scheme_source: HashMap<String, String> = HashMap::new();
    for file in api.served_files() {
        let file_root = Location::new(file.source.clone(), "");
        let Some(doc) = b.loader.get(&file_root) else {
            continue;
        };
        // Security schemes, merged across files.
        if let Some(defined) = doc
            .pointer("/components/securitySchemes")
            .and_then(Value::as_object)
        {
            for name in defined.keys() {
                let at = file_root
                    .join("components")
                    .join("securitySchemes")
                    .join(name);
                let value = b.inline(&at);
                match schemes.get(name) {
                    Some(existing) if mechanism(existing) != mechanism(&value) => {
                        b.loader.diags.push(
                            &at,
                            format!(
                                "security scheme `{name}` differs from the one in {}",
                                scheme_source[name]
                            ),
                        )
                    }
                    Some(_) => {}
                    None => {
                        scheme_source.insert(name.clone(), file.source.clone());
                        schemes.insert(name.clone(), value);
                    }
                }
            }
        }
        for op in &file.operations {
            let full = format!("{}{}", file.base_path, op.path);
            let method = op.method.to_ascii_lowercase();
            if let Some(other) =
                seen.insert((full.clone(), method.clone()), op.location.to_string())
            {
                b.loader.diags.push(
                    &op.location,
                    format!("{} {full} is also defined at {other}", op.method),
                );
                continue;
            }
            let value = b.operation(&doc, op, error_schema.as_ref(), file.envelope);
            paths
                .entry(full)
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("path items are objects")
                .insert(method, value);
        }
    }
    let diags = std::mem::take(&mut b.loader.diags);
    if diags.has_errors() {
        return Err(Error(diags.into_sorted()));
    }

    // Settle component names: the generated type's name when the schema has one.
    let type_names: HashMap<&Location, &str> = api
        .types
        .iter()
        .filter(|t| t.module == Module::Shared)
        .map(|t| (&t.location, t.name.as_str()))
        .collect();
    // First the generated types' names (unique already), then the others, each
    // qualified by its directories where the plain name is taken.
    let components = std::mem::take(&mut b.components);
    let mut taken = HashSet::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for at in components.keys() {
        if let Some(name) = type_names.get(at) {
            if taken.insert(name.to_string()) {
                names.insert(at.to_string(), name.to_string());
            }
        }
    }
    for at in components.keys() {
        if names.contains_key(&at.to_string()) {
            continue;
        }
        let base = shared_name(at);
        let mut name = base.clone();
        for q in qualifiers(at) {
            if !taken.contains(&name) {
                break;
            }
            name = format!("{q}{name}");
        }
        let name = unique(&mut taken, name);
        names.insert(at.to_string(), name);
    }
    let mut schemas = Map::new();
    let mut ordered: Vec<(String, Value)> = components
        .into_iter()
        .map(|(at, value)| (names[&at.to_string()].clone(), value.unwrap_or(Value::Null)))
        .collect();
    if error_schema.is_none() {
        let name = unique(&mut taken, "Error".into());
        names.insert(String::new(), name.clone());
        ordered.push((
            name,
            json!({
                "type": "object",
                "title": "Error",
                "description": "A Matrix standard error response.",
                "properties": {
                    "errcode": {"type": "string"},
                    "error": {"type": "string"}
                },
                "required": ["errcode"]
            }),
        ));
    }
    ordered.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in ordered {
        schemas.insert(name, value);
    }

    let title = match &api.release {
        Some(r) => format!("Matrix API ({}), bundled", r.version()),
        None => "Matrix API, bundled".to_string(),
    };
    let version = api
        .release
        .as_ref()
        .map(|r| r.version().to_string())
        .unwrap_or_else(|| "unversioned".into());
    let mut out = json!({
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Every operation the spec directory's server serves (its files without \
                `x-served: false`) under its full path, with the answers the generated router \
                gives by itself (`x-framework-errcodes`)."
        },
        "paths": Value::Object(paths),
        "components": {
            "schemas": Value::Object(schemas),
            "securitySchemes": Value::Object(schemes),
        }
    });
    settle(&mut out, &names);
    Ok(out)
}

struct Bundler {
    loader: Loader,
    /// Schemas reached by `$ref`, by identity; `None` while being built.
    components: BTreeMap<Location, Option<Value>>,
    /// Non-schema references being inlined (to report cycles).
    inlining: Vec<Location>,
}

impl Bundler {
    /// The operation object at `op.location`, bundled.
    fn operation(
        &mut self,
        doc: &Value,
        op: &Operation,
        error: Option<&Location>,
        envelope: Envelope,
    ) -> Value {
        let Some((at, raw)) = self.loader.deref(&op.location) else {
            return Value::Null;
        };
        let mut out = Map::new();
        for (key, value) in raw.as_object().into_iter().flatten() {
            let here = at.join(key);
            match key.as_str() {
                "parameters" | "responses" => {} // below
                _ => {
                    out.insert(key.clone(), self.walk(value, &here));
                }
            }
        }
        let params = self.parameters(op);
        if !params.is_empty() {
            out.insert("parameters".into(), Value::Array(params));
        }
        if !out.contains_key("security") {
            if let Some(s) = doc.get("security") {
                out.insert("security".into(), s.clone());
            }
        }
        let responses = self.responses(op, &at, error, envelope);
        out.insert("responses".into(), Value::Object(responses));
        Value::Object(out)
    }

    /// Path-level parameters, overridden by the operation's own (same name and
    /// place), as OpenAPI defines.
    fn parameters(&mut self, op: &Operation) -> Vec<Value> {
        let mut locations = Vec::new();
        // `.../paths/<path>/<method>` → `.../paths/<path>/parameters`
        if let Some((item, _)) = op.location.pointer.rsplit_once('/') {
            let item = Location::new(op.location.file.clone(), item);
            if let Some((item, value)) = self.loader.deref(&item) {
                let n = value
                    .get("parameters")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                locations.extend((0..n).map(|i| item.join("parameters").join(i)));
            }
        }
        if let Some((at, value)) = self.loader.deref(&op.location) {
            let n = value
                .get("parameters")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            locations.extend((0..n).map(|i| at.join("parameters").join(i)));
        }
        let mut out: Vec<Value> = Vec::new();
        for at in locations {
            let p = self.inline(&at);
            let key = |v: &Value| (v.get("name").cloned(), v.get("in").cloned());
            out.retain(|q| key(q) != key(&p));
            out.push(p);
        }
        out
    }

    fn responses(
        &mut self,
        op: &Operation,
        at: &Location,
        error: Option<&Location>,
        envelope: Envelope,
    ) -> Map<String, Value> {
        let mut declared: BTreeMap<String, Value> = BTreeMap::new();
        let raw = self
            .loader
            .get(&at.join("responses"))
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        for code in raw.keys() {
            let here = at.join("responses").join(code);
            declared.insert(code.clone(), self.inline(&here));
        }
        let error_ref = match error {
            Some(e) => json!({"$ref": format!("{PLACEHOLDER}{e}")}),
            None => json!({"$ref": PLACEHOLDER}),
        };
        for fr in framework_responses(op, envelope) {
            let code = fr.status.to_string();
            let class = Status::Class(fr.status / 100);
            if op.responses.iter().any(|r| r.status == class) {
                continue; // `4XX`: the operation already documents any such body.
            }
            // The router's errors, with exactly the codes it answers: a tool that
            // checks bodies also finds an implementation's own error under a
            // status only the router documents.
            let schema = match envelope {
                Envelope::Matrix => json!({
                    "allOf": [error_ref, {"properties": {"errcode": {"enum": fr.errcodes}}}]
                }),
                Envelope::OAuth => json!({
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"enum": fr.errcodes},
                        "error_description": {"type": "string"}
                    }
                }),
            };
            match declared.get_mut(&code) {
                None => {
                    declared.insert(code, framework_response(&fr, schema));
                }
                Some(existing) => {
                    let here = at.join("responses").join(&code);
                    self.merge_error(existing, &here, &fr, error, schema);
                }
            }
        }
        declared.into_iter().collect()
    }

    /// A declared response for a status the router also answers: its JSON body
    /// must accept a Matrix error too.
    fn merge_error(
        &mut self,
        existing: &mut Value,
        at: &Location,
        fr: &FrameworkResponse,
        error: Option<&Location>,
        schema: Value,
    ) {
        let Some(obj) = existing.as_object_mut() else {
            return;
        };
        obj.insert("x-framework-errcodes".into(), json!(fr.errcodes));
        let schema_at = self
            .loader
            .deref(at)
            .map(|(at, _)| at.join("content").join("application/json").join("schema"));
        let accepts = match (schema_at, error) {
            (Some(s), Some(e)) => self.is_error_schema(&s, e),
            _ => false,
        };
        if accepts {
            return;
        }
        let declared = obj
            .get_mut("content")
            .and_then(|c| c.get_mut("application/json"))
            .and_then(Value::as_object_mut)
            .and_then(|m| m.remove("schema"));
        let merged = match declared {
            Some(s) => json!({"anyOf": [s, schema]}),
            None => schema,
        };
        let content = obj
            .entry("content")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("content is an object");
        content
            .entry("application/json")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a media type is an object")
            .insert("schema".into(), merged);
        let description = obj
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let description = format!("{description}\n\nOr: {}", fr.description);
        obj.insert(
            "description".into(),
            Value::String(description.trim_start().to_string()),
        );
    }

    /// Whether the schema at `at` is the Matrix error schema, or extends it
    /// (`allOf` one of whose members is it).
    fn is_error_schema(&mut self, at: &Location, error: &Location) -> bool {
        let Some((target, value)) = self.loader.deref(at) else {
            return false;
        };
        if target == *error {
            return true;
        }
        let n = value
            .get("allOf")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        (0..n).any(|i| {
            self.loader
                .deref(&target.join("allOf").join(i))
                .is_some_and(|(member, _)| member == *error)
        })
    }

    /// The value at `at` with references followed (a `$ref` at `at` itself is
    /// inlined), bundled.
    fn inline(&mut self, at: &Location) -> Value {
        match self.loader.get(at) {
            Some(v) => self.walk(&v, at),
            None => Value::Null,
        }
    }

    /// Bundles an OpenAPI value that is not a schema: `$ref`s are inlined (their
    /// sibling keys override the target's), `schema` values become schemas, data
    /// is copied.
    fn walk(&mut self, value: &Value, at: &Location) -> Value {
        match value {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                    let mut out = self.follow(at, reference, Self::inline);
                    if let Value::Object(out) = &mut out {
                        for (k, v) in map.iter().filter(|(k, _)| *k != "$ref") {
                            out.insert(k.clone(), self.walk_key(k, v, &at.join(k)));
                        }
                    }
                    return out;
                }
                let mut out = Map::new();
                for (k, v) in map {
                    out.insert(k.clone(), self.walk_key(k, v, &at.join(k)));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.walk(v, &at.join(i)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn walk_key(&mut self, key: &str, value: &Value, at: &Location) -> Value {
        if key == "schema" {
            self.schema(value, at)
        } else if DATA_KEYS.contains(&key) {
            self.data(value, at)
        } else {
            self.walk(value, at)
        }
    }

    /// Copies data (examples, defaults). A `{"$ref": ...}` inside it is how the
    /// Matrix spec includes an example file: it is replaced by the file's content.
    fn data(&mut self, value: &Value, at: &Location) -> Value {
        match value {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                    return self.follow(at, reference, |b, target| match b.loader.get(target) {
                        Some(v) => b.data(&v, target),
                        None => Value::Null,
                    });
                }
                Value::Object(
                    map.iter()
                        .map(|(k, v)| (k.clone(), self.data(v, &at.join(k))))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.data(v, &at.join(i)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Resolves a `$ref` written at `at` and bundles its target with `f`; a
    /// reference reached again while its target is being inlined is a cycle.
    fn follow(
        &mut self,
        at: &Location,
        reference: &str,
        f: impl FnOnce(&mut Self, &Location) -> Value,
    ) -> Value {
        let Some(target) = self.loader.resolve_ref(at, reference) else {
            return Value::Null;
        };
        if self.inlining.contains(&target) {
            self.loader.diags.push(
                at,
                format!("`$ref: {reference}` is a reference cycle: it cannot be inlined"),
            );
            return Value::Null;
        }
        self.inlining.push(target.clone());
        let out = f(self, &target);
        self.inlining.pop();
        out
    }

    /// Bundles a JSON Schema: a `$ref` becomes a component reference, subschemas
    /// are bundled, everything else (annotations, examples, defaults) is copied.
    fn schema(&mut self, value: &Value, at: &Location) -> Value {
        let Value::Object(map) = value else {
            return value.clone(); // boolean schemas
        };
        let mut out = Map::new();
        for (k, v) in map {
            let here = at.join(k);
            let bundled = if k == "$ref" {
                match v.as_str().and_then(|r| self.loader.resolve_ref(at, r)) {
                    Some(target) => {
                        let target = self.loader.deref(&target).map_or(target, |(t, _)| t);
                        self.component(&target);
                        Value::String(format!("{PLACEHOLDER}{target}"))
                    }
                    None => Value::Null,
                }
            } else if SCHEMA_KEYS.contains(&k.as_str()) || SCHEMA_LISTS.contains(&k.as_str()) {
                match v {
                    Value::Array(items) => Value::Array(
                        items
                            .iter()
                            .enumerate()
                            .map(|(i, s)| self.schema(s, &here.join(i)))
                            .collect(),
                    ),
                    s if SCHEMA_KEYS.contains(&k.as_str()) => self.schema(s, &here),
                    other => other.clone(),
                }
            } else if SCHEMA_MAPS.contains(&k.as_str()) {
                match v {
                    Value::Object(m) => Value::Object(
                        m.iter()
                            .map(|(name, s)| (name.clone(), self.schema(s, &here.join(name))))
                            .collect(),
                    ),
                    other => other.clone(),
                }
            } else {
                self.data(v, &here)
            };
            out.insert(k.clone(), bundled);
        }
        Value::Object(out)
    }

    /// Registers the schema at `at` as a component (once; recursion is fine).
    fn component(&mut self, at: &Location) {
        if self.components.contains_key(at) {
            return;
        }
        self.components.insert(at.clone(), None);
        let value = self.loader.get(at).unwrap_or(Value::Null);
        let bundled = self.schema(&value, at);
        self.components.insert(at.clone(), Some(bundled));
    }
}

/// A security scheme without its description: two files may describe one
/// mechanism in their own words.
fn mechanism(scheme: &Value) -> Value {
    let mut scheme = scheme.clone();
    if let Some(m) = scheme.as_object_mut() {
        m.remove("description");
    }
    scheme
}

fn framework_response(fr: &FrameworkResponse, schema: Value) -> Value {
    json!({
        "description": fr.description,
        "x-framework-errcodes": fr.errcodes,
        "content": {"application/json": {"schema": schema}},
    })
}

/// Replaces component placeholders with `#/components/schemas/<name>`.
fn settle(value: &mut Value, names: &HashMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "$ref" {
                    if let Some(at) = v.as_str().and_then(|s| s.strip_prefix(PLACEHOLDER)) {
                        if let Some(name) = names.get(at) {
                            *v = Value::String(format!("#/components/schemas/{name}"));
                        }
                    }
                } else {
                    settle(v, names);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| settle(v, names)),
        _ => {}
    }
}

/// The status codes [`bundle`] added or extended for the router, per operation
/// (`METHOD /full/path` → codes): for tests and reports.
pub fn framework_statuses(bundle: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (path, item) in bundle["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let codes: BTreeSet<String> = op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, r)| r.get("x-framework-errcodes").is_some())
                .map(|(c, _)| c.clone())
                .collect();
            out.insert(format!("{} {path}", method.to_uppercase()), codes);
        }
    }
    out
}
