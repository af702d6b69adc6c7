//! JSON Schema (as the Matrix spec writes it, OpenAPI 3.1 flavoured) → [`Ty`] and
//! [`TypeDef`]s.
//!
//! Rules, each chosen so no information in the spec is lost:
//! - `$ref` → the referenced schema's one type (identity: file + pointer);
//! - `allOf` → one merged struct, except `allOf: [$ref]` plus annotations, which is
//!   just the referenced type; properties keep their own location, so `$ref`s inside
//!   a member from another file resolve against that file;
//! - `oneOf`/`anyOf` → an enum, internally tagged when every member fixes the same
//!   required property to one value, untagged otherwise;
//! - `type: [T, "null"]` → `Option<T>`; several non-null types → an untagged enum;
//! - `properties` → struct; `additionalProperties`/`patternProperties` → a map, or a
//!   flattened map of the extra keys next to `properties`;
//! - string `enum` → an open enum that keeps unknown values.

use std::collections::BTreeSet;

use heck::ToUpperCamelCase;
use serde_json::Value;

use super::{names, text, Lowerer};
use crate::diag::Location;
use crate::ir::{
    EnumValue, Field, IdKind, Module, Ty, TypeDef, TypeId, TypeKind, Variant, PLAIN_STRING_FORMATS,
};

/// Where a type created for a schema goes and what it is called if it needs a name.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub module: Module,
    pub name: String,
}

impl Ctx {
    pub fn child(&self, suffix: &str) -> Ctx {
        Ctx {
            module: self.module.clone(),
            name: format!("{}{}", self.name, suffix.to_upper_camel_case()),
        }
    }
}

/// Keywords whose meaning the generator does not model: using one is an error, not
/// a silent approximation.
const UNSUPPORTED: &[&str] = &[
    "not",
    "if",
    "then",
    "else",
    "prefixItems",
    "contains",
    "dependentSchemas",
    "dependentRequired",
    "unevaluatedProperties",
    "unevaluatedItems",
    "$dynamicRef",
    "propertyNames",
];

/// Keys that only annotate a schema; a member made only of these adds no structure.
fn annotation_only(v: &Value) -> bool {
    v.as_object().is_some_and(|m| {
        m.keys().all(|k| {
            k.starts_with("x-")
                || matches!(
                    k.as_str(),
                    "description"
                        | "title"
                        | "example"
                        | "examples"
                        | "deprecated"
                        | "default"
                        | "readOnly"
                        | "writeOnly"
                        | "$comment"
                )
        })
    })
}

fn is_object_like(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("object")
        || v.get("properties").is_some()
        || v.get("additionalProperties").is_some()
        || v.get("patternProperties").is_some()
}

/// The pieces of an object schema, possibly merged from several `allOf` members.
#[derive(Default)]
struct ObjectParts {
    /// Each property with every location that declares it (several when `allOf`
    /// members refine the same property: all of them apply).
    props: Vec<(String, Vec<Location>)>,
    required: BTreeSet<String>,
    /// `Some(None)`: any extra keys, untyped; `Some(Some(loc))`: typed by that schema.
    additional: Option<Option<Location>>,
    pattern: Vec<Location>,
}

impl ObjectParts {
    fn add(&mut self, at: &Location, v: &Value) {
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for name in props.keys() {
                let loc = at.join("properties").join(name);
                match self.props.iter_mut().find(|(n, _)| n == name) {
                    Some(existing) => existing.1.push(loc),
                    None => self.props.push((name.clone(), vec![loc])),
                }
            }
        }
        if let Some(req) = v.get("required").and_then(Value::as_array) {
            self.required
                .extend(req.iter().filter_map(Value::as_str).map(str::to_string));
        }
        match v.get("additionalProperties") {
            None | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => self.additional = Some(None),
            Some(schema) if annotation_only(schema) => self.additional = Some(None),
            Some(_) => self.additional = Some(Some(at.join("additionalProperties"))),
        }
        if let Some(pp) = v.get("patternProperties").and_then(Value::as_object) {
            for key in pp.keys() {
                self.pattern.push(at.join("patternProperties").join(key));
            }
        }
    }
}

