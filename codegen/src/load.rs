//! Loading: reads OpenAPI/JSON-Schema YAML files and resolves `$ref`s across files
//! and JSON-pointer fragments.
//!
//! A schema's identity is its file plus JSON pointer ([`Location`]). Files are named
//! relative to a display root (the spec directory's parent, so messages read
//! `api/client-server/registration.yaml#/paths/...`), with `..` when a reference
//! leaves it; the name is derived from the canonical path, so one file has one name
//! however it was reached.

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use serde_json::Value;

use crate::diag::{Diagnostics, Location};

pub struct Loader {
    display_root: PathBuf,
    docs: BTreeMap<String, Option<Rc<Value>>>,
    paths: BTreeMap<String, PathBuf>,
    pub diags: Diagnostics,
}

impl Loader {
    pub fn new(display_root: &Path) -> Self {
        let display_root = display_root
            .canonicalize()
            .unwrap_or_else(|_| display_root.to_path_buf());
        Loader {
            display_root,
            docs: BTreeMap::new(),
            paths: BTreeMap::new(),
            diags: Diagnostics::default(),
        }
    }

    /// The display name of a file on disk.
    pub fn name_of(&self, path: &Path) -> String {
        let canon = path.canonicalize().unwrap_or_else(|_| normalize(path));
        relative(&self.display_root, &canon)
    }

    /// Loads a file (once) and returns its name and parsed content; a missing or
    /// unparsable file is recorded as a diagnostic against `referrer`.
    pub fn load(
        &mut self,
        path: &Path,
        referrer: Option<&Location>,
    ) -> (String, Option<Rc<Value>>) {
        let name = self.name_of(path);
        if let Some(doc) = self.docs.get(&name) {
            return (name, doc.clone());
        }
        let here = Location::new(name.clone(), "");
        let doc = match std::fs::read_to_string(path) {
            Err(e) => {
                let at = referrer.unwrap_or(&here);
                self.diags.push(at, format!("cannot read `{name}`: {e}"));
                None
            }
            Ok(text) => match serde_norway::from_str::<Value>(&text) {
                Ok(v) => Some(Rc::new(v)),
                Err(e) => {
                    let line = e
                        .location()
                        .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
                        .unwrap_or_default();
                    self.diags.push(&here, format!("invalid YAML{line}: {e}"));
                    None
                }
            },
        };
        self.paths.insert(name.clone(), path.to_path_buf());
        self.docs.insert(name.clone(), doc.clone());
        (name, doc)
    }

    /// The value at a location, if its file is loaded and the pointer exists.
    pub fn get(&self, at: &Location) -> Option<Value> {
        let doc = self.docs.get(&at.file)?.as_ref()?;
        doc.pointer(&at.pointer).cloned()
    }

    /// Resolves a `$ref` string written at `from` to the location it names.
    pub fn resolve_ref(&mut self, from: &Location, reference: &str) -> Option<Location> {
        let (file_part, pointer) = match reference.split_once('#') {
            Some((f, p)) => (f, p.to_string()),
            None => (reference, String::new()),
        };
        if !pointer.is_empty() && !pointer.starts_with('/') {
            self.diags.push(
                from,
                format!("`$ref: {reference}`: only JSON-pointer fragments (`#/...`) are supported"),
            );
            return None;
        }
        let file = if file_part.is_empty() {
            from.file.clone()
        } else {
            let base = self.paths.get(&from.file).cloned().unwrap_or_default();
            let target = base.parent().unwrap_or(Path::new(".")).join(file_part);
            let (name, doc) = self.load(&target, Some(from));
            doc?;
            name
        };
        let target = Location::new(file, pointer);
        if self.get(&target).is_none() {
            self.diags.push(
                from,
                format!("`$ref: {reference}` points at nothing (no `{target}`)"),
            );
            return None;
        }
        Some(target)
    }

    /// Follows a chain of `$ref`s starting at `at` until a value that is not a bare
    /// reference. Returns the final location and value; a cycle of references that
    /// never reaches a value is a diagnostic.
    pub fn deref(&mut self, at: &Location) -> Option<(Location, Value)> {
        let mut seen = HashSet::new();
        let mut here = at.clone();
        loop {
            let value = self.get(&here)?;
            let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
                return Some((here, value));
            };
            if !seen.insert(here.clone()) {
                self.diags
                    .push(at, "`$ref` cycle: the references never reach a value");
                return None;
            }
            here = self.resolve_ref(&here, reference)?;
        }
    }
}

/// Removes `.` and `..` components without touching the file system (for paths that
/// do not exist and so cannot be canonicalised).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `target` relative to `base`, with `/` separators and `..` where needed.
fn relative(base: &Path, target: &Path) -> String {
    let base: Vec<_> = base.components().collect();
    let target: Vec<_> = target.components().collect();
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = Vec::new();
    for _ in common..base.len() {
        parts.push("..".into());
    }
    for c in &target[common..] {
        parts.push(c.as_os_str().to_string_lossy().into_owned());
    }
    parts.join("/")
}

impl Loader {
    /// Names of every file read so far that parsed.
    pub fn file_names(&self) -> Vec<String> {
        self.docs
            .iter()
            .filter(|(_, d)| d.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }
}
