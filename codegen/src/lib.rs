//! A generator that turns Matrix OpenAPI 3.1 YAML into a Rust crate: typed
//! request/response types, one route trait per API file and a hyper router.
//!
//! The pipeline, one module each:
//! [`load`] (YAML, `$ref` resolution) → [`lower`] (the [`ir`]) → [`emit`] (tokens
//! with `quote`) → [`format`] (prettyplease) → files, returned as a map from path to
//! contents so callers decide whether to write them or compare them.

pub mod diag;
pub mod ir;
pub mod load;
pub mod lower;

pub use diag::{Diagnostic, Error, Location};
pub mod emit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use emit::Options;

/// What one generation run produced.
#[derive(Debug)]
pub struct Output {
    /// Relative path → file contents.
    pub files: BTreeMap<String, String>,
    pub api_files: usize,
    pub operations: usize,
    pub types: usize,
    /// Spec problems worked around (generation still succeeded).
    pub warnings: Vec<Diagnostic>,
}

/// The API files (OpenAPI documents with `paths`) under `dir`, sorted; definition
/// files are reached through `$ref`s instead.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let text = std::fs::read_to_string(&path)?;
                if text.lines().any(|l| l.starts_with("paths:")) {
                    out.push(path);
                }
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files).map_err(|e| {
        Error(vec![Diagnostic {
            location: Location::new(dir.display().to_string(), ""),
            message: format!("cannot read spec directory: {e}"),
            warning: false,
        }])
    })?;
    files.sort();
    if files.is_empty() {
        return Err(Error(vec![Diagnostic {
            location: Location::new(dir.display().to_string(), ""),
            message: "no API files (YAML with a top-level `paths:`) found".into(),
            warning: false,
        }]));
    }
    Ok(files)
}

/// Generates a crate from every API file under `spec_dir`. File names in messages
/// and headers are relative to the spec directory's parent.
pub fn generate(spec_dir: &Path, options: &Options) -> Result<Output, Error> {
    let files = discover(spec_dir)?;
    let canon = spec_dir
        .canonicalize()
        .unwrap_or_else(|_| spec_dir.to_path_buf());
    let root = canon.parent().unwrap_or(&canon);
    let api = lower::lower(root, &files)?;
    let files = emit::emit(&api, options)?;
    Ok(Output {
        files,
        api_files: api.files.len(),
        operations: api.files.iter().map(|f| f.operations.len()).sum(),
        types: api.types.len(),
        warnings: api.warnings,
    })
}
