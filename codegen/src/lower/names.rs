//! Rust names: identifiers from spec names (heck for case conversion), keyword
//! escaping, and deterministic collision resolution.
//!
//! Collisions are settled after every type is known, by sorting on the schema's
//! identity (file + pointer), so adding a file can only rename the types that
//! collide with it, and reading files in another order renames nothing.

use std::collections::{BTreeMap, HashSet};

use heck::{ToSnakeCase, ToUpperCamelCase};

use super::Lowerer;
use crate::diag::Location;
use crate::ir::{Field, Module, Status, Ty, TypeKind};

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "try",
    "type", "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield",
];

const PRELUDE: &[&str] = &[
    "Result", "Option", "Some", "None", "Ok", "Err", "String", "Vec", "Box", "Default", "Send",
    "Sync", "Sized", "Clone", "Copy", "Drop", "Fn", "FnMut", "FnOnce", "From", "Into", "Iterator",
    "ToString", "ToOwned",
];

fn escape(mut s: String, fallback: &str) -> String {
    if s.is_empty() {
        s = fallback.to_string();
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    if KEYWORDS.contains(&s.as_str()) {
        s.push('_');
    }
    s
}

/// Acronyms the Matrix spec writes next to each other in operation IDs.
const ACRONYMS: &[&str] = &["PID", "MSISDN", "ID", "URL"];

/// Prepares a spec name for heck: only ASCII letters and digits survive (anything
/// else separates words), a plural acronym is one word (`3PIDs` → `3Pids`, not
/// `3_pi_ds`), and a number starts a word (`getAccount3PIDs` → `get_account_3pids`).
fn words(s: &str) -> String {
    let chars: Vec<char> = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { ' ' })
        .collect();
    let mut out = String::with_capacity(s.len() + 4);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() && i > 0 && chars[i - 1].is_ascii_alphabetic() {
            out.push(' ');
        }
        // An upper-case run followed by a lone `s` (end of word): `PIDs`, `IDs`.
        let run = chars[i..]
            .iter()
            .take_while(|c| c.is_ascii_uppercase())
            .count();
        let plural = run >= 2
            && chars.get(i + run) == Some(&'s')
            && !chars
                .get(i + run + 1)
                .is_some_and(|c| c.is_ascii_lowercase());
        if plural {
            out.push(c);
            out.extend(chars[i + 1..i + run].iter().map(|c| c.to_ascii_lowercase()));
            out.push('s');
            i += run + 1;
            continue;
        }
        // Acronyms glued together (`3PIDMSISDN`): split where a known one ends.
        if run >= 2 {
            let upper: String = chars[i..i + run].iter().collect();
            if let Some(a) = ACRONYMS
                .iter()
                .find(|a| upper.starts_with(*a) && upper.len() > a.len())
            {
                out.push_str(a);
                out.push(' ');
                i += a.len();
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// A field, parameter or header name: `m.change_password` → `m_change_password`,
/// `type` → `type_`.
pub fn field_name(wire: &str) -> String {
    escape(words(wire).to_snake_case(), "field")
}

/// A module or method name: `requestTokenToRegisterEmail` →
/// `request_token_to_register_email`.
pub fn module_name(s: &str) -> String {
    escape(words(s).to_snake_case(), "module")
}

/// A type name from a title, if the title makes one.
pub fn type_name(title: &str) -> Option<String> {
    let name = words(title).to_upper_camel_case();
    (!name.is_empty() && name.starts_with(|c: char| c.is_ascii_alphabetic())).then_some(name)
}

/// The name of a schema reached by `$ref`: its file's stem for a whole file,
/// otherwise the last pointer segment (`#/components/schemas/booleanCapability`).
pub fn shared_name(at: &Location) -> String {
    let last = match at.pointer.rsplit('/').next() {
        Some(seg) if !at.pointer.is_empty() => seg.to_string(),
        _ => {
            let file = at.file.rsplit('/').next().unwrap_or(&at.file);
            file.split('.').next().unwrap_or(file).to_string()
        }
    };
    type_name(&last).unwrap_or_else(|| {
        format!(
            "Schema{}",
            type_name(&last.replace('_', " ")).unwrap_or_default()
        )
    })
}

/// The response variant for a status: `Ok`, `BadRequest`, ..., `Status418`, `Status4xx`.
pub fn status_variant(status: Status) -> String {
    match status {
        Status::Class(c) => format!("Status{c}xx"),
        Status::Code(c) => match c {
            200 => "Ok",
            201 => "Created",
            202 => "Accepted",
            204 => "NoContent",
            301 => "MovedPermanently",
            302 => "Found",
            303 => "SeeOther",
            304 => "NotModified",
            307 => "TemporaryRedirect",
            308 => "PermanentRedirect",
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            413 => "PayloadTooLarge",
            415 => "UnsupportedMediaType",
            429 => "TooManyRequests",
            500 => "InternalServerError",
            501 => "NotImplemented",
            502 => "BadGateway",
            503 => "ServiceUnavailable",
            504 => "GatewayTimeout",
            other => return format!("Status{other}"),
        }
        .to_string(),
    }
}

/// Unique names for the values of a string enum (`m.login.password` →
/// `MLoginPassword`); the catch-all variant's name is reserved.
pub fn enum_variant_names(values: &[String]) -> Vec<String> {
    let mut taken: HashSet<String> = HashSet::from(["_Custom".to_string()]);
    values
        .iter()
        .map(|v| {
            let base = match type_name(v) {
                Some(n) => n,
                None if v.is_empty() => "Empty".to_string(),
                None => format!("V{}", words(v).to_upper_camel_case()),
            };
            unique(&mut taken, base)
        })
        .collect()
}

pub(crate) fn unique(taken: &mut HashSet<String>, base: String) -> String {
    let mut name = base.clone();
    let mut n = 2;
    while !taken.insert(name.clone()) {
        name = format!("{base}{n}");
        n += 1;
    }
    name
}

/// Fields whose names collide after case conversion get numbered, in spec order.
pub fn dedupe_fields(fields: &mut [Field]) {
    let mut taken = HashSet::new();
    for f in fields {
        f.name = unique(&mut taken, f.name.clone());
    }
}

/// Qualifiers for a shared type, nearest first: the file stem (for a schema inside
/// a file), then the directories, skipping ones that say nothing (`definitions`).
pub(crate) fn qualifiers(at: &Location) -> Vec<String> {
    let mut parts: Vec<&str> = at.file.split('/').collect();
    let file = parts.pop().unwrap_or_default();
    let mut out = Vec::new();
    if !at.pointer.is_empty() {
        out.push(file.split('.').next().unwrap_or(file).to_upper_camel_case());
    }
    for dir in parts.iter().rev() {
        if matches!(*dir, "definitions" | "schema" | "schemas" | "." | "..") {
            continue;
        }
        if let Some(n) = type_name(dir) {
            out.push(n);
        }
    }
    out
}

/// Settles every name that depends on the whole API: type names (unique per
/// module), trait names (unique per crate) and untagged variant names.
pub(super) fn assign(l: &mut Lowerer) {
    // Types: group by (module, name); qualify shared ones by file and directory,
    // then number what still collides, in identity order.
    let mut groups: BTreeMap<(Module, String), Vec<usize>> = BTreeMap::new();
    for (id, t) in l.api.types.iter().enumerate() {
        groups
            .entry((t.module.clone(), t.name.clone()))
            .or_default()
            .push(id);
    }
    // Names a generated type must not take: the prelude's (a spec type called
    // `Result` would shadow it) and, in an operation's module, the request/response.
    let mut taken: HashSet<(Module, String)> = HashSet::new();
    for (module, _) in groups.keys() {
        for reserved in PRELUDE {
            taken.insert((module.clone(), reserved.to_string()));
        }
        if matches!(module, Module::Operation(..)) {
            taken.insert((module.clone(), "Request".into()));
            taken.insert((module.clone(), "Response".into()));
        }
    }
    for ((module, name), mut ids) in groups.clone() {
        let reserved = taken.contains(&(module.clone(), name.clone()));
        if ids.len() == 1 && !reserved {
            taken.insert((module, name));
            continue;
        }
        ids.sort_by(|a, b| l.api.types[*a].location.cmp(&l.api.types[*b].location));
        if module == Module::Shared {
            let quals: Vec<Vec<String>> = ids
                .iter()
                .map(|id| qualifiers(&l.api.types[*id].location))
                .collect();
            // Qualify with the nearest qualifiers that tell the group apart: a
            // directory every member shares (`defs`) says nothing.
            let depth = quals.iter().map(Vec::len).max().unwrap_or(0);
            let at = |q: &Vec<String>, j: usize| q.get(j).cloned().unwrap_or_default();
            let distinguishing: Vec<usize> = (0..depth)
                .filter(|&j| quals.iter().any(|q| at(q, j) != at(&quals[0], j)))
                .collect();
            for k in 1..=distinguishing.len() {
                let candidates: Vec<String> = quals
                    .iter()
                    .map(|q| {
                        let prefix: Vec<String> = distinguishing[..k]
                            .iter()
                            .rev()
                            .map(|&j| at(q, j))
                            .collect();
                        format!("{}{name}", prefix.concat())
                    })
                    .collect();
                let distinct: HashSet<&String> = candidates.iter().collect();
                if distinct.len() == candidates.len()
                    && candidates.iter().all(|c| {
                        !taken.contains(&(module.clone(), c.clone()))
                            && !groups.contains_key(&(module.clone(), c.clone()))
                    })
                {
                    for (id, c) in ids.iter().zip(candidates) {
                        l.api.types[*id].name = c.clone();
                        taken.insert((module.clone(), c));
                    }
                    ids.clear();
                    break;
                }
            }
        }
        // A lone shared type whose name is reserved (`Result`): its nearest
        // qualifier (`ApiResult`), as for a collision.
        if module == Module::Shared && ids.len() == 1 {
            let qualified = qualifiers(&l.api.types[ids[0]].location)
                .first()
                .map(|q| format!("{q}{name}"));
            if let Some(q) = qualified.filter(|q| {
                !taken.contains(&(module.clone(), q.clone()))
                    && !groups.contains_key(&(module.clone(), q.clone()))
            }) {
                taken.insert((module.clone(), q.clone()));
                l.api.types[ids[0]].name = q;
                continue;
            }
        }
        for id in ids {
            let mut n = 1;
            let mut candidate = name.clone();
            // In an operation's module, the operation's name qualifies best
            // (`search::Result` → `SearchResult`).
            if let Module::Operation(f, o) = &module {
                let qualified = format!(
                    "{}{name}",
                    l.api.files[*f].operations[*o].name.to_upper_camel_case()
                );
                if !taken.contains(&(module.clone(), qualified.clone())) {
                    candidate = qualified;
                }
            }
            while taken.contains(&(module.clone(), candidate.clone())) {
                n += 1;
                candidate = format!("{name}{n}");
            }
            taken.insert((module.clone(), candidate.clone()));
            l.api.types[id].name = candidate;
        }
    }

    // Traits: `RegistrationApi`, qualified by area when two served files share
    // a stem. A file the service does not serve has none (so it never
    // qualifies a served file's trait either).
    let stems: Vec<Option<String>> = l
        .api
        .files
        .iter()
        .map(|f| {
            f.served.then(|| {
                f.module
                    .last()
                    .cloned()
                    .unwrap_or_default()
                    .to_upper_camel_case()
            })
        })
        .collect();
    for i in 0..l.api.files.len() {
        let Some(stem) = &stems[i] else {
            l.api.files[i].trait_name = String::new();
            continue;
        };
        let clash = stems.iter().filter(|s| s.as_ref() == Some(stem)).count() > 1;
        let area = l.api.files[i].module[0].to_upper_camel_case();
        l.api.files[i].trait_name = if clash {
            format!("{area}{stem}Api")
        } else {
            format!("{stem}Api")
        };
    }

    // Operations: unique method names per file.
    for f in &mut l.api.files {
        let mut taken = HashSet::new();
        for op in &mut f.operations {
            op.name = unique(&mut taken, op.name.clone());
        }
    }

    // Untagged variants are named after their types.
    let type_names: Vec<String> = l.api.types.iter().map(|t| t.name.clone()).collect();
    for t in &mut l.api.types {
        if let TypeKind::Untagged { variants } | TypeKind::Tagged { variants, .. } = &mut t.kind {
            let mut taken = HashSet::new();
            for v in variants {
                let base = match &v.wire {
                    Some(w) => type_name(w).unwrap_or_else(|| "Variant".into()),
                    None => variant_name(&v.ty, &type_names),
                };
                v.name = unique(&mut taken, base);
            }
        }
    }
}

fn variant_name(ty: &Ty, type_names: &[String]) -> String {
    match ty {
        Ty::Any => "Value".into(),
        Ty::Object => "Object".into(),
        Ty::String | Ty::Pattern(_) => "String".into(),
        Ty::Id(kind) => kind.type_name().into(),
        Ty::Integer => "Integer".into(),
        Ty::Number => "Number".into(),
        Ty::Boolean => "Boolean".into(),
        Ty::Named(id) | Ty::Boxed(id) => type_names[*id].clone(),
        Ty::Option(inner) => variant_name(inner, type_names),
        Ty::Vec(inner) => format!("{}List", variant_name(inner, type_names)),
        Ty::Map(inner) => format!("{}Map", variant_name(inner, type_names)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_read_like_rust() {
        for (spec, rust) in [
            ("getAccount3PIDs", "get_account_3pids"),
            ("post3PIDs", "post_3pids"),
            ("add3PID", "add_3pid"),
            ("delete3pidFromAccount", "delete_3pid_from_account"),
            ("requestTokenTo3PIDEmail", "request_token_to_3pid_email"),
            ("requestTokenTo3PIDMSISDN", "request_token_to_3pid_msisdn"),
            (
                "requestTokenToRegisterMSISDN",
                "request_token_to_register_msisdn",
            ),
            ("requestOpenIdToken", "request_open_id_token"),
            ("getWellknown", "get_wellknown"),
        ] {
            assert_eq!(module_name(spec), rust, "{spec}");
        }
    }

    #[test]
    fn field_names_escape_keywords_and_digits() {
        assert_eq!(field_name("type"), "type_");
        assert_eq!(field_name("m.change_password"), "m_change_password");
        assert_eq!(field_name("3pid"), "_3pid");
        assert_eq!(field_name("Content-Disposition"), "content_disposition");
    }

    #[test]
    fn enum_variants_are_unique_and_keep_the_catch_all_free() {
        let names = enum_variant_names(&[
            "m.login.password".into(),
            "m_login_password".into(),
            "".into(),
            "_Custom".into(),
        ]);
        assert_eq!(
            names,
            ["MLoginPassword", "MLoginPassword2", "Empty", "Custom"]
        );
    }
}
