//! One type for structurally identical inline schemas. The spec repeats small
//! inline schemas across operations (`id_server_unbind_result` in three
//! responses, `medium` in two requests); each would otherwise be its own type
//! in each operation's module, and an implementer would convert between them.
//! Two inline types are the same when they sit at a property of the same name
//! and have the same shape: a string enum with the same values, or a struct
//! whose fields (none of them a named type) match. The first by location is
//! kept, moved to `types` and named after the property; the others are
//! dropped and every reference follows.

use std::collections::BTreeMap;

use super::names;
use crate::ir::{Api, Module, Ty, TypeKind};

/// What makes two inline types the same: the property they sit at and their
/// shape, as text.
fn key(api: &Api, id: usize) -> Option<(String, String)> {
    let t = &api.types[id];
    if !matches!(t.module, Module::Operation(..)) {
        return None;
    }
    let (_, property) = t.location.pointer.rsplit_once("/properties/")?;
    if property.contains('/') {
        return None;
    }
    let shape = match &t.kind {
        TypeKind::StringEnum { values } => {
            let mut wires: Vec<&str> = values.iter().map(|v| v.wire.as_str()).collect();
            wires.sort();
            format!("enum {wires:?}")
        }
        TypeKind::Struct { fields, extra } => {
            if fields.iter().any(|f| names_a_type(&f.ty))
                || extra.as_ref().is_some_and(names_a_type)
            {
                return None;
            }
            let mut fields: Vec<String> = fields
                .iter()
                .map(|f| format!("{} {:?} {} {:?}", f.wire, f.ty, f.required, f.default))
                .collect();
            fields.sort();
            format!("struct {fields:?} {extra:?}")
        }
        TypeKind::Untagged { .. } | TypeKind::Tagged { .. } => return None,
    };
    Some((property.to_string(), shape))
}

fn names_a_type(ty: &Ty) -> bool {
    match ty {
        Ty::Named(_) | Ty::Boxed(_) => true,
        Ty::Option(inner) | Ty::Vec(inner) | Ty::Map(inner) => names_a_type(inner),
        _ => false,
    }
}

pub(super) fn share_identical(api: &mut Api) {
    let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for id in 0..api.types.len() {
        if let Some(k) = key(api, id) {
            groups.entry(k).or_default().push(id);
        }
    }
    // Old id → the id it becomes (before compaction).
    let mut target: Vec<usize> = (0..api.types.len()).collect();
    for ((property, _), mut ids) in groups {
        if ids.len() < 2 {
            continue;
        }
        ids.sort_by(|a, b| api.types[*a].location.cmp(&api.types[*b].location));
        let keep = ids[0];
        let mut examples = std::mem::take(&mut api.types[keep].examples);
        for &other in &ids[1..] {
            target[other] = keep;
            examples.append(&mut api.types[other].examples);
        }
        examples.dedup();
        let t = &mut api.types[keep];
        t.examples = examples;
        t.module = Module::Shared;
        if let Some(name) = names::type_name(&property) {
            t.name = name;
        }
    }
    // Drop the merged types and renumber the rest.
    let mut new_index = vec![usize::MAX; api.types.len()];
    let mut next = 0;
    for (id, slot) in new_index.iter_mut().enumerate() {
        if target[id] == id {
            *slot = next;
            next += 1;
        }
    }
    let remap: Vec<usize> = (0..api.types.len())
        .map(|id| new_index[target[id]])
        .collect();
    let mut id = 0;
    api.types.retain(|_| {
        let kept = target[id] == id;
        id += 1;
        kept
    });
    api.for_each_ty_mut(|ty| {
        if let Ty::Named(id) | Ty::Boxed(id) = ty {
            *id = remap[*id];
        }
    });
}
