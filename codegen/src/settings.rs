//! `codegen.yaml` in a spec directory: the generator's settings for that spec,
//! as typify keeps them in its settings rather than in special cases in the
//! code. Today one table: `rename`, from a generated type or route-trait name
//! to the name to use instead (a file-stem name such as `Full` for
//! `definitions/wellknown/full.yaml` says nothing). Every entry must match a
//! name the generator chose, so the table cannot go stale, and the new name
//! must be free in its module.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::diag::{Error, Location};
use crate::ir::Api;
use crate::lower::names;

/// The settings' file name inside the spec directory.
pub const FILE: &str = "codegen.yaml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Generated name → name to use (types and route traits).
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
}

impl Settings {
    /// Reads `dir/codegen.yaml`; the defaults when there is none.
    pub fn load(dir: &Path, display: &str) -> Result<Settings, Error> {
        let text = match std::fs::read_to_string(dir.join(FILE)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(e) => return Err(problem(display, "", format!("cannot read: {e}"))),
        };
        serde_norway::from_str(&text)
            .map_err(|e| problem(display, "", format!("invalid settings: {e}")))
    }

    /// Applies the settings to a lowered API.
    pub fn apply(&self, api: &mut Api, display: &str) -> Result<(), Error> {
        for (from, to) in &self.rename {
            let at = format!("/rename/{from}");
            if names::type_name(to).as_deref() != Some(to.as_str()) {
                return Err(problem(
                    display,
                    &at,
                    format!("`{to}` is not a type name (UpperCamelCase, ASCII)"),
                ));
            }
            let types: Vec<usize> = (0..api.types.len())
                .filter(|&id| api.types[id].name == *from)
                .collect();
            // A file the service does not serve has no route trait to rename.
            let traits: Vec<usize> = (0..api.files.len())
                .filter(|&f| api.files[f].served && api.files[f].trait_name == *from)
                .collect();
            if types.is_empty() && traits.is_empty() {
                return Err(problem(
                    display,
                    &at,
                    format!("no generated type or route trait is named `{from}`"),
                ));
            }
            for id in types {
                let module = api.types[id].module.clone();
                if api
                    .types
                    .iter()
                    .any(|t| t.module == module && t.name == *to)
                {
                    return Err(problem(
                        display,
                        &at,
                        format!("`{to}` is taken in the module of `{from}`"),
                    ));
                }
                api.types[id].name = to.clone();
            }
            let trait_names: HashSet<&str> =
                api.files.iter().map(|f| f.trait_name.as_str()).collect();
            if !traits.is_empty() && trait_names.contains(to.as_str()) {
                return Err(problem(
                    display,
                    &at,
                    format!("`{to}` is already a route trait"),
                ));
            }
            for f in traits {
                api.files[f].trait_name = to.clone();
            }
        }
        Ok(())
    }
}

fn problem(file: &str, pointer: &str, message: String) -> Error {
    Error::at(Location::new(file, pointer), message)
}