impl Lowerer {
    /// Lowers the schema at `at` (possibly a `$ref`).
    pub(crate) fn schema(&mut self, at: &Location, ctx: &Ctx) -> Ty {
        match self.loader.get(at) {
            Some(v) => self.schema_value(at, &v, ctx),
            None => Ty::Any,
        }
    }

    fn named(&self, id: TypeId) -> Ty {
        if self.in_progress.contains(&id) {
            Ty::Boxed(id)
        } else {
            Ty::Named(id)
        }
    }

    /// The type of the schema a `$ref` written at `from` points to.
    pub(crate) fn reference(&mut self, from: &Location, reference: &str) -> Ty {
        let Some(target) = self.loader.resolve_ref(from, reference) else {
            return Ty::Any;
        };
        if let Some(&id) = self.by_location.get(&target) {
            return self.named(id);
        }
        let Some((target, v)) = self.loader.deref(&target) else {
            return Ty::Any;
        };
        if let Some(&id) = self.by_location.get(&target) {
            return self.named(id);
        }
        let ctx = Ctx {
            module: Module::Shared,
            name: names::shared_name(&target),
        };
        self.schema_value(&target, &v, &ctx)
    }

    fn schema_value(&mut self, at: &Location, v: &Value, ctx: &Ctx) -> Ty {
        if let Some(r) = v.get("$ref").and_then(Value::as_str) {
            return self.reference(at, r);
        }
        if let Some(&id) = self.by_location.get(at) {
            return self.named(id);
        }
        if !v.is_object() {
            if v != &Value::Bool(true) {
                self.loader.diags.push(at, "a schema must be an object");
            }
            return Ty::Any;
        }
        for key in UNSUPPORTED {
            if v.get(*key).is_some() {
                self.loader
                    .diags
                    .push(at, format!("schema keyword `{key}` is not supported"));
            }
        }
        if let Some(members) = v.get("allOf").and_then(Value::as_array) {
            return self.all_of(at, v, members.len(), ctx);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(members) = v.get(key).and_then(Value::as_array) {
                return self.one_of(at, v, key, members.len(), ctx);
            }
        }
        match v.get("type") {
            Some(Value::String(t)) => self.typed(at, v, t, ctx),
            Some(Value::Array(types)) => self.type_list(at, v, types, ctx),
            None if is_object_like(v) => self.typed(at, v, "object", ctx),
            None if v.get("enum").is_some() => self.typed(at, v, "string", ctx),
            None => Ty::Any,
            Some(_) => {
                self.loader
                    .diags
                    .push(at, "`type` must be a string or a list of strings");
                Ty::Any
            }
        }
    }

    fn typed(&mut self, at: &Location, v: &Value, t: &str, ctx: &Ctx) -> Ty {
        match t {
            "object" => {
                let mut parts = ObjectParts::default();
                parts.add(at, v);
                self.object(at, v, parts, ctx, None)
            }
            "string" => match v.get("enum").and_then(Value::as_array) {
                Some(values) if values.iter().all(Value::is_string) => {
                    self.string_enum(at, v, values, ctx)
                }
                _ => self.string_format(at, v),
            },
            "integer" => Ty::Integer,
            "number" => Ty::Number,
            "boolean" => Ty::Boolean,
            "null" => Ty::Option(Box::new(Ty::Any)),
            "array" => match v.get("items") {
                Some(_) => Ty::Vec(Box::new(self.schema(&at.join("items"), &ctx.child("Item")))),
                None => Ty::Vec(Box::new(Ty::Any)),
            },
            other => {
                self.loader
                    .diags
                    .push(at, format!("unknown schema type `{other}`"));
                Ty::Any
            }
        }
    }

