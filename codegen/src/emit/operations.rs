//! Per API file: one module per operation (metadata, `Request`, `Response`, the
//! operation's own types) and, for a file the service serves, the route trait.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::types::{Constructor, Init};
use super::{doc_attrs, Emitter};
use crate::ir::{ApiFile, Content, Envelope, Module, Operation, ParamIn, Status, Ty};
use crate::lower::status_variant;

impl Emitter<'_> {
    pub fn api_file(&mut self, fi: usize) -> TokenStream {
        let file: &ApiFile = &self.api.files[fi];
        let mut ops = Vec::new();
        for oi in 0..file.operations.len() {
            ops.push(self.operation(fi, oi));
        }
        let title = format!(" {}", file.title);
        if !file.served {
            // `x-served: false`: an API the service calls. The operations'
            // modules are its client side; there is nothing to implement.
            let note = format!(
                " Client side only: `{}` says `x-served: false`, so these operations \
                 have no route trait and no route in the router. Send a module's \
                 `Request` with `runtime::Client::send` (feature `client`) or turn \
                 it into HTTP with `runtime::ClientRequest`.",
                file.source
            );
            return quote! {
                #![doc = #title]
                #![doc = ""]
                #![doc = #note]
                #(#ops)*
            };
        }
        let trait_name = format_ident!("{}", file.trait_name);
        let envelope = format_ident!("{}", file.envelope.type_name());
        let methods = file.operations.iter().map(|op| {
            let name = format_ident!("{}", op.name);
            let doc = doc_attrs(&op.doc);
            // On the method, not the module: implementers must still provide it,
            // callers get the warning.
            let deprecated = op.doc.deprecated.then(|| quote!(#[deprecated]));
            let auth = caller_type(op);
            quote! {
                #doc
                #deprecated
                fn #name(
                    &self,
                    ctx: crate::runtime::Context<#auth>,
                    request: #name::Request,
                ) -> impl std::future::Future<Output = Result<#name::Response, crate::runtime::#envelope>> + Send;
            }
        });
        // The stub implementation for tests (`runtime::testing::Stub`): every
        // method records its call and answers what the test scripted.
        let stub_methods = file.operations.iter().map(|op| {
            let name = format_ident!("{}", op.name);
            let auth = caller_type(op);
            quote! {
                fn #name(
                    &self,
                    ctx: crate::runtime::Context<#auth>,
                    request: #name::Request,
                ) -> impl std::future::Future<Output = Result<#name::Response, crate::runtime::#envelope>> + Send {
                    let answer = crate::runtime::testing::Stub::answer(self, &#name::METADATA, &ctx.auth, &request);
                    async move { answer }
                }
            }
        });
        let trait_doc = format!(
            " The operations of `{}`, served under `{}`.",
            file.source, file.base_path
        );
        quote! {
            #![doc = #title]
            #(#ops)*
            #[doc = #trait_doc]
            pub trait #trait_name: crate::runtime::Authenticator {
                #(#methods)*
            }
            #[cfg(feature = "server")]
            #[allow(deprecated)]
            impl<A> #trait_name for crate::runtime::testing::Stub<A>
            where
                A: crate::runtime::Authenticator,
                A::Identity: std::fmt::Debug,
            {
                #(#stub_methods)*
            }
        }
    }

    fn operation(&mut self, fi: usize, oi: usize) -> TokenStream {
        let file = &self.api.files[fi];
        let op: &Operation = &file.operations[oi];
        let module = Module::Operation(fi, oi);
        let name = format_ident!("{}", op.name);
        let doc = doc_attrs(&op.doc);
        let metadata = self.metadata(&file.base_path, file.envelope, op);
        let (request, from_request) = self.request(op, &module);
        let response = self.response(op, &module);
        let client = self.client_request(fi, oi);
        let types: Vec<TokenStream> = (0..self.api.types.len())
            .filter(|id| self.api.types[*id].module == module)
            .map(|id| self.typedef(id))
            .collect();
        // `logout::logout`: the spec's names, kept even when they repeat.
        let inception = (file.module.last() == Some(&op.name))
            .then(|| quote!(#[allow(clippy::module_inception)]));
        quote! {
            #doc
            #inception
            pub mod #name {
                #metadata
                #request
                #from_request
                #response
                #client
                #(#types)*
            }
        }
    }

    fn metadata(&self, base: &str, envelope: Envelope, op: &Operation) -> TokenStream {
        let id = &op.operation_id;
        let method = format_ident!("{}", op.method);
        let path = format!("{base}{}", op.path);
        let optional = op.security.optional;
        let schemes = op.security.schemes.iter().map(|s| {
            let n = &s.name;
            let kind = match &s.kind {
                crate::ir::SchemeKind::Authorization(p) => quote!(Authorization(#p)),
                crate::ir::SchemeKind::Query(p) => quote!(Query(#p)),
                crate::ir::SchemeKind::Header(p) => {
                    let p = p.to_ascii_lowercase();
                    quote!(Header(#p))
                }
            };
            quote!((#n, crate::runtime::AuthScheme::#kind))
        });
        let rate_limited = op.rate_limited;
        let added_in = match &op.doc.added_in {
            Some(v) => quote!(Some(#v)),
            None => quote!(None),
        };
        let deprecated = op.doc.deprecated;
        let lock_exempt = crate::framework::lock_exempt(op);
        let uia = crate::framework::uses_uia(self.api, op);
        let envelope = format_ident!("{}", envelope.type_name());
        let legacy_path = match crate::framework::legacy_base(base, op) {
            Some(legacy) => {
                let p = format!("{legacy}{}", op.path);
                quote!(Some(#p))
            }
            None => quote!(None),
        };
        quote! {
            /// What the spec says about this operation besides its types (a
            /// `static`, so the route table and each request can point at it).
            pub static METADATA: crate::runtime::Metadata = crate::runtime::Metadata {
                operation_id: #id,
                method: http::Method::#method,
                path: #path,
                security: crate::runtime::Security { optional: #optional, schemes: &[#(#schemes),*] },
                rate_limited: #rate_limited,
                added_in: #added_in,
                deprecated: #deprecated,
                lock_exempt: #lock_exempt,
                legacy_path: #legacy_path,
                uia: #uia,
                render_error: crate::runtime::render_error::<crate::runtime::#envelope>,
            };
        }
    }

    /// The request struct and its extraction from an incoming request.
    fn request(&mut self, op: &Operation, module: &Module) -> (TokenStream, TokenStream) {
        let mut fields = Vec::new();
        let mut inits = Vec::new();
        let mut ctor = Constructor::default();
        let declared: Vec<&str> = op
            .params
            .iter()
            .filter(|p| p.location == ParamIn::Query)
            .map(|p| p.wire.as_str())
            .collect();
        let mut path_index = 0usize;
        // Path parameters in path order, so indices match the route's segments.
        let params = op.params_in_path_order();
        for p in params {
            let name = format_ident!("{}", p.name);
            let wire = &p.wire;
            let doc = doc_attrs(&p.doc);
            let base = self.ty(&p.ty, module);
            let default = (!p.required).then_some(p.default.as_ref()).flatten();
            let default = default.and_then(|v| self.default_expr(&p.ty, v, module));
            let param = Init::Param(base.clone());
            let (ty, init, ctor_init) = match (&p.location, &p.ty) {
                (ParamIn::Path, _) => {
                    let i = proc_macro2::Literal::usize_unsuffixed(path_index);
                    path_index += 1;
                    (base, quote!(req.path(#i, #wire)?), param)
                }
                (ParamIn::Query, Ty::Map(_)) => (
                    base,
                    quote!(req.query_rest(&[#(#declared),*])),
                    Init::Value(quote!(Default::default())),
                ),
                (ParamIn::Query, Ty::Vec(_)) if p.required => {
                    (base, quote!(req.query_list_required(#wire)?), param)
                }
                (ParamIn::Query, Ty::Vec(_)) => (
                    base,
                    quote!(req.query_list(#wire)?),
                    Init::Value(quote!(Vec::new())),
                ),
                (location, _) => {
                    let (get, get_required) = match location {
                        ParamIn::Query => (quote!(query), quote!(query_required)),
                        _ => (quote!(header), quote!(header_required)),
                    };
                    let wire = if *location == ParamIn::Header {
                        wire.to_ascii_lowercase()
                    } else {
                        wire.clone()
                    };
                    match (p.required, default) {
                        (true, _) => (base, quote!(req.#get_required(#wire)?), param),
                        (false, Some(d)) => (
                            base,
                            quote!(req.#get(#wire)?.unwrap_or_else(|| #d)),
                            Init::Value(d),
                        ),
                        (false, None) => (
                            quote!(Option<#base>),
                            quote!(req.#get(#wire)?),
                            Init::Value(quote!(None)),
                        ),
                    }
                }
            };
            fields.push(quote!(#doc pub #name: #ty));
            inits.push(quote!(#name: #init));
            ctor.push(name, ctor_init);
        }
        if let Some(body) = &op.body {
            let (ty, init, ctor_init) = match &body.content {
                Content::Json(t) => {
                    let t = self.ty(t, module);
                    if body.required {
                        (t.clone(), quote!(req.json()?), Init::Param(t))
                    } else {
                        (
                            quote!(Option<#t>),
                            quote!(req.json_optional()?),
                            Init::Value(quote!(None)),
                        )
                    }
                }
                Content::Form(t) => {
                    let t = self.ty(t, module);
                    if body.required {
                        (t.clone(), quote!(req.form()?), Init::Param(t))
                    } else {
                        (
                            quote!(Option<#t>),
                            quote!(req.form_optional()?),
                            Init::Value(quote!(None)),
                        )
                    }
                }
                // Lowering gives request bodies no `Html` kind (a page is
                // something a server answers); bytes are the honest fallback.
                Content::Binary | Content::Html => {
                    let t = quote!(crate::runtime::Binary);
                    (t.clone(), quote!(req.binary()), Init::Param(t))
                }
            };
            fields.push(quote!(/// The request body.
                pub body: #ty));
            inits.push(quote!(body: #init));
            ctor.push(format_ident!("body"), ctor_init);
        }
        let request_ident = format_ident!("Request");
        let ctor = ctor.emit(&request_ident);
        let req_ident = if inits.is_empty() {
            quote!(_req)
        } else {
            quote!(req)
        };
        (
            quote! {
                /// The typed request: parameters and body.
                #[derive(Clone, Debug, PartialEq)]
                #[non_exhaustive]
                pub struct Request { #(#fields,)* }
                #ctor
            },
            quote! {
                impl crate::runtime::FromRequest for Request {
                    fn from_request(#req_ident: &crate::runtime::Incoming) -> Result<Self, crate::runtime::MatrixError> {
                        Ok(Self { #(#inits,)* })
                    }
                }
            },
        )
    }

    /// The response enum (a variant per documented status) and its conversion.
    fn response(&mut self, op: &Operation, module: &Module) -> TokenStream {
        let mut variants = Vec::new();
        let mut arms = Vec::new();
        // Body types by the variant that carries them alone (`None` for a struct
        // variant), for the `From` conversions.
        let mut carriers: Vec<(String, TokenStream, Option<proc_macro2::Ident>)> = Vec::new();
        for r in op.variants() {
            let v = format_ident!("{}", status_variant(r.status));
            let doc = doc_attrs(&r.doc);
            let body_ty = r.content.as_ref().map(|c| match c {
                Content::Json(t) | Content::Form(t) => self.ty(t, module),
                Content::Html => quote!(crate::runtime::Html),
                Content::Binary => quote!(crate::runtime::Binary),
            });
            let status = match r.status {
                Status::Code(c) => {
                    let c = proc_macro2::Literal::u16_unsuffixed(c);
                    quote!(crate::runtime::status(#c))
                }
                Status::Class(_) => quote!(crate::runtime::status(code)),
            };
            let build = match &r.content {
                Some(Content::Json(_)) => quote!(crate::runtime::json(#status, &body)),
                Some(Content::Form(_)) => quote!(crate::runtime::form(#status, &body)),
                Some(Content::Html) => quote!(crate::runtime::html(#status, body)),
                Some(Content::Binary) => quote!(crate::runtime::binary(#status, body)),
                None => quote!(crate::runtime::empty(#status)),
            };
            let code_field = matches!(r.status, Status::Class(_));
            let plain = r.headers.is_empty() && !code_field;
            if let Some(t) = &body_ty {
                carriers.push((t.to_string(), t.clone(), plain.then(|| v.clone())));
            }
            if plain {
                match body_ty {
                    Some(t) => {
                        variants.push(quote!(#doc #v(#t)));
                        arms.push(quote!(Self::#v(body) => #build));
                    }
                    None => {
                        variants.push(quote!(#doc #v));
                        arms.push(quote!(Self::#v => #build));
                    }
                }
                continue;
            }
            // Documented headers (and the code of a status class) make a struct variant.
            let mut fields = Vec::new();
            let mut names = Vec::new();
            let mut sets = Vec::new();
            if code_field {
                fields.push(quote!(/// The exact status code.
                    code: u16));
                names.push(quote!(code));
            }
            if let Some(t) = body_ty {
                fields.push(quote!(body: #t));
                names.push(quote!(body));
            }
            for h in &r.headers {
                let n = format_ident!("{}", h.name);
                let hd = doc_attrs(&h.doc);
                let wire = h.wire.to_ascii_lowercase();
                if h.required {
                    fields.push(quote!(#hd #n: String));
                    sets.push(quote!(.header(#wire, Some(#n.as_str()))));
                } else {
                    fields.push(quote!(#hd #n: Option<String>));
                    sets.push(quote!(.header(#wire, #n.as_deref())));
                }
                names.push(quote!(#n));
            }
            variants.push(quote!(#doc #v { #(#fields),* }));
            arms.push(quote!(Self::#v { #(#names),* } => { #build #(#sets)* }));
        }
        let uses_headers = op.variants().any(|r| !r.headers.is_empty());
        let import = uses_headers.then(|| {
            quote!(
                use crate::runtime::ResponseBuilder;
            )
        });
        let body = if arms.is_empty() {
            quote!(match self {})
        } else {
            quote!(match self { #(#arms,)* })
        };
        // A body converts into the one variant that carries its type; a type
        // several variants carry converts into none of them.
        let froms = carriers.iter().filter_map(|(key, t, v)| {
            let v = v.as_ref()?;
            if carriers.iter().filter(|(k, _, _)| k == key).count() != 1 {
                return None;
            }
            Some(quote! {
                impl From<#t> for Response {
                    fn from(body: #t) -> Self {
                        Self::#v(body)
                    }
                }
            })
        });
        quote! {
            /// The typed response: one variant per documented status, except the
            /// statuses whose body is the error envelope: every error, documented or
            /// not, is the handler's `Err`.
            #[derive(Clone, Debug, PartialEq)]
            pub enum Response { #(#variants,)* }

            #(#froms)*

            impl crate::runtime::IntoResponse for Response {
                fn into_response(self) -> crate::runtime::HttpResponse {
                    #import
                    #body
                }
            }
        }
    }
}

/// The caller a route-trait method receives: `()` for a public operation,
/// `Option<Identity>` where authentication is optional, `Identity` where required.
fn caller_type(op: &Operation) -> TokenStream {
    match (op.security.schemes.is_empty(), op.security.optional) {
        (true, _) => quote!(()),
        (false, true) => quote!(Option<Self::Identity>),
        (false, false) => quote!(Self::Identity),
    }
}
