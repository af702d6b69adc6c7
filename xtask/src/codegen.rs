//! Regeneration and the staleness check, shared by the command line and the test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use matrix_codegen::{generate, Options, Output, Runtime};

pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_path_buf()
}

/// The crate name of the committed `generated/` crate.
const CRATE_NAME: &str = "matrix-api";

fn workspace_options() -> Options {
    Options {
        crate_name: CRATE_NAME.into(),
        standalone: false,
        // generated/ sits beside the generator: it uses the runtime's one source.
        runtime: Runtime::Path("../codegen/runtime".into()),
    }
}

fn run(spec: &Path, options: &Options) -> Result<(Output, f64), String> {
    let start = Instant::now();
    let out = generate(spec, options).map_err(|e| e.to_string())?;
    for w in &out.warnings {
        eprintln!("{w}");
    }
    Ok((out, start.elapsed().as_secs_f64() * 1000.0))
}

/// Writes the generated files under `dir`, removing generated files that are no
/// longer produced (anything under `src/` or `tests/` that is not in the output).
fn write_tree(dir: &Path, files: &BTreeMap<String, String>) -> Result<(), String> {
    for (existing, _) in stale_files(dir, files) {
        std::fs::remove_file(&existing).map_err(|e| format!("{}: {e}", existing.display()))?;
    }
    prune_empty_dirs(dir);
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Files under the generated `src/` and `tests/` that the output no longer
/// contains, with their paths relative to `dir`.
fn stale_files(dir: &Path, files: &BTreeMap<String, String>) -> Vec<(PathBuf, String)> {
    ["src", "tests"]
        .iter()
        .flat_map(|sub| list(&dir.join(sub)))
        .map(|path| {
            let rel = relative(dir, &path);
            (path, rel)
        })
        .filter(|(_, rel)| !files.contains_key(rel))
        .collect()
}

/// Removes directories left empty by removed files (deepest first).
fn prune_empty_dirs(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                prune_empty_dirs(&p);
                let _ = std::fs::remove_dir(&p); // fails unless empty, as intended
            }
        }
    }
}

fn list(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(list(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn relative(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// What `regenerate` and `check` work on: `api/` into `generated/` (the default),
/// or any spec directory into a standalone crate named after its out directory.
struct Target {
    spec: PathBuf,
    out: PathBuf,
    options: Options,
    /// How messages name the out directory and the spec (`generated/`, `api/`).
    out_label: String,
    spec_label: String,
}

/// `dir/` as given on the command line.
fn dir_label(dir: &Path) -> String {
    format!("{}/", dir.display().to_string().trim_end_matches('/'))
}

fn target(spec: Option<PathBuf>, out: Option<PathBuf>) -> Target {
    let root = project_root();
    match (spec, out) {
        (Some(spec), Some(out)) => {
            let name = out
                .file_name()
                .map(|n| {
                    n.to_string_lossy()
                        .to_lowercase()
                        .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
                })
                .filter(|n| n.starts_with(|c: char| c.is_ascii_alphabetic()))
                .unwrap_or_else(|| "matrix-api".into());
            Target {
                out_label: dir_label(&out),
                spec_label: dir_label(&spec),
                spec,
                out,
                options: Options {
                    crate_name: name,
                    standalone: true,
                    runtime: Runtime::Vendored,
                },
            }
        }
        _ => Target {
            spec: root.join("api"),
            out: root.join("generated"),
            options: workspace_options(),
            out_label: "generated/".into(),
            spec_label: "api/".into(),
        },
    }
}

pub fn regenerate(spec: Option<PathBuf>, out: Option<PathBuf>) -> Result<(), String> {
    let t = target(spec, out);
    let (output, ms) = run(&t.spec, &t.options)?;
    write_tree(&t.out, &output.files)?;
    // Operations of `x-served: false` files are generated but not routed.
    let client_only = match output.client_only_operations {
        0 => String::new(),
        n => format!(" ({n} of them client-only)"),
    };
    println!(
        "regenerated {}: {} API files, {} operations{client_only}, {} types, {} output files in {ms:.0} ms",
        t.out.display(),
        output.api_files,
        output.operations,
        output.types,
        output.files.len()
    );
    Ok(())
}

/// Compares the out directory (`generated/`) with what the spec (`api/`) produces.
/// Like rust-analyzer's `ensure_file_contents`, a stale tree is then rewritten
/// (differing and missing files written, left-over ones removed) and the check
/// still fails, with a report of every file it changed: rerun to confirm, review
/// and commit.
pub fn check(spec: Option<PathBuf>, out: Option<PathBuf>) -> Result<(), String> {
    let t = target(spec, out);
    let (output, _) = run(&t.spec, &t.options)?;
    let (dir, label) = (&t.out, &t.out_label);
    let mut problems = Vec::new();
    for (rel, expected) in &output.files {
        match std::fs::read_to_string(dir.join(rel)) {
            Ok(actual) if actual.replace("\r\n", "\n") == *expected => {}
            Ok(actual) => problems.push(format!(
                "{label}{rel} differs:\n{}",
                diff(expected, &actual)
            )),
            Err(_) => problems.push(format!("{label}{rel} is missing")),
        }
    }
    for (_, rel) in stale_files(dir, &output.files) {
        problems.push(format!("{label}{rel} is no longer generated"));
    }
    if problems.is_empty() {
        println!(
            "{label} matches {} ({} files)",
            t.spec_label,
            output.files.len()
        );
        return Ok(());
    }
    let updated = match write_tree(dir, &output.files) {
        Ok(()) => format!(
            "{label} was out of date with {}: it is updated now; review and commit the changes",
            t.spec_label
        ),
        Err(e) => format!(
            "{label} is out of date with {} and could not be updated ({e}): run `cargo xtask regenerate`",
            t.spec_label
        ),
    };
    Err(format!("{}\n\n{updated}", problems.join("\n")))
}

/// A short line diff: the first differing region with a little context (enough to
/// see what drifted without printing whole files).
fn diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let start = e.iter().zip(&a).take_while(|(x, y)| x == y).count();
    let (mut ee, mut ae) = (e.len(), a.len());
    while ee > start && ae > start && e[ee - 1] == a[ae - 1] {
        ee -= 1;
        ae -= 1;
    }
    let mut out = format!("@@ line {} @@\n", start + 1);
    let limit = 40;
    for line in a[start..ae].iter().take(limit) {
        out.push_str(&format!("-{line}\n"));
    }
    for line in e[start..ee].iter().take(limit) {
        out.push_str(&format!("+{line}\n"));
    }
    if ae - start > limit || ee - start > limit {
        out.push_str("... (more)\n");
    }
    out.push_str("(- committed, + regenerated)");
    out
}

#[cfg(test)]
mod tests {
    /// `cargo test` fails when generated/ has drifted from api/, like `cargo xtask
    /// check` (and, like it, updates generated/ for the next run).
    #[test]
    fn generated_code_matches_api() {
        if let Err(report) = super::check(None, None) {
            panic!("{report}");
        }
    }
}