    /// A string, typed by its `format` when that names a Matrix identifier, else
    /// by its `pattern` when it has one.
    fn string_format(&mut self, at: &Location, v: &Value) -> Ty {
        if let Some(format) = v.get("format").and_then(Value::as_str) {
            // The identifier's grammar is stricter than any pattern beside it.
            if let Some(kind) = IdKind::from_format(format) {
                return Ty::Id(kind);
            }
            if !PLAIN_STRING_FORMATS.contains(&format) {
                self.loader.diags.warn(
                    &at.join("format"),
                    format!("string format `{format}` is not known: generated as a plain `String`"),
                );
            }
        }
        let Some(pattern) = v.get("pattern").and_then(Value::as_str) else {
            return Ty::String;
        };
        match regex::Regex::new(pattern) {
            Ok(_) => Ty::Pattern(pattern.to_string()),
            Err(e) => {
                let why = e.to_string().lines().last().unwrap_or_default().to_string();
                self.loader.diags.warn(
                    &at.join("pattern"),
                    format!("pattern `{pattern}` cannot be checked ({why}): generated as a plain `String`"),
                );
                Ty::String
            }
        }
    }

    /// `type: [T, "null"]` and friends.
    fn type_list(&mut self, at: &Location, v: &Value, types: &[Value], ctx: &Ctx) -> Ty {
        let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
        if names.len() != types.len() || names.is_empty() {
            self.loader
                .diags
                .push(&at.join("type"), "a type list must hold type names");
            return Ty::Any;
        }
        let nullable = names.contains(&"null");
        let non_null: Vec<&str> = names.iter().copied().filter(|t| *t != "null").collect();
        let inner = match non_null.as_slice() {
            [] => Ty::Any,
            [one] => self.typed(at, v, one, ctx),
            many => {
                let id = self.new_def(at, v, ctx);
                let variants = many
                    .iter()
                    .map(|t| Variant {
                        name: String::new(),
                        wire: None,
                        ty: self.typed(at, v, t, &ctx.child(t)),
                    })
                    .collect();
                self.finish_def(id, TypeKind::Untagged { variants });
                Ty::Named(id)
            }
        };
        if nullable {
            Ty::Option(Box::new(inner))
        } else {
            inner
        }
    }

    fn all_of(&mut self, at: &Location, v: &Value, count: usize, ctx: &Ctx) -> Ty {
        let own_structure = is_object_like(v);
        let members: Vec<Location> = (0..count).map(|i| at.join("allOf").join(i)).collect();
        let structural: Vec<&Location> = members
            .iter()
            .filter(|m| self.loader.get(m).is_some_and(|mv| !annotation_only(&mv)))
            .collect();
        // `allOf: [$ref]` with a description next to it is just the referenced type.
        if structural.len() == 1 && !own_structure {
            let only = structural[0].clone();
            return self.schema(&only, ctx);
        }
        let mut parts = ObjectParts::default();
        let mut ok = true;
        self.merge_into(at, v, &mut parts, &mut ok, 0);
        if !ok {
            return Ty::Any;
        }
        self.object(at, v, parts, ctx, None)
    }

    /// Merges an `allOf` (recursively) into one set of object parts.
    fn merge_into(
        &mut self,
        at: &Location,
        v: &Value,
        parts: &mut ObjectParts,
        ok: &mut bool,
        depth: usize,
    ) {
        if depth > 32 {
            self.loader
                .diags
                .push(at, "`allOf` nests too deeply (a cycle?)");
            *ok = false;
            return;
        }
        if is_object_like(v) {
            parts.add(at, v);
        }
        let count = v.get("allOf").and_then(Value::as_array).map_or(0, Vec::len);
        for i in 0..count {
            let member = at.join("allOf").join(i);
            let Some((loc, mv)) = self.loader.deref(&member) else {
                *ok = false;
                continue;
            };
            if mv.get("allOf").is_some() {
                self.merge_into(&loc, &mv, parts, ok, depth + 1);
            } else if is_object_like(&mv) {
                parts.add(&loc, &mv);
            } else if !annotation_only(&mv) {
                self.loader.diags.push(
                    &member,
                    "`allOf` can only merge object schemas (or wrap a single `$ref`)",
                );
                *ok = false;
            }
        }
    }

