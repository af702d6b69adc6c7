//! `cargo xtask diff OLD NEW` (the semantic API diff on the command line) and
//! `cargo xtask drift` (api/ against the upstream release it pins, minus the
//! deviations api/upstream.yaml explains, and minus the operations of files
//! api/ only calls, `x-served: false`, that the release does not describe).
//!
//! Exit codes: 0 no (failing) changes, 1 changes, 2 the inputs could not be read.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use matrix_codegen::diff::{self, ChangeKind, Impact, Report, Scope};
use matrix_codegen::{load_spec, manifest, Spec};

use crate::codegen::project_root;

pub const USAGE: &str = "\
  cargo xtask diff OLD NEW [--json|--markdown] [--fail-on any|breaking|breaking-for-clients|breaking-for-servers]
                                                  what changed between two spec directories (or API files), per operation
  cargo xtask drift [--api DIR] [--upstream DIR] [--json|--markdown]
                                                  fail when api/ differs from its pinned upstream release beyond api/upstream.yaml";

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Text,
    Json,
    Markdown,
}

#[derive(Clone, Copy, PartialEq)]
enum FailOn {
    Any,
    Breaking,
    BreakingForClients,
    BreakingForServers,
}

const ERROR: u8 = 2;

pub fn diff_command(args: &[String]) -> ExitCode {
    match parse_diff(args) {
        Ok((old, new, format, fail_on)) => run_diff(&old, &new, format, fail_on),
        Err(msg) => fail(&format!("{msg}\nusage:\n{USAGE}")),
    }
}

pub fn drift_command(args: &[String]) -> ExitCode {
    let mut api = project_root().join("api");
    let mut upstream = None;
    let mut format = Format::Text;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if let Some(f) = format_flag(arg) {
            format = f;
            continue;
        }
        match arg.as_str() {
            "--api" | "--upstream" => match it.next() {
                Some(dir) if arg == "--api" => api = PathBuf::from(dir),
                Some(dir) => upstream = Some(PathBuf::from(dir)),
                None => return fail(&format!("{arg} needs a directory\nusage:\n{USAGE}")),
            },
            other => return fail(&format!("unknown option {other}\nusage:\n{USAGE}")),
        }
    }
    match drift(&api, upstream, format) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(msg) => fail(&msg),
    }
}

