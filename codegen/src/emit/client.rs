//! The client side of each operation: `runtime::ClientRequest` for its
//! `Request`, the inverse of the `FromRequest` and `IntoResponse` impls beside
//! it. The logic lives in the runtime (`Outgoing` builds, `Answer` reads); the
//! impl only lists the operation's parts in order.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::Emitter;
use crate::ir::{Content, Module, Operation, ParamIn, Status, Ty};
use crate::lower::status_variant;

impl Emitter<'_> {
    /// `impl ClientRequest for Request` of operation `oi` of file `fi`.
    pub(super) fn client_request(&self, fi: usize, oi: usize) -> TokenStream {
        let file = &self.api.files[fi];
        let op = &file.operations[oi];
        let module = Module::Operation(fi, oi);
        let envelope = format_ident!("{}", file.envelope.type_name());
        let build = self.client_build(op, &module);
        let parse = client_parse(op);
        quote! {
            impl crate::runtime::ClientRequest for Request {
                type Response = Response;
                type Error = crate::runtime::#envelope;
                fn metadata() -> &'static crate::runtime::Metadata {
                    &METADATA
                }
                fn to_http(
                    &self,
                    base_url: &str,
                    access_token: Option<&str>,
                ) -> Result<http::Request<crate::runtime::Bytes>, crate::runtime::ClientError<Self::Error>> {
                    crate::runtime::Outgoing::new(&METADATA, base_url, access_token)
                        #(#build)*
                        .build()
                }
                fn parse(
                    response: http::Response<crate::runtime::Bytes>,
                ) -> Result<Response, crate::runtime::ClientError<Self::Error>> {
                    #parse
                }
            }
        }
    }

    /// The `Outgoing` calls that put each parameter and the body in place.
    fn client_build(&self, op: &Operation, module: &Module) -> Vec<TokenStream> {
        let params = op.params_in_path_order();
        let mut calls = Vec::new();
        for p in params {
            let name = format_ident!("{}", p.name);
            // The request field is an `Option` exactly when the parameter is
            // optional without a usable default (as `FromRequest` extracts it).
            let defaulted = !p.required
                && p.default
                    .as_ref()
                    .and_then(|v| self.default_expr(&p.ty, v, module))
                    .is_some();
            let plain = p.required || defaulted;
            calls.push(match (p.location, &p.ty) {
                (ParamIn::Path, _) => quote!(.path(&self.#name)),
                (ParamIn::Query, Ty::Map(_)) => quote!(.query_map(&self.#name)),
                (ParamIn::Query, Ty::Vec(_)) => {
                    let wire = &p.wire;
                    quote!(.query_list(#wire, &self.#name))
                }
                (location, _) => {
                    let (one, opt, wire) = match location {
                        ParamIn::Query => (quote!(query), quote!(query_opt), p.wire.clone()),
                        _ => (
                            quote!(header),
                            quote!(header_opt),
                            p.wire.to_ascii_lowercase(),
                        ),
                    };
                    if plain {
                        quote!(.#one(#wire, &self.#name))
                    } else {
                        quote!(.#opt(#wire, self.#name.as_ref()))
                    }
                }
            });
        }
        if let Some(body) = &op.body {
            calls.push(match (&body.content, body.required) {
                (Content::Json(_), true) => quote!(.json(&self.body)),
                (Content::Json(_), false) => quote!(.json_opt(self.body.as_ref())),
                (Content::Form(_), true) => quote!(.form(&self.body)),
                (Content::Form(_), false) => quote!(.form_opt(self.body.as_ref())),
                // A request body is never `Html` (lowering makes it bytes).
                (Content::Binary | Content::Html, _) => quote!(.binary(&self.body)),
            });
        }
        calls
    }
}

/// The body of `parse`: exact statuses first, then status classes (an exact
/// status that is an error envelope stays one even inside a documented class),
/// and anything else is the envelope or an unexpected status.
fn client_parse(op: &Operation) -> TokenStream {
    let mut exact = Vec::new();
    let mut classes = Vec::new();
    for r in op.variants() {
        let v = format_ident!("{}", status_variant(r.status));
        let body = r.content.as_ref().map(|c| match c {
            Content::Json(_) => quote!(answer.json()?),
            Content::Form(_) => quote!(answer.form()?),
            Content::Html => quote!(answer.html()?),
            Content::Binary => quote!(answer.binary()),
        });
        let class = matches!(r.status, Status::Class(_));
        let value = if r.headers.is_empty() && !class {
            match body {
                Some(b) => quote!(Response::#v(#b)),
                None => quote!(Response::#v),
            }
        } else {
            let mut fields = Vec::new();
            if class {
                fields.push(quote!(code: answer.status()));
            }
            if let Some(b) = body {
                fields.push(quote!(body: #b));
            }
            for h in &r.headers {
                let n = format_ident!("{}", h.name);
                let wire = h.wire.to_ascii_lowercase();
                fields.push(if h.required {
                    quote!(#n: answer.header_required(#wire)?)
                } else {
                    quote!(#n: answer.header(#wire))
                });
            }
            quote!(Response::#v { #(#fields),* })
        };
        match r.status {
            Status::Code(c) => {
                let c = Literal::u16_unsuffixed(c);
                exact.push(quote!(#c => Ok(#value)));
            }
            Status::Class(c) => {
                let lo = Literal::u16_unsuffixed(c * 100);
                let hi = Literal::u16_unsuffixed(c * 100 + 99);
                classes.push(quote!(#lo..=#hi => Ok(#value)));
            }
        }
    }
    if exact.is_empty() && classes.is_empty() {
        return quote! {
            crate::runtime::Answer::<Self::Error>::new(response).error()
        };
    }
    let errors: Vec<Literal> = if classes.is_empty() {
        Vec::new()
    } else {
        op.error_statuses()
            .filter_map(|s| match s {
                Status::Code(c) => Some(Literal::u16_unsuffixed(c)),
                Status::Class(_) => None,
            })
            .collect()
    };
    let errors = (!errors.is_empty()).then(|| quote!(#(#errors)|* => answer.error(),));
    quote! {
        let answer = crate::runtime::Answer::<Self::Error>::new(response);
        match answer.status() {
            #(#exact,)*
            #errors
            #(#classes,)*
            _ => answer.error(),
        }
    }
}