    /// A struct for an object with properties; a map or free-form object otherwise.
    fn object(
        &mut self,
        at: &Location,
        v: &Value,
        parts: ObjectParts,
        ctx: &Ctx,
        skip: Option<&str>,
    ) -> Ty {
        let extra = |l: &mut Lowerer, ctx: &Ctx| -> Option<Ty> {
            let mut tys: Vec<Ty> = Vec::new();
            if let Some(additional) = &parts.additional {
                tys.push(match additional {
                    None => Ty::Any,
                    Some(loc) => l.schema(loc, &ctx.child("Value")),
                });
            }
            for loc in &parts.pattern {
                tys.push(l.schema(loc, &ctx.child("Value")));
            }
            tys.dedup();
            match tys.len() {
                0 => None,
                1 => tys.pop(),
                // Several patterns with different value types: each key's value is
                // still kept, as JSON.
                _ => Some(Ty::Any),
            }
        };
        if parts.props.is_empty() {
            // `properties: {}` says "an empty object" (logout's answer): a struct
            // with no fields, not a map of anything.
            let explicitly_empty = v
                .get("properties")
                .and_then(Value::as_object)
                .is_some_and(|m| m.is_empty());
            match extra(self, ctx) {
                None if explicitly_empty => {}
                None | Some(Ty::Any) => return Ty::Object,
                Some(value) => return Ty::Map(Box::new(value)),
            }
        }
        let id = self.new_def(at, v, ctx);
        // Inline members are named from this type's own name, so a titled
        // schema restarts the path (`ThirdPartyIdentifierMedium`, not
        // `OkBodyThreepidsItemMedium`).
        let ctx = &Ctx {
            module: ctx.module.clone(),
            name: self.api.types[id].name.clone(),
        };
        let mut fields = Vec::new();
        for (wire, locs) in &parts.props {
            if Some(wire.as_str()) == skip {
                continue;
            }
            let Some(loc) = locs.last() else { continue };
            let Some(pv) = self.loader.get(loc) else {
                continue;
            };
            let ty = if locs.len() > 1 {
                self.merged_property(locs, &ctx.child(wire))
            } else {
                self.schema_value(loc, &pv, &ctx.child(wire))
            };
            // A property's doc is its own; a bare `$ref` borrows the target's.
            let mut doc = text::doc(&pv);
            let mut default = pv.get("default").cloned();
            if let Some(r) = pv.get("$ref").and_then(Value::as_str) {
                if let Some(target) = self.loader.resolve_ref(loc, r) {
                    if let Some((_, tv)) = self.loader.deref(&target) {
                        if doc.text.is_empty() {
                            doc = text::doc(&tv);
                        }
                        default = default.or_else(|| tv.get("default").cloned());
                    }
                }
            }
            fields.push(Field {
                wire: wire.clone(),
                name: names::field_name(wire),
                ty,
                required: parts.required.contains(wire),
                default,
                doc,
            });
        }
        names::dedupe_fields(&mut fields);
        let extra = extra(self, ctx);
        self.finish_def(id, TypeKind::Struct { fields, extra });
        Ty::Named(id)
    }

