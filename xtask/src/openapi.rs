//! `cargo xtask openapi [--spec DIR] [--out FILE]`: one bundled OpenAPI 3.1
//! document (JSON) for a spec directory, with the router's own answers added
//! (see `matrix_codegen::bundle`). It is what the schema-driven fuzz run reads.

use std::path::PathBuf;

use serde_json::Value;

use crate::codegen::project_root;

pub const USAGE: &str = "\
  cargo xtask openapi [--spec DIR] [--out FILE]   bundle api/ (or DIR) into one OpenAPI 3.1 JSON document (stdout or FILE)";

pub fn openapi(args: &[String]) -> Result<(), String> {
    let (mut spec, mut out) = (project_root().join("api"), None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\nusage:\n{USAGE}"))?;
        match flag.as_str() {
            "--spec" => spec = PathBuf::from(value),
            "--out" => out = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown option {flag}\nusage:\n{USAGE}")),
        }
    }
    if !spec.exists() {
        return Err(format!(
            "{}: no such spec directory or file",
            spec.display()
        ));
    }
    let bundle = matrix_codegen::bundle::bundle(&spec).map_err(|e| e.to_string())?;
    let mut text = serde_json::to_string_pretty(&bundle).map_err(|e| e.to_string())?;
    text.push('\n');
    match out {
        None => print!("{text}"),
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            let operations: usize = bundle["paths"]
                .as_object()
                .map(|p| {
                    p.values()
                        .filter_map(Value::as_object)
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0);
            eprintln!("wrote {} ({operations} operations)", path.display());
        }
    }
    Ok(())
}
