//! `cargo xtask`: regenerates `generated/` from `api/` and checks that the committed
//! code still matches (rust-analyzer's pattern: generated code is committed, and
//! drift is a failing check, not a surprise), and compares specs semantically.

mod apidiff;
mod bench;
mod codegen;
mod loadbench;
mod openapi;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage:
  cargo xtask regenerate [--spec DIR --out DIR]   write generated/ from api/ (or any spec dir into a standalone crate)
  cargo xtask check [--spec DIR --out DIR]        fail with a diff when generated/ (or DIR) differs from what api/ (or the spec) produces, and update it
  cargo xtask openapi [--spec DIR] [--out FILE]   bundle api/ into one OpenAPI 3.1 document, with the router's own answers
  cargo xtask bench                               time regeneration (api/, upstream v1.19) and generated/'s rebuild
  cargo run --release -p xtask -- loadbench [OPTIONS]
                                                  load-test the release server against a bare hyper server
                                                  (--scale-out: 1 vs 2 processes on PostgreSQL; --cold-start)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        // These two have their own exit codes (1 changes, 2 unreadable input).
        Some("diff") => return apidiff::diff_command(&args[1..]),
        Some("drift") => return apidiff::drift_command(&args[1..]),
        Some("regenerate") => {
            parse_spec_out(&args[1..]).and_then(|(spec, out)| codegen::regenerate(spec, out))
        }
        Some("check") => {
            parse_spec_out(&args[1..]).and_then(|(spec, out)| codegen::check(spec, out))
        }
        Some("openapi") => openapi::openapi(&args[1..]),
        Some("bench") if args.len() == 1 => bench::bench(),
        Some("loadbench") => loadbench::loadbench(&args[1..]),
        // The baseline process `loadbench` starts; not meant to be run by hand.
        Some("bare-server") if args.len() == 1 => loadbench::bare_server(),
        _ => Err(format!(
            "{USAGE}{}\n{}\n{}",
            openapi::USAGE,
            apidiff::USAGE,
            loadbench::USAGE
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

fn parse_spec_out(args: &[String]) -> Result<(Option<PathBuf>, Option<PathBuf>), String> {
    let (mut spec, mut out) = (None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--spec" => spec = Some(PathBuf::from(value)),
            "--out" => out = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    if spec.is_some() != out.is_some() {
        return Err(format!("--spec and --out go together\n{USAGE}"));
    }
    Ok((spec, out))
}
