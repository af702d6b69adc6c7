//! Paths and operations: parameters, request bodies, responses and security.

use heck::ToUpperCamelCase;
use serde_json::Value;

use super::schema::Ctx;
use super::{names, text, Lowerer};
use crate::diag::Location;
use crate::ir::{
    Body, Content, Header, Module, Operation, Param, ParamIn, Response, Scheme, SchemeKind,
    Security, Status, Ty, TypeKind,
};

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

impl Lowerer {
    pub(super) fn path_item(
        &mut self,
        file: usize,
        doc: &Value,
        at: &Location,
        path: &str,
        item: &Value,
    ) {
        // A path item may itself be a `$ref`.
        let (at, item) = self
            .loader
            .deref(at)
            .unwrap_or_else(|| (at.clone(), item.clone()));
        let shared_params: Vec<Location> = match item.get("parameters").and_then(Value::as_array) {
            Some(ps) => (0..ps.len())
                .map(|i| at.join("parameters").join(i))
                .collect(),
            None => Vec::new(),
        };
        for method in METHODS {
            if item.get(*method).is_some() {
                self.operation(file, doc, &at.join(method), path, method, &shared_params);
            }
        }
    }

    fn operation(
        &mut self,
        file: usize,
        doc: &Value,
        at: &Location,
        path: &str,
        method: &str,
        shared_params: &[Location],
    ) {
        let Some(op) = self.loader.get(at) else {
            return;
        };
        let index = self.api.files[file].operations.len();
        let module = Module::Operation(file, index);
        let operation_id = match op.get("operationId").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => {
                self.loader.diags.push(at, "operation has no `operationId`");
                format!("{method}_{path}")
            }
        };

        let mut param_locs: Vec<Location> = shared_params.to_vec();
        if let Some(ps) = op.get("parameters").and_then(Value::as_array) {
            param_locs.extend((0..ps.len()).map(|i| at.join("parameters").join(i)));
        }
        let mut params: Vec<Param> = Vec::new();
        for loc in param_locs {
            if let Some(p) = self.param(&loc, &module) {
                // An operation's own parameter overrides a path-level one.
                params.retain(|q| !(q.wire == p.wire && q.location == p.location));
                params.push(p);
            }
        }
        self.check_path(at, path, &params);

        let body = op
            .get("requestBody")
            .and_then(|_| self.request_body(&at.join("requestBody"), &module));

        let mut responses = Vec::new();
        if let Some(rs) = op.get("responses").and_then(Value::as_object) {
            for code in rs.keys() {
                if let Some(r) = self.response(&at.join("responses").join(code), code, &module) {
                    responses.push(r);
                }
            }
        } else {
            self.loader.diags.push(at, "operation has no `responses`");
        }
        responses.sort_by_key(|r| r.status);

