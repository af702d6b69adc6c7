//! Documentation text and version annotations taken from schema and operation
//! objects.

use serde_json::Value;

use crate::ir::Doc;

pub fn str_at(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A version written as a YAML string or number (`"1.3"` or `1.3`).
fn version(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The documentation of a schema, operation, parameter or response object:
/// `description` (or `summary` then `description` for operations), version history,
/// deprecation, format and pattern.
pub fn doc(v: &Value) -> Doc {
    let mut text = String::new();
    if let Some(summary) = v.get("summary").and_then(Value::as_str) {
        text.push_str(summary.trim());
    }
    if let Some(desc) = v.get("description").and_then(Value::as_str) {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(desc.trim());
    }
    let changed_in = match v.get("x-changedInMatrixVersion") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, t)| (k.clone(), t.as_str().unwrap_or_default().trim().to_string()))
            .collect(),
        _ => Vec::new(),
    };
    Doc {
        text: clean(&text),
        added_in: v.get("x-addedInMatrixVersion").and_then(version),
        changed_in,
        deprecated: v
            .get("deprecated")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        format: v.get("format").and_then(Value::as_str).map(str::to_string),
        pattern: v.get("pattern").and_then(Value::as_str).map(str::to_string),
    }
}

/// Removes the spec site's Hugo shortcodes, keeping the version notes they carry
/// (`{{% added-in v="1.17" %}}` → `Added in v1.17:`).
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find("}}") else {
            rest = &rest[start..];
            break;
        };
        let inner = rest[start + 2..start + len]
            .trim_matches(|c| c == '%' || c == '<' || c == '>' || c == ' ');
        for (name, label) in [("added-in", "Added in"), ("changed-in", "Changed in")] {
            if let Some(args) = inner.strip_prefix(name) {
                let v = args.split('"').nth(1).unwrap_or("").to_string();
                out.push_str(&format!("{label} v{v}:"));
            }
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcodes_become_version_notes() {
        assert_eq!(
            clean("{{% boxes/note %}}\n{{% added-in v=\"1.17\" %}} Even if\n{{% /boxes/note %}}"),
            "Added in v1.17: Even if"
        );
    }
}
