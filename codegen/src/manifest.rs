//! `upstream.yaml` in a spec directory: the Matrix release the description pins,
//! and the deliberate deviations from that release that `cargo xtask drift`
//! accepts. Optional: a spec without one (e.g. an upstream release itself) has its
//! release inferred from its version annotations.

use std::path::Path;

use serde::Deserialize;

use crate::diag::{Error, Location};
use crate::diff::ChangeKind;
use crate::versions::Version;

/// The manifest's file name inside the spec directory.
pub const FILE: &str = "upstream.yaml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The pinned release, e.g. `v1.19`.
    pub release: String,
    #[serde(default)]
    pub deviations: Vec<Deviation>,
}

/// One accepted difference from upstream, matched against the semantic diff
/// (upstream → this spec) by operation, place and kind of change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deviation {
    /// `METHOD /full/path`, or `*` for every operation.
    pub operation: String,
    /// The change's place, as the diff reports it (e.g. `request.erase`).
    pub at: String,
    /// The change's kind, as `--json` names it (e.g. `default-changed`).
    pub change: String,
    /// Why the project differs on purpose.
    pub reason: String,
}

impl Manifest {
    /// Reads `dir/upstream.yaml`; `Ok(None)` when there is none.
    pub fn load(dir: &Path, display: &str) -> Result<Option<Manifest>, Error> {
        let path = dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(problem(display, "", format!("cannot read: {e}"))),
        };
        let manifest: Manifest = serde_norway::from_str(&text)
            .map_err(|e| problem(display, "", format!("invalid manifest: {e}")))?;
        if Version::parse(&manifest.release).is_none() {
            return Err(problem(
                display,
                "/release",
                format!("`{}` is not a release such as `v1.19`", manifest.release),
            ));
        }
        for (i, d) in manifest.deviations.iter().enumerate() {
            let at = format!("/deviations/{i}");
            if ChangeKind::parse(&d.change).is_none() {
                let known: Vec<&str> = ChangeKind::ALL.iter().map(|k| k.as_str()).collect();
                return Err(problem(
                    display,
                    &format!("{at}/change"),
                    format!(
                        "unknown change `{}` (one of: {})",
                        d.change,
                        known.join(", ")
                    ),
                ));
            }
            if d.reason.trim().is_empty() {
                return Err(problem(
                    display,
                    &format!("{at}/reason"),
                    "a deviation needs its reason".into(),
                ));
            }
        }
        Ok(Some(manifest))
    }
}

fn problem(file: &str, pointer: &str, message: String) -> Error {
    Error::at(Location::new(file, pointer), message)
}