fn format_flag(arg: &str) -> Option<Format> {
    match arg {
        "--json" => Some(Format::Json),
        "--markdown" => Some(Format::Markdown),
        _ => None,
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("{msg}");
    ExitCode::from(ERROR)
}

fn parse_diff(args: &[String]) -> Result<(PathBuf, PathBuf, Format, FailOn), String> {
    let mut paths = Vec::new();
    let mut format = Format::Text;
    let mut fail_on = FailOn::Any;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if let Some(f) = format_flag(arg) {
            format = f;
            continue;
        }
        match arg.as_str() {
            "--fail-on" => {
                fail_on = match it.next().map(String::as_str) {
                    Some("any") => FailOn::Any,
                    Some("breaking") => FailOn::Breaking,
                    Some("breaking-for-clients") => FailOn::BreakingForClients,
                    Some("breaking-for-servers") => FailOn::BreakingForServers,
                    other => return Err(format!("--fail-on: unknown value {other:?}")),
                }
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            path => paths.push(PathBuf::from(path)),
        }
    }
    match <[PathBuf; 2]>::try_from(paths) {
        Ok([old, new]) => Ok((old, new, format, fail_on)),
        Err(_) => Err("diff needs two specs: OLD and NEW".into()),
    }
}

fn run_diff(old: &Path, new: &Path, format: Format, fail_on: FailOn) -> ExitCode {
    let (old, new) = match (load(old), load(new)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) | (_, Err(e)) => return fail(&e),
    };
    let report = diff::diff(&old.api, &new.api, Scope::All);
    print(&report, format);
    let failing = report.changes().any(|(_, c)| match fail_on {
        FailOn::Any => true,
        FailOn::Breaking => c.breaking(),
        FailOn::BreakingForClients => c.clients == Impact::Breaking,
        FailOn::BreakingForServers => c.servers == Impact::Breaking,
    });
    if failing {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Loads a spec, printing its warnings; errors come back one per line.
fn load(path: &Path) -> Result<Spec, String> {
    if !path.exists() {
        return Err(format!(
            "{}: no such spec directory or file",
            path.display()
        ));
    }
    let spec = load_spec(path).map_err(|e| e.to_string())?;
    for w in &spec.api.warnings {
        eprintln!("{w}");
    }
    Ok(spec)
}

fn print(report: &Report, format: Format) {
    match format {
        Format::Text => print!("{}", report.to_text()),
        Format::Markdown => print!("{}", report.to_markdown()),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
        ),
    }
}

/// Compares api/ (or `api`) with its pinned release; `Ok(false)` when they
/// differ beyond the manifest's deviations (or the manifest lists a deviation
/// that no longer exists). A client-only operation (`x-served: false`) the
/// release does not have is not compared (nor may a deviation list it).
fn drift(api: &Path, upstream: Option<PathBuf>, format: Format) -> Result<bool, String> {
    let root = project_root();
    let ours = load(api)?;
    let name = api
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "api".into());
    let manifest_name = format!("{name}/{}", manifest::FILE);
    let manifest = ours.manifest.as_ref().ok_or_else(|| {
        format!("{manifest_name}: missing: it pins the upstream release {name}/ describes")
    })?;
    let release = &manifest.release;
    let upstream = upstream.unwrap_or_else(|| {
        root.join("../shared/matrix-spec")
            .join(release)
            .join("data/api")
    });
    if !upstream.is_dir() {
        return Err(format!(
            "{}: upstream {release} not found (pass --upstream DIR with the release's data/api)",
            upstream.display()
        ));
    }
    // Upstream's own warnings concern files api/ does not describe.
    let theirs = load_spec(&upstream).map_err(|e| e.to_string())?;
    let mut report = diff::diff(&theirs.api, &ours.api, Scope::NewOperations);

    // An operation of a file api/ calls but does not serve (`x-served: false`)
    // that upstream does not describe is another party's API (Synapse's
    // `/_synapse/mas/*`), not a deviation from the Matrix release: it is left
    // out rather than listed in the manifest. One that upstream does describe
    // is compared like any other.
    let client_only: HashSet<String> = ours
        .api
        .files
        .iter()
        .filter(|f| !f.served)
        .flat_map(|f| {
            f.operations
                .iter()
                .map(move |op| format!("{} {}{}", op.method, f.base_path, op.path))
        })
        .collect();
    let mut not_compared = 0usize;
    report.retain(|key, change| {
        let elsewhere = change.kind == ChangeKind::OperationAdded && client_only.contains(key);
        not_compared += usize::from(elsewhere);
        !elsewhere
    });

    let mut used = vec![0usize; manifest.deviations.len()];
    report.retain(|key, change| {
        let explained = manifest.deviations.iter().position(|d| {
            (d.operation == "*" || d.operation == key)
                && d.at == change.at
                && ChangeKind::parse(&d.change) == Some(change.kind)
        });
        if let Some(i) = explained {
            used[i] += 1;
        }
        explained.is_none()
    });
    let stale: Vec<String> = used
        .iter()
        .enumerate()
        .filter(|(_, n)| **n == 0)
        .map(|(i, _)| {
            let d = &manifest.deviations[i];
            format!(
                "{manifest_name}#/deviations/{i}: `{}` at `{}` in {} matches no difference from upstream {release}: remove it",
                d.change, d.at, d.operation
            )
        })
        .collect();
    let operations: usize = ours
        .api
        .files
        .iter()
        .map(|f| f.operations.len())
        .sum::<usize>()
        - not_compared;
    let not_compared = match not_compared {
        0 => String::new(),
        n => format!(
            "; {n} operations of files it calls but does not serve (`x-served: false`) \
             are not in upstream {release} and were not compared"
        ),
    };
    if report.is_empty() && stale.is_empty() {
        println!(
            "{name}/ matches upstream {release} in all {operations} operations, except {} differences explained by the {} deviations in {manifest_name}{not_compared}",
            used.iter().sum::<usize>(),
            manifest.deviations.len(),
        );
        return Ok(true);
    }
    if !report.is_empty() {
        print(&report, format);
        eprintln!(
            "{name}/ differs from upstream {release} where {manifest_name} does not explain it: \
             change {name}/ to match, or add a deviation with its reason"
        );
    }
    for s in &stale {
        eprintln!("{s}");
    }
    Ok(false)
}
