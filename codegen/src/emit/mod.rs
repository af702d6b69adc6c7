//! Emission: IR → Rust token streams (with `quote`), one per output file.

mod client;
mod krate;
mod operations;
mod router;
mod types;

use proc_macro2::TokenStream;
use quote::quote;

use crate::diag::Diagnostics;
use crate::ir::{Api, Doc};

pub use krate::{emit, Options, Runtime, RUNTIME_FILES};

pub(crate) struct Emitter<'a> {
    pub api: &'a Api,
    pub diags: Diagnostics,
}

/// Doc attributes for a description plus the version history and format notes.
pub(crate) fn doc_attrs(doc: &Doc) -> TokenStream {
    let mut lines: Vec<String> = Vec::new();
    if !doc.text.is_empty() {
        lines.extend(doc.text.lines().map(str::to_string));
    }
    let mut notes = Vec::new();
    if let Some(v) = &doc.added_in {
        notes.push(format!("Added in Matrix v{v}."));
    }
    for (v, text) in &doc.changed_in {
        notes.push(format!(
            "Changed in Matrix v{v}: {}",
            text.replace('\n', " ")
        ));
    }
    if let Some(f) = &doc.format {
        notes.push(format!("Format: `{f}`."));
    }
    if let Some(p) = &doc.pattern {
        notes.push(format!("Pattern: `{p}`."));
    }
    if doc.deprecated {
        notes.push("**Deprecated.**".to_string());
    }
    if !notes.is_empty() {
        if !lines.is_empty() {
            lines.push(String::new());
        }
        lines.extend(notes);
    }
    let lines = lines.iter().map(|l| {
        // Fenced blocks without a language would be compiled as doctests.
        let l = if l.trim() == "```" && !l.contains("```text") {
            l.replacen("```", "```text", 1)
        } else {
            l.clone()
        };
        format!(" {}", l.trim_end())
    });
    quote!(#(#[doc = #lines])*)
}