    /// A property several `allOf` members declare: object schemas are merged (the
    /// merged type's identity is the last, most refined declaration); otherwise the
    /// last declaration, which refines the earlier ones, gives the type.
    fn merged_property(&mut self, locs: &[Location], ctx: &Ctx) -> Ty {
        let last = locs[locs.len() - 1].clone();
        let resolved: Vec<(Location, Value)> =
            locs.iter().filter_map(|l| self.loader.deref(l)).collect();
        if resolved.len() != locs.len()
            || !resolved
                .iter()
                .all(|(_, v)| is_object_like(v) || v.get("allOf").is_some())
        {
            return self.schema(&last, ctx);
        }
        if let Some(&id) = self.by_location.get(&last) {
            return self.named(id);
        }
        let mut parts = ObjectParts::default();
        let mut ok = true;
        for (loc, v) in &resolved {
            self.merge_into(loc, v, &mut parts, &mut ok, 0);
        }
        if !ok {
            return Ty::Any;
        }
        let (_, last_value) = &resolved[resolved.len() - 1];
        self.object(&last, last_value, parts, ctx, None)
    }

    fn string_enum(&mut self, at: &Location, v: &Value, values: &[Value], ctx: &Ctx) -> Ty {
        let id = self.new_def(at, v, ctx);
        let wires: Vec<String> = values
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        let variant_names = names::enum_variant_names(&wires);
        let values = wires
            .into_iter()
            .zip(variant_names)
            .map(|(wire, name)| EnumValue { wire, name })
            .collect();
        self.finish_def(id, TypeKind::StringEnum { values });
        Ty::Named(id)
    }

    fn one_of(&mut self, at: &Location, v: &Value, key: &str, count: usize, ctx: &Ctx) -> Ty {
        let members: Vec<Location> = (0..count).map(|i| at.join(key).join(i)).collect();
        if let Some((tag, values)) = self.discriminator(&members) {
            let id = self.new_def(at, v, ctx);
            let mut variants = Vec::new();
            for (member, value) in members.iter().zip(values) {
                let Some(mv) = self.loader.get(member) else {
                    continue;
                };
                let mut parts = ObjectParts::default();
                parts.add(member, &mv);
                let vctx = ctx.child(&value);
                let ty = self.object(member, &mv, parts, &vctx, Some(&tag));
                variants.push(Variant {
                    name: String::new(),
                    wire: Some(value),
                    ty,
                });
            }
            self.finish_def(id, TypeKind::Tagged { tag, variants });
            return Ty::Named(id);
        }
        let mut variants: Vec<Variant> = Vec::new();
        for (i, member) in members.iter().enumerate() {
            let ty = self.schema(member, &ctx.child(&format!("Variant{i}")));
            if !variants.iter().any(|x| x.ty == ty) {
                variants.push(Variant {
                    name: String::new(),
                    wire: None,
                    ty,
                });
            }
        }
        if variants.len() == 1 {
            // Members that differ only in pattern are one type.
            return variants.pop().map(|x| x.ty).unwrap_or(Ty::Any);
        }
        if variants
            .iter()
            .all(|x| matches!(x.ty, Ty::String | Ty::Id(_) | Ty::Pattern(_)))
        {
            // Strings that differ only in format (a room ID or a room alias) are
            // one `String`: the value is whichever the client sent.
            return Ty::String;
        }
        let id = self.new_def(at, v, ctx);
        self.finish_def(id, TypeKind::Untagged { variants });
        Ty::Named(id)
    }

