//! The crate's router: the route table, the `Api` trait every route trait adds up
//! to, and the dispatch from route to trait method. Only the files the service
//! serves take part (`ApiFile::served`): a file with `x-served: false` has no
//! route trait, no route and no dispatch arm.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::Emitter;

impl Emitter<'_> {
    pub fn router(&self) -> TokenStream {
        let mut routes: Vec<(Vec<(u8, String)>, TokenStream)> = Vec::new();
        let mut arms = Vec::new();
        let mut traits = Vec::new();
        let mut op_index = 0usize;
        for file in self.api.served_files() {
            let segs: Vec<_> = file.module.iter().map(|m| format_ident!("{}", m)).collect();
            let tr = format_ident!("{}", file.trait_name);
            let trait_path = quote!(crate #(::#segs)* ::#tr);
            traits.push(trait_path.clone());
            for op in &file.operations {
                let name = format_ident!("{}", op.name);
                let op_path = quote!(crate #(::#segs)* ::#name);
                let method = format_ident!("{}", op.method);
                let base = &file.base_path;
                let mut key = Vec::new();
                let segments: Vec<TokenStream> = op
                    .path
                    .split('/')
                    .skip(1)
                    .map(|s| {
                        if s.starts_with('{') {
                            key.push((1, String::new()));
                            quote!(crate::runtime::Seg::Param)
                        } else {
                            key.push((0, s.to_string()));
                            quote!(crate::runtime::Seg::Lit(#s))
                        }
                    })
                    .collect();
                let i = op_index;
                // The current path, and the pre-v1.1 one where the operation
                // existed then (same segments under the legacy base).
                let legacy = crate::framework::legacy_base(base, op).map(str::to_string);
                for base in std::iter::once(base.clone()).chain(legacy) {
                    routes.push((
                        key.clone(),
                        quote! {
                            crate::runtime::Route {
                                method: http::Method::#method,
                                base: #base,
                                segments: &[#(#segments),*],
                                metadata: &#op_path::METADATA,
                                op: #i,
                            }
                        },
                    ));
                }
                let call = quote!(|ctx, r| <S as #trait_path>::#name(&api, ctx, r));
                let handler = match (op.security.schemes.is_empty(), op.security.optional) {
                    (true, _) => quote!(crate::runtime::handle_public(&*api, req, #call)),
                    (false, true) => {
                        quote!(crate::runtime::handle_optional(&*api, &#op_path::METADATA.security, req, #call))
                    }
                    (false, false) => {
                        quote!(crate::runtime::handle_required(&*api, &#op_path::METADATA.security, req, #call))
                    }
                };
                arms.push(quote!(#i => Box::pin(async move { #handler.await })));
                op_index += 1;
            }
        }
        // Literal segments win over parameters at the same position.
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        let routes = routes.into_iter().map(|(_, t)| t);
        quote! {
            //! The router serving every operation of every API file.

            /// Everything a server implements: all route traits (and so the
            /// [`crate::runtime::Authenticator`] they share).
            pub trait Api: #(#traits)+* {}

            impl<T: #(#traits)+*> Api for T {}

            /// Connects the route table to an [`Api`] implementation.
            pub struct Dispatcher<S>(pub std::sync::Arc<S>);

            /// A hyper service answering every operation with `api`.
            pub fn router<S: Api>(api: std::sync::Arc<S>, config: crate::runtime::RouterConfig) -> crate::runtime::Router<Dispatcher<S>> {
                crate::runtime::Router::new(Dispatcher(api), config)
            }

            /// Every operation's route, with its `METADATA`.
            pub static ROUTES: &[crate::runtime::Route] = &[#(#routes),*];

            impl<S: Api> crate::runtime::Dispatch for Dispatcher<S> {
                fn routes(&self) -> &'static [crate::runtime::Route] {
                    ROUTES
                }

                fn observe(&self, operation: Option<&'static crate::runtime::Metadata>, status: http::StatusCode, elapsed: std::time::Duration) {
                    crate::runtime::Authenticator::observe(&*self.0, operation, status, elapsed)
                }

                fn call(&self, op: usize, req: crate::runtime::Incoming) -> crate::runtime::BoxFuture<crate::runtime::HttpResponse> {
                    let api = self.0.clone();
                    match op {
                        #(#arms,)*
                        _ => Box::pin(async {
                            crate::runtime::IntoResponse::into_response(crate::runtime::MatrixError::unrecognized(http::StatusCode::NOT_FOUND, "Unrecognized request"))
                        }),
                    }
                }
            }
        }
    }
}
