//! A generator that turns Matrix OpenAPI 3.1 YAML into a Rust crate: typed
//! request/response types with their client side, one route trait per API file
//! the service serves and a hyper router (a file with `x-served: false` is an
//! API the service calls: client side only, see [`ir::ApiFile::served`]).
//!
//! The pipeline, one module each:
//! [`load`] (YAML, `$ref` resolution) → [`lower`] (the [`ir`]) → [`emit`] (tokens
//! with `quote`) → [`format`] (prettyplease) → files, returned as a map from path to
//! contents so callers decide whether to write them or compare them.

pub mod bundle;
pub mod diag;
pub mod diff;
pub mod emit;
pub mod framework;
pub mod ir;
pub mod load;
pub mod lower;
pub mod manifest;
pub mod settings;
pub mod versions;

pub use diag::{Diagnostic, Error, Location};
pub use manifest::Manifest;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use emit::{Options, Runtime, RUNTIME_FILES};

/// What one generation run produced.
#[derive(Debug)]
pub struct Output {
    /// Relative path → file contents.
    pub files: BTreeMap<String, String>,
    pub api_files: usize,
    pub operations: usize,
    /// Of `operations`, those of files with `x-served: false`: generated with
    /// their client side, but not routed.
    pub client_only_operations: usize,
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
    let location = || Location::new(dir.display().to_string(), "");
    walk(dir, &mut files)
        .map_err(|e| Error::at(location(), format!("cannot read spec directory: {e}")))?;
    files.sort();
    if files.is_empty() {
        return Err(Error::at(
            location(),
            "no API files (YAML with a top-level `paths:`) found",
        ));
    }
    Ok(files)
}

/// A spec lowered to the IR, with its manifest when it has one.
pub struct Spec {
    pub api: ir::Api,
    pub manifest: Option<Manifest>,
}

/// Loads and lowers a spec: a directory (every API file under it, and its
/// [`manifest`] if present) or a single API file. File names in messages are
/// relative to the directory's parent (`api/client-server/...`). The API's
/// release is the manifest's, or else inferred from its version annotations.
pub fn load_spec(spec: &Path) -> Result<Spec, Error> {
    let canon = spec.canonicalize().unwrap_or_else(|_| spec.to_path_buf());
    let single_file = canon.is_file();
    let (files, dir) = if single_file {
        let dir = canon.parent().unwrap_or(&canon).to_path_buf();
        (vec![canon.clone()], dir)
    } else {
        (discover(spec)?, canon.clone())
    };
    let root = dir.parent().unwrap_or(&dir);
    let mut api = lower::lower(root, &files)?;
    let display = |file: &str| dir.strip_prefix(root).unwrap_or(&dir).join(file);
    let settings_file = display(settings::FILE).to_string_lossy().into_owned();
    settings::Settings::load(&dir, &settings_file)?.apply(&mut api, &settings_file)?;
    let manifest = if single_file {
        None
    } else {
        Manifest::load(&dir, &display(manifest::FILE).to_string_lossy())?
    };
    api.release = match &manifest {
        Some(m) => versions::Version::parse(&m.release).map(versions::Release::Pinned),
        None => versions::newest_annotation(&api).map(versions::Release::Inferred),
    };
    Ok(Spec { api, manifest })
}

/// Generates a crate from every API file under `spec_dir`. File names in messages
/// and headers are relative to the spec directory's parent.
pub fn generate(spec_dir: &Path, options: &Options) -> Result<Output, Error> {
    let api = load_spec(spec_dir)?.api;
    let files = emit::emit(&api, options)?;
    Ok(Output {
        files,
        api_files: api.files.len(),
        operations: api.files.iter().map(|f| f.operations.len()).sum(),
        client_only_operations: api
            .files
            .iter()
            .filter(|f| !f.served)
            .map(|f| f.operations.len())
            .sum(),
        types: api.types.len(),
        warnings: api.warnings,
    })
}
