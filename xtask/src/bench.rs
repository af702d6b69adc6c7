//! `cargo xtask bench`: how long regeneration takes (api/ and all of upstream
//! v1.19), how long the semantic diff takes (all of upstream v1.15 → v1.19, and
//! the drift check's upstream → api/), and how long the generated crate takes to
//! rebuild alone after an edit, the number that matters in an implementer's
//! edit-compile loop. Medians of
//! repeated runs; generation is single-threaded, so it is a one-core figure.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use matrix_codegen::diff::{diff, Scope};
use matrix_codegen::{generate, load_spec, Options, Runtime};

use crate::codegen::project_root;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time_generation(spec: &Path, runs: usize) -> Result<(Duration, usize, usize), String> {
    let options = Options {
        crate_name: "bench".into(),
        standalone: true,
        runtime: Runtime::Vendored,
    };
    let mut samples = Vec::new();
    let mut sizes = (0, 0);
    for _ in 0..runs {
        let start = Instant::now();
        let out = generate(spec, &options).map_err(|e| e.to_string())?;
        samples.push(start.elapsed());
        sizes = (
            out.operations,
            out.files.values().map(|f| f.lines().count()).sum(),
        );
    }
    Ok((median(samples), sizes.0, sizes.1))
}

fn time_diff(old: &Path, new: &Path, scope: Scope, runs: usize) -> Result<Duration, String> {
    let mut samples = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let old = load_spec(old).map_err(|e| e.to_string())?;
        let new = load_spec(new).map_err(|e| e.to_string())?;
        std::hint::black_box(diff(&old.api, &new.api, scope));
        samples.push(start.elapsed());
    }
    Ok(median(samples))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub fn bench() -> Result<(), String> {
    if cfg!(debug_assertions) {
        eprintln!("note: xtask is a debug build; for representative figures run `cargo run --release -p xtask -- bench`");
    }
    let root = project_root();
    let (t, ops, lines) = time_generation(&root.join("api"), 21)?;
    println!(
        "regenerate api/:              {} (median of 21; {ops} operations, {lines} lines)",
        ms(t)
    );
    let upstream = root.join("../shared/matrix-spec/v1.19/data/api");
    if upstream.is_dir() {
        let (t, ops, lines) = time_generation(&upstream, 7)?;
        println!(
            "regenerate upstream v1.19:    {} (median of 7; {ops} operations, {lines} lines)",
            ms(t)
        );
        let v15 = root.join("../shared/matrix-spec/v1.15/data/api");
        let t = time_diff(&v15, &upstream, Scope::All, 7)?;
        println!(
            "diff upstream v1.15 -> v1.19: {} (median of 7; load, lower and compare both)",
            ms(t)
        );
        let t = time_diff(&upstream, &root.join("api"), Scope::NewOperations, 7)?;
        println!("drift upstream v1.19 -> api/: {} (median of 7)", ms(t));
    } else {
        println!("upstream v1.19:               skipped (../shared/matrix-spec/v1.19 not found)");
    }

    // Crate-only rebuild: dependencies are built once, then only generated/ is
    // recompiled after its sources change.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = |what: &str| -> Result<Duration, String> {
        let start = Instant::now();
        let status = Command::new(&cargo)
            .args(["build", "--quiet", "-p", "matrix-api"])
            .current_dir(&root)
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build -p matrix-api failed ({what})"));
        }
        Ok(start.elapsed())
    };
    build("warm-up")?;
    let lib = root.join("generated/src/lib.rs");
    let mut samples = Vec::new();
    for _ in 0..3 {
        let text = std::fs::read_to_string(&lib).map_err(|e| e.to_string())?;
        // Touching the file is not enough for cargo's fingerprint on all file
        // systems; rewriting it with a new mtime is.
        std::fs::write(&lib, text).map_err(|e| e.to_string())?;
        samples.push(build("rebuild")?);
    }
    println!(
        "rebuild generated/ alone:     {} (median of 3, debug, dependencies built)",
        ms(median(samples))
    );
    Ok(())
}