    /// The property every member of a `oneOf` fixes to one value, if there is one,
    /// with each member's value. Only inline object members qualify: a referenced
    /// member keeps its own shape, tag field included, elsewhere.
    fn discriminator(&mut self, members: &[Location]) -> Option<(String, Vec<String>)> {
        let values: Vec<Value> = members
            .iter()
            .map(|m| self.loader.get(m))
            .collect::<Option<_>>()?;
        if values.len() < 2
            || values
                .iter()
                .any(|v| v.get("$ref").is_some() || !is_object_like(v))
        {
            return None;
        }
        let first = values[0].get("properties")?.as_object()?;
        'candidates: for tag in first.keys() {
            let mut fixed = Vec::new();
            for v in &values {
                let required = v
                    .get("required")
                    .and_then(Value::as_array)
                    .is_some_and(|r| r.iter().any(|x| x.as_str() == Some(tag)));
                let prop = v.pointer(&format!("/properties/{tag}"));
                let one = prop.and_then(|p| match (p.get("const"), p.get("enum")) {
                    (Some(Value::String(c)), _) => Some(c.clone()),
                    (_, Some(Value::Array(e))) if e.len() == 1 => e[0].as_str().map(str::to_string),
                    _ => None,
                });
                match one {
                    Some(value) if required && !fixed.contains(&value) => fixed.push(value),
                    _ => continue 'candidates,
                }
            }
            return Some((tag.clone(), fixed));
        }
        None
    }

    /// Reserves a type for the schema at `at` before its members are lowered, so a
    /// schema that refers back to itself finds it (and gets a `Box`).
    fn new_def(&mut self, at: &Location, v: &Value, ctx: &Ctx) -> TypeId {
        let id = self.api.types.len();
        let mut examples: Vec<Value> = v.get("example").cloned().into_iter().collect();
        if let Some(Value::Array(more)) = v.get("examples") {
            examples.extend(more.iter().cloned());
        }
        let examples = examples
            .into_iter()
            .map(|e| self.resolve_example(at, e, 0))
            .collect();
        let name = match v.get("title").and_then(Value::as_str) {
            Some(title) if ctx.module != Module::Shared || !at.pointer.is_empty() => {
                names::type_name(title).unwrap_or_else(|| ctx.name.clone())
            }
            _ => ctx.name.clone(),
        };
        self.api.types.push(TypeDef {
            name,
            module: ctx.module.clone(),
            location: at.clone(),
            doc: text::doc(v),
            kind: TypeKind::Untagged { variants: vec![] },
            examples,
        });
        self.by_location.insert(at.clone(), id);
        self.in_progress.insert(id);
        id
    }

    /// Example values may embed `{"$ref": "file"}` (the spec's examples do, for
    /// events): replaced by the referenced file's content, relative to the file the
    /// example is written in.
    fn resolve_example(&mut self, at: &Location, value: Value, depth: usize) -> Value {
        match value {
            Value::Object(mut map) if depth < 16 => {
                // `$ref` with sibling keys: the referenced example, with the siblings
                // laid over it.
                if let Some(Value::String(r)) = map.get("$ref").cloned() {
                    if let Some(target) = self.loader.resolve_ref(at, &r) {
                        map.remove("$ref");
                        let inner = self.loader.get(&target).unwrap_or(Value::Null);
                        let base = self.resolve_example(&target, inner, depth + 1);
                        if map.is_empty() {
                            return base;
                        }
                        if let Value::Object(mut merged) = base {
                            for (k, v) in map {
                                let v = self.resolve_example(at, v, depth + 1);
                                merged.insert(k, v);
                            }
                            return Value::Object(merged);
                        }
                    }
                }
                Value::Object(
                    map.into_iter()
                        .map(|(k, v)| (k, self.resolve_example(at, v, depth + 1)))
                        .collect(),
                )
            }
            Value::Array(items) if depth < 16 => Value::Array(
                items
                    .into_iter()
                    .map(|v| self.resolve_example(at, v, depth + 1))
                    .collect(),
            ),
            other => other,
        }
    }

    fn finish_def(&mut self, id: TypeId, kind: TypeKind) {
        self.api.types[id].kind = kind;
        self.in_progress.remove(&id);
    }

    /// Attaches a media-type example (of a request or response body) to the type
    /// the body has, for the round-trip tests.
    pub(crate) fn add_example(&mut self, at: &Location, ty: &Ty, example: Value) {
        if let Ty::Named(id) = ty {
            let example = self.resolve_example(at, example, 0);
            let examples = &mut self.api.types[*id].examples;
            if !examples.contains(&example) {
                examples.push(example);
            }
        }
    }
}