        let security = match op.get("security").or(doc.get("security")) {
            Some(s) => self.security(at, s),
            None => Security {
                optional: false,
                schemes: Vec::new(),
            },
        };
        let rate_limited = responses.iter().any(|r| r.status == Status::Code(429));
        self.api.files[file].operations.push(Operation {
            name: names::module_name(&operation_id),
            operation_id,
            method: method.to_uppercase(),
            path: path.to_string(),
            doc: text::doc(&op),
            rate_limited,
            security,
            params,
            body,
            responses,
            location: at.clone(),
        });
    }

    fn param(&mut self, loc: &Location, module: &Module) -> Option<Param> {
        let (loc, p) = self.loader.deref(loc)?;
        let wire = p
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let location = match p.get("in").and_then(Value::as_str) {
            Some("path") => ParamIn::Path,
            Some("query") => ParamIn::Query,
            Some("header") => ParamIn::Header,
            other => {
                let location = match other {
                    Some(l) => format!("parameter location `{l}` is not supported"),
                    None => "parameter has no location (`in`)".to_string(),
                };
                self.loader
                    .diags
                    .push(&loc, format!("{location}: path, query or header"));
                return None;
            }
        };
        let ctx = Ctx {
            module: module.clone(),
            name: wire.to_upper_camel_case(),
        };
        let schema_loc = loc.join("schema");
        let schema = self.loader.get(&schema_loc);
        let ty = match &schema {
            Some(_) => self.schema(&schema_loc, &ctx),
            None => Ty::String,
        };
        // An object-valued query parameter (`style: form`, exploded) is the set of
        // query parameters not otherwise declared.
        let rest_map = location == ParamIn::Query && matches!(&ty, Ty::Map(v) if **v == Ty::String);
        if !rest_map && !self.param_type_ok(&ty) {
            self.loader.diags.push(
                &schema_loc,
                "parameter type not supported: parameters must be strings (identifiers too), numbers, booleans, string enums or arrays of those",
            );
        }
        let mut doc = text::doc(&p);
        if let Some(s) = &schema {
            let sdoc = text::doc(s);
            doc.format = doc.format.or(sdoc.format);
            doc.pattern = doc.pattern.or(sdoc.pattern);
        }
        Some(Param {
            name: names::field_name(&wire),
            wire,
            location,
            required: location == ParamIn::Path
                || p.get("required").and_then(Value::as_bool).unwrap_or(false),
            default: schema.as_ref().and_then(|s| s.get("default")).cloned(),
            ty,
            doc,
        })
    }

    fn param_type_ok(&self, ty: &Ty) -> bool {
        match ty {
            Ty::String | Ty::Id(_) | Ty::Pattern(_) | Ty::Integer | Ty::Number | Ty::Boolean => {
                true
            }
            Ty::Named(id) => matches!(self.api.types[*id].kind, TypeKind::StringEnum { .. }),
            Ty::Vec(inner) => !matches!(**inner, Ty::Vec(_)) && self.param_type_ok(inner),
            _ => false,
        }
    }

    /// Every `{name}` in the path is a whole segment and has a path parameter.
    fn check_path(&mut self, at: &Location, path: &str, params: &[Param]) {
        for segment in path.split('/') {
            if !segment.contains('{') {
                continue;
            }
            let name = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
            match name {
                Some(name)
                    if params
                        .iter()
                        .any(|p| p.location == ParamIn::Path && p.wire == name) => {}
                Some(name) => self.loader.diags.push(
                    at,
                    format!("path parameter `{name}` is not declared in `parameters`"),
                ),
                None => self.loader.diags.push(
                    at,
                    format!("path segment `{segment}` mixes text and a parameter (not supported)"),
                ),
            }
        }
    }

    fn request_body(&mut self, loc: &Location, module: &Module) -> Option<Body> {
        let (loc, b) = self.loader.deref(loc)?;
        let content = self.content(&loc, &b, module, "RequestBody", false)?;
        Some(Body {
            required: b.get("required").and_then(Value::as_bool).unwrap_or(false),
            content,
        })
    }

    /// The `content` of a body or response: JSON or a form with its schema, a
    /// page (responses only), or bytes.
    fn content(
        &mut self,
        loc: &Location,
        v: &Value,
        module: &Module,
        name: &str,
        is_response: bool,
    ) -> Option<Content> {
        let media = v.get("content").and_then(Value::as_object)?;
        let json: Vec<&String> = media.keys().filter(|m| is_json(m)).collect();
        let form: Vec<&String> = media.keys().filter(|m| is_form(m)).collect();
        let (typed, form_body) = match (json.first(), form.first()) {
            (Some(m), None) => (*m, false),
            (None, Some(m)) => (*m, true),
            (None, None) => {
                let html = media.keys().any(|m| media_type(m) == "text/html");
                return Some(if html && media.len() == 1 && is_response {
                    Content::Html
                } else {
                    Content::Binary
                });
            }
            (Some(_), Some(_)) => {
                self.loader.diags.push(
                    &loc.join("content"),
                    "a body that is JSON or a form at the client's choice is not supported",
                );
                return None;
            }
        };
        if json.len() + form.len() != media.len() {
            self.loader.diags.push(
                &loc.join("content"),
                "a body that is JSON for some media types and not for others is not supported",
            );
        }
        let media_loc = loc.join("content").join(typed);
        let mv = self.loader.get(&media_loc)?;
        let ctx = Ctx {
            module: module.clone(),
            name: name.to_string(),
        };
        let ty = match mv.get("schema") {
            Some(_) => self.schema(&media_loc.join("schema"), &ctx),
            None => Ty::Any,
        };
        if let Some(example) = mv.get("example") {
            self.add_example(&media_loc, &ty, example.clone());
        }
        if let Some(examples) = mv.get("examples").and_then(Value::as_object) {
            for key in examples.keys() {
                let ex_loc = media_loc.join("examples").join(key);
                if let Some((_, ex)) = self.loader.deref(&ex_loc) {
                    if let Some(value) = ex.get("value") {
                        self.add_example(&ex_loc, &ty, value.clone());
                    }
                }
            }
        }
        Some(if form_body {
            Content::Form(ty)
        } else {
            Content::Json(ty)
        })
    }

    fn response(&mut self, loc: &Location, code: &str, module: &Module) -> Option<Response> {
        let status = match code.parse::<u16>() {
            Ok(c) if (100..600).contains(&c) => Status::Code(c),
            _ => match code.as_bytes() {
                [d @ b'1'..=b'5', b'X' | b'x', b'X' | b'x'] => Status::Class(u16::from(d - b'0')),
                _ => {
                    self.loader.diags.push(
                        loc,
                        format!("response key `{code}` is not supported (a status code or a class such as `4XX`)"),
                    );
                    return None;
                }
            },
        };
        let (loc, r) = self.loader.deref(loc)?;
        let variant = names::status_variant(status);
        let content = self.content(&loc, &r, module, &format!("{variant}Body"), true);
        let mut headers = Vec::new();
        if let Some(hs) = r.get("headers").and_then(Value::as_object) {
            for wire in hs.keys() {
                // Binary bodies carry their own content type.
                if matches!(content, Some(Content::Binary))
                    && wire.eq_ignore_ascii_case("content-type")
                {
                    continue;
                }
                let Some((_, h)) = self.loader.deref(&loc.join("headers").join(wire)) else {
                    continue;
                };
                headers.push(Header {
                    name: names::field_name(wire),
                    wire: wire.clone(),
                    required: h.get("required").and_then(Value::as_bool).unwrap_or(false),
                    doc: text::doc(&h),
                });
            }
        }
        Some(Response {
            status,
            doc: text::doc(&r),
            content,
            headers,
            error: false, // settled by `mark_errors` once every type is known
        })
    }

    fn security(&mut self, at: &Location, s: &Value) -> Security {
        let mut security = Security {
            optional: false,
            schemes: Vec::new(),
        };
        let Some(alternatives) = s.as_array() else {
            self.loader.diags.push(at, "`security` must be a list");
            return security;
        };
        let root = Location::new(at.file.clone(), "");
        for alt in alternatives {
            let Some(map) = alt.as_object() else { continue };
            match map.len() {
                0 => security.optional = true,
                1 => {
                    let name = map.keys().next().cloned().unwrap_or_default();
                    let scheme_loc = root.join("components").join("securitySchemes").join(&name);
                    if self.loader.get(&scheme_loc).is_none() {
                        // A spec bug (upstream v1.19 has two): the operation is still
                        // authenticated, with the raw `Authorization` header value.
                        self.loader.diags.warn(
                            at,
                            format!("security scheme `{name}` is not defined in `components.securitySchemes`; the whole `Authorization` header is passed as its credential"),
                        );
                        security.schemes.push(Scheme {
                            name,
                            kind: SchemeKind::Authorization(String::new()),
                        });
                        continue;
                    }
                    if let Some(kind) = self.scheme_kind(&scheme_loc) {
                        security.schemes.push(Scheme { name, kind });
                    }
                }
                _ => self.loader.diags.push(
                    at,
                    "a security requirement combining several schemes is not supported",
                ),
            }
        }
        security
    }

    fn scheme_kind(&mut self, loc: &Location) -> Option<SchemeKind> {
        let (loc, s) = self.loader.deref(loc)?;
        let field = |k: &str| {
            s.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        match (field("type").as_str(), field("in").as_str()) {
            ("http", _) => {
                let scheme = field("scheme");
                let scheme = if scheme.eq_ignore_ascii_case("bearer") {
                    "Bearer".to_string()
                } else {
                    scheme
                };
                Some(SchemeKind::Authorization(scheme))
            }
            ("apiKey", "query") => Some(SchemeKind::Query(field("name"))),
            ("apiKey", "header") if field("name").eq_ignore_ascii_case("authorization") => {
                Some(SchemeKind::Authorization(String::new()))
            }
            ("apiKey", "header") => Some(SchemeKind::Header(field("name"))),
            (t, i) => {
                let scheme = match i {
                    "" => format!("`{t}`"),
                    _ => format!("`{t}` in `{i}`"),
                };
                self.loader.diags.push(
                    &loc,
                    format!("security scheme {scheme} is not supported: http, or apiKey in query or header"),
                );
                None
            }
        }
    }
}

/// The media type without its parameters (`; charset=utf-8`).
fn media_type(media: &str) -> &str {
    media.split(';').next().unwrap_or("").trim()
}

fn is_form(media: &str) -> bool {
    media_type(media) == "application/x-www-form-urlencoded"
}

fn is_json(media: &str) -> bool {
    let m = media_type(media);
    m == "application/json" || m.ends_with("+json")
}
