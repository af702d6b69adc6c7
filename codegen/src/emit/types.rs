//! Types: structs, open string enums, untagged and tagged enums, type references
//! and default values.

use heck::ToSnakeCase;
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use serde_json::Value;

use super::{doc_attrs, Emitter};
use crate::ir::{Field, Module, Ty, TypeDef, TypeKind};

impl Emitter<'_> {
    /// The path of a module, as seen from anywhere in the crate.
    pub fn module_path(&self, module: &Module) -> TokenStream {
        self.module_path_in(&quote!(crate), module)
    }

    /// The path of a module below `root`: `crate` inside the generated crate, the
    /// crate's name from outside it (its tests).
    pub fn module_path_in(&self, root: &TokenStream, module: &Module) -> TokenStream {
        match module {
            Module::Shared => quote!(#root::types),
            Module::Operation(f, o) => {
                let file = &self.api.files[*f];
                let segs = file.module.iter().map(|m| format_ident!("{}", m));
                let op = format_ident!("{}", file.operations[*o].name);
                quote!(#root #(::#segs)* ::#op)
            }
        }
    }

    fn type_path(&self, id: usize, from: &Module) -> TokenStream {
        let t = &self.api.types[id];
        let name = format_ident!("{}", t.name);
        if &t.module == from {
            quote!(#name)
        } else {
            let m = self.module_path(&t.module);
            quote!(#m::#name)
        }
    }

    pub fn ty(&self, ty: &Ty, from: &Module) -> TokenStream {
        match ty {
            Ty::Any => quote!(serde_json::Value),
            Ty::Object => quote!(serde_json::Map<String, serde_json::Value>),
            Ty::String => quote!(String),
            Ty::Id(kind) => {
                let name = format_ident!("{}", kind.type_name());
                quote!(crate::runtime::#name)
            }
            Ty::Pattern(pattern) => {
                let marker = format_ident!("{}", pattern_marker(self.api, pattern));
                quote!(crate::runtime::Matching<crate::types::#marker>)
            }
            Ty::Integer => quote!(i64),
            Ty::Number => quote!(f64),
            Ty::Boolean => quote!(bool),
            Ty::Named(id) => self.type_path(*id, from),
            Ty::Boxed(id) => {
                let p = self.type_path(*id, from);
                quote!(Box<#p>)
            }
            Ty::Option(inner) => {
                let i = self.ty(inner, from);
                quote!(Option<#i>)
            }
            Ty::Vec(inner) => {
                let i = self.ty(inner, from);
                quote!(Vec<#i>)
            }
            Ty::Map(inner) => {
                let i = self.ty(inner, from);
                quote!(std::collections::BTreeMap<String, #i>)
            }
        }
    }

    /// A Rust expression for a spec `default` value of type `ty`, if it has one.
    pub fn default_expr(&self, ty: &Ty, value: &Value, from: &Module) -> Option<TokenStream> {
        Some(match (ty, value) {
            (Ty::Boolean, Value::Bool(b)) => quote!(#b),
            (Ty::Integer, Value::Number(n)) => {
                let i = Literal::i64_unsuffixed(n.as_i64()?);
                quote!(#i)
            }
            (Ty::Number, Value::Number(n)) => {
                let f = Literal::f64_suffixed(n.as_f64()?);
                quote!(#f)
            }
            (Ty::String, Value::String(s)) => quote!(String::from(#s)),
            (Ty::Named(id), Value::String(s))
                if matches!(self.api.types[*id].kind, TypeKind::StringEnum { .. }) =>
            {
                let p = self.type_path(*id, from);
                quote!(#p::from(#s))
            }
            (Ty::Option(_), Value::Null) => quote!(None),
            (Ty::Option(inner), v) => {
                let e = self.default_expr(inner, v, from)?;
                quote!(Some(#e))
            }
            (Ty::Vec(inner), Value::Array(items)) => {
                let es = items
                    .iter()
                    .map(|v| self.default_expr(inner, v, from))
                    .collect::<Option<Vec<_>>>()?;
                quote!(vec![#(#es),*])
            }
            (Ty::Map(_) | Ty::Object, Value::Object(m)) if m.is_empty() => {
                quote!(Default::default())
            }
            (Ty::Any, v) => {
                let text = v.to_string();
                quote!(serde_json::from_str(#text).unwrap_or_default())
            }
            _ => return None,
        })
    }

    pub fn typedef(&mut self, id: usize) -> TokenStream {
        let t: &TypeDef = &self.api.types[id];
        let name = format_ident!("{}", t.name);
        let doc = doc_attrs(&t.doc);
        match &t.kind {
            TypeKind::Struct { fields, extra } => {
                let mut defaults = Vec::new();
                let mut field_tokens = Vec::new();
                let mut ctor = Constructor::default();
                for f in fields {
                    let (tokens, init) = self.field(t, f, &mut defaults);
                    field_tokens.push(tokens);
                    ctor.push(format_ident!("{}", f.name), init);
                }
                if let Some(extra) = extra {
                    let mut fname = "extra".to_string();
                    while fields.iter().any(|f| f.name == fname) {
                        fname.push('_');
                    }
                    let fname = format_ident!("{}", fname);
                    let ty = match extra {
                        Ty::Any => quote!(serde_json::Map<String, serde_json::Value>),
                        other => {
                            let v = self.ty(other, &t.module);
                            quote!(std::collections::BTreeMap<String, #v>)
                        }
                    };
                    field_tokens.push(quote! {
                        /// Properties not listed above, kept as sent.
                        #[serde(flatten)]
                        pub #fname: #ty
                    });
                    ctor.push(fname, Init::Value(quote!(Default::default())));
                }
                let ctor = ctor.emit(&name);
                quote! {
                    #doc
                    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
                    #[non_exhaustive]
                    pub struct #name {
                        #(#field_tokens,)*
                    }
                    #ctor
                    #(#defaults)*
                }
            }
            TypeKind::StringEnum { values } => {
                let variants = values.iter().map(|v| {
                    let n = format_ident!("{}", v.name);
                    let w = &v.wire;
                    quote!(#n = #w,)
                });
                quote! {
                    crate::runtime::string_enum! {
                        #doc
                        #name { #(#variants)* }
                    }
                }
            }
            TypeKind::Untagged { variants } => {
                let vs = variants.iter().map(|v| {
                    let n = format_ident!("{}", v.name);
                    let ty = self.ty(&v.ty, &t.module);
                    quote!(#n(#ty))
                });
                quote! {
                    #doc
                    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
                    #[serde(untagged)]
                    pub enum #name { #(#vs,)* }
                }
            }
            TypeKind::Tagged { tag, variants } => {
                let vs = variants.iter().map(|v| {
                    let n = format_ident!("{}", v.name);
                    let ty = self.ty(&v.ty, &t.module);
                    let wire = v.wire.clone().unwrap_or_default();
                    quote!(#[serde(rename = #wire)] #n(#ty))
                });
                quote! {
                    #doc
                    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
                    #[serde(tag = #tag)]
                    pub enum #name {
                        #(#vs,)*
                        /// A variant this version of the spec does not list, kept as sent.
                        #[serde(untagged)]
                        _Custom(serde_json::Map<String, serde_json::Value>),
                    }
                }
            }
        }
    }

    fn field(
        &mut self,
        owner: &TypeDef,
        f: &Field,
        defaults: &mut Vec<TokenStream>,
    ) -> (TokenStream, Init) {
        let name = format_ident!("{}", f.name);
        let doc = doc_attrs(&f.doc);
        let mut serde: Vec<TokenStream> = Vec::new();
        if f.wire != f.name {
            let w = &f.wire;
            serde.push(quote!(rename = #w));
        }
        let base = self.ty(&f.ty, &owner.module);
        let default = if f.required { None } else { f.default.as_ref() };
        // What `new` sets the field to: the same default function serde calls.
        let mut init = Init::Value(quote!(None));
        let ty = match default {
            Some(value) => match self.default_expr(&f.ty, value, &owner.module) {
                Some(expr) => {
                    let stem = format!(
                        "{}_{}",
                        owner.name.to_snake_case(),
                        f.name.trim_end_matches('_')
                    );
                    let d = format_ident!("default_{}", stem);
                    let n = format_ident!("null_or_default_{}", stem);
                    let (ds, ns) = (d.to_string(), n.to_string());
                    serde.push(quote!(default = #ds, deserialize_with = #ns));
                    defaults.push(quote!(crate::runtime::default_fns!(#d, #n, #base, #expr);));
                    init = Init::Value(quote!(#d()));
                    base
                }
                None => {
                    self.diags.push(
                        &owner.location.join("properties").join(&f.wire),
                        format!("default value {value} cannot be expressed for this field's type"),
                    );
                    init = Init::Param(base.clone());
                    base
                }
            },
            None if f.required || matches!(f.ty, Ty::Option(_)) => {
                if f.required {
                    init = Init::Param(base.clone());
                } else {
                    serde.push(quote!(default, skip_serializing_if = "Option::is_none"));
                }
                base
            }
            None => {
                serde.push(quote!(default, skip_serializing_if = "Option::is_none"));
                quote!(Option<#base>)
            }
        };
        let serde = (!serde.is_empty()).then(|| quote!(#[serde(#(#serde),*)]));
        // A deprecated field is marked in its docs only: servers must still accept
        // and send it for older clients, and an attribute would make every one of
        // them warn. (Deprecated operations carry the attribute, on the method.)
        let tokens = quote! {
            #doc
            #serde
            pub #name: #ty
        };
        (tokens, init)
    }
}

/// How `new` sets a field: from a parameter of this type, or to a value.
pub(crate) enum Init {
    Param(TokenStream),
    Value(TokenStream),
}

/// `new` for a generated struct: required fields are its parameters, in spec
/// order; the rest start absent or at their spec default. A struct whose `new`
/// takes nothing also implements `Default`. With `#[non_exhaustive]` on the
/// struct, this is how other crates build it, so a field added as optional
/// breaks none of them.
#[derive(Default)]
pub(crate) struct Constructor {
    params: Vec<TokenStream>,
    inits: Vec<TokenStream>,
}

impl Constructor {
    pub fn push(&mut self, name: proc_macro2::Ident, init: Init) {
        match init {
            Init::Param(ty) => {
                self.params.push(quote!(#name: #ty));
                self.inits.push(quote!(#name));
            }
            Init::Value(v) => self.inits.push(quote!(#name: #v)),
        }
    }

    pub fn emit(&self, name: &proc_macro2::Ident) -> TokenStream {
        let (params, inits) = (&self.params, &self.inits);
        let many = (params.len() > 7).then(|| quote!(#[allow(clippy::too_many_arguments)]));
        let doc = if params.is_empty() {
            " A value with every field absent or at its default."
        } else {
            " A value from its required fields; the others absent or at their default."
        };
        let default = params.is_empty().then(|| {
            quote! {
                impl Default for #name {
                    fn default() -> Self {
                        Self::new()
                    }
                }
            }
        });
        quote! {
            impl #name {
                #[doc = #doc]
                #many
                pub fn new(#(#params),*) -> Self {
                    Self { #(#inits,)* }
                }
            }
            #default
        }
    }
}

/// The name of the marker type of a pattern: its place among the API's
/// patterns, sorted (`Pattern0`, …), so the names do not depend on reading
/// order.
pub fn pattern_marker(api: &crate::ir::Api, pattern: &str) -> String {
    let index = api.patterns.iter().position(|p| p == pattern).unwrap_or(0);
    format!("Pattern{index}")
}
