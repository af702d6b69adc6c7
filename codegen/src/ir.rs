//! The intermediate representation: what the API *means*, independent of both YAML
//! (no `$ref`s, no `allOf`, no 3.1 type lists) and Rust (no tokens; names are
//! already chosen but not yet spelled as identifiers).

use serde_json::Value;

use crate::diag::{Diagnostic, Location};
pub use crate::versions::Release;

/// Index into [`Api::types`].
pub type TypeId = usize;

#[derive(Debug, Default)]
pub struct Api {
    pub files: Vec<ApiFile>,
    pub types: Vec<TypeDef>,
    /// Every file that contributed (API files and the definitions they reach).
    pub sources: Vec<String>,
    /// Problems in the spec that generation worked around (see [`Diagnostic`]).
    pub warnings: Vec<Diagnostic>,
    /// The Matrix release the API describes, when known.
    pub release: Option<Release>,
    /// Every distinct `Ty::Pattern`, sorted: one generated marker type each.
    pub patterns: Vec<String>,
}

impl Api {
    /// The files the service serves (see [`ApiFile::served`]), in order.
    pub fn served_files(&self) -> impl Iterator<Item = &ApiFile> {
        self.files.iter().filter(|f| f.served)
    }

    /// Calls `f` on every type expression in the API and every one inside it.
    pub fn for_each_ty_mut(&mut self, mut f: impl FnMut(&mut Ty)) {
        fn walk(ty: &mut Ty, f: &mut impl FnMut(&mut Ty)) {
            f(ty);
            if let Ty::Option(inner) | Ty::Vec(inner) | Ty::Map(inner) = ty {
                walk(inner, f);
            }
        }
        for t in &mut self.types {
            match &mut t.kind {
                TypeKind::Struct { fields, extra } => {
                    fields.iter_mut().for_each(|x| walk(&mut x.ty, &mut f));
                    extra.iter_mut().for_each(|x| walk(x, &mut f));
                }
                TypeKind::Untagged { variants } | TypeKind::Tagged { variants, .. } => {
                    variants.iter_mut().for_each(|v| walk(&mut v.ty, &mut f));
                }
                TypeKind::StringEnum { .. } => {}
            }
        }
        for op in self.files.iter_mut().flat_map(|f| &mut f.operations) {
            op.params.iter_mut().for_each(|p| walk(&mut p.ty, &mut f));
            let bodies = op.body.iter_mut().map(|b| &mut b.content);
            let responses = op.responses.iter_mut().filter_map(|r| r.content.as_mut());
            for content in bodies.chain(responses) {
                if let Content::Json(ty) | Content::Form(ty) = content {
                    walk(ty, &mut f);
                }
            }
        }
    }

    /// Every type expression in the API (fields, variants, parameters, bodies),
    /// and the ones inside them.
    pub fn all_tys(&self) -> Vec<&Ty> {
        let mut out: Vec<&Ty> = Vec::new();
        for t in &self.types {
            match &t.kind {
                TypeKind::Struct { fields, extra } => {
                    out.extend(fields.iter().map(|f| &f.ty));
                    out.extend(extra.iter());
                }
                TypeKind::Untagged { variants } | TypeKind::Tagged { variants, .. } => {
                    out.extend(variants.iter().map(|v| &v.ty));
                }
                TypeKind::StringEnum { .. } => {}
            }
        }
        for op in self.files.iter().flat_map(|f| &f.operations) {
            out.extend(op.params.iter().map(|p| &p.ty));
            let bodies = op.body.iter().map(|b| &b.content);
            let responses = op.responses.iter().filter_map(|r| r.content.as_ref());
            out.extend(bodies.chain(responses).filter_map(Content::schema));
        }
        let mut i = 0;
        while i < out.len() {
            if let Ty::Option(inner) | Ty::Vec(inner) | Ty::Map(inner) = out[i] {
                out.push(inner);
            }
            i += 1;
        }
        out
    }
}

/// One OpenAPI document: becomes one module and, when the service serves it,
/// one route trait.
#[derive(Debug)]
pub struct ApiFile {
    /// Display path, e.g. `api/client-server/registration.yaml`.
    pub source: String,
    /// Module path segments, e.g. `["client_server", "registration"]`.
    pub module: Vec<String>,
    /// Trait name, e.g. `RegistrationApi` (unique across the served files);
    /// empty for a file that is not [`served`](ApiFile::served).
    pub trait_name: String,
    pub title: String,
    /// The `basePath` of the file's `servers` entry, e.g. `/_matrix/client/v3`.
    pub base_path: String,
    /// The error envelope of the file's operations (`x-error-envelope`).
    pub envelope: Envelope,
    /// Whether the service serves the file's operations (`x-served`, true
    /// unless the file says `x-served: false`). A file it does not serve
    /// describes an API it *calls* (Synapse's `/_synapse/mas/*`): its
    /// operations get their modules, types and client side
    /// (`runtime::ClientRequest`), but no route trait, no route in the
    /// router, and no place in what describes the server (the bundle of
    /// [`crate::bundle`], the supported versions).
    pub served: bool,
    pub operations: Vec<Operation>,
}

/// The shape of error bodies an API file's operations answer with. Handlers
/// return errors as the envelope's runtime type (`Err(..)`), never as a
/// `Response` variant, and the router renders its own failures in it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// `{"errcode": "M_…", "error": "…"}`: `runtime::MatrixError`.
    Matrix,
    /// RFC 6749's `{"error": "…", "error_description": "…"}`: `runtime::OAuthError`.
    OAuth,
}

impl Envelope {
    pub fn from_extension(value: &str) -> Option<Envelope> {
        match value {
            "matrix" => Some(Envelope::Matrix),
            "oauth" => Some(Envelope::OAuth),
            _ => None,
        }
    }

    /// The property every error body of this envelope requires: a response
    /// whose schema requires it is an error.
    pub fn key(self) -> &'static str {
        match self {
            Envelope::Matrix => "errcode",
            Envelope::OAuth => "error",
        }
    }

    /// The runtime type that carries it.
    pub fn type_name(self) -> &'static str {
        match self {
            Envelope::Matrix => "MatrixError",
            Envelope::OAuth => "OAuthError",
        }
    }
}

#[derive(Debug)]
pub struct Operation {
    pub operation_id: String,
    /// snake_case: the trait method and the operation's module.
    pub name: String,
    pub method: String,
    /// Path below `base_path`, with `{param}` segments as written in the spec.
    pub path: String,
    pub doc: Doc,
    pub rate_limited: bool,
    pub security: Security,
    pub params: Vec<Param>,
    pub body: Option<Body>,
    pub responses: Vec<Response>,
    pub location: Location,
}

/// Who may call an operation, from its `security` list.
#[derive(Debug, Clone, PartialEq)]
pub struct Security {
    /// `- {}` is one of the alternatives: the caller may be anonymous.
    pub optional: bool,
    /// The schemes any one of which authenticates the caller (empty: no auth).
    pub schemes: Vec<Scheme>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scheme {
    /// The scheme's name in `components.securitySchemes`, e.g. `accessTokenBearer`.
    pub name: String,
    pub kind: SchemeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SchemeKind {
    /// `Authorization: <scheme> <credential>` (`Bearer`, `X-Matrix`, ...); an empty
    /// scheme passes the whole header value.
    Authorization(String),
    Query(String),
    Header(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ParamIn {
    Path,
    Query,
    Header,
}

#[derive(Debug)]
pub struct Param {
    pub wire: String,
    pub name: String,
    pub location: ParamIn,
    /// The value type without the `Option` an optional parameter adds.
    pub ty: Ty,
    pub required: bool,
    pub default: Option<Value>,
    pub doc: Doc,
}

#[derive(Debug)]
pub struct Body {
    pub required: bool,
    pub content: Content,
}

/// What a body is, by its media type.
#[derive(Debug, Clone)]
pub enum Content {
    /// `application/json` (or `+json`), with its schema.
    Json(Ty),
    /// `application/x-www-form-urlencoded` (OAuth's token endpoint, HTML forms),
    /// with the schema of its fields.
    Form(Ty),
    /// `text/html`: a page, as a string.
    Html,
    /// Any other media type (uploads, downloads, multipart): raw bytes plus the
    /// content type.
    Binary,
}

impl Content {
    /// The schema of a JSON or form body.
    pub fn schema(&self) -> Option<&Ty> {
        match self {
            Content::Json(ty) | Content::Form(ty) => Some(ty),
            Content::Html | Content::Binary => None,
        }
    }

    /// How messages name the kind.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Content::Json(_) => "JSON",
            Content::Form(_) => "form-urlencoded",
            Content::Html => "HTML",
            Content::Binary => "binary",
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: Status,
    pub doc: Doc,
    pub content: Option<Content>,
    pub headers: Vec<Header>,
    /// The body is the file's error envelope: the handler answers it as an
    /// error (`Err`), and it is no variant of the operation's `Response`.
    pub error: bool,
}

impl Operation {
    /// The parameters with the path's in the order the path names them (each
    /// fills the template's next `{..}`), then the others in spec order.
    pub fn params_in_path_order(&self) -> Vec<&Param> {
        let mut params: Vec<&Param> = self.params.iter().collect();
        params.sort_by_key(|p| match p.location {
            ParamIn::Path => self
                .path
                .find(&format!("{{{}}}", p.wire))
                .unwrap_or(usize::MAX),
            _ => usize::MAX,
        });
        params
    }

    /// The responses that are variants of the operation's typed `Response`:
    /// every documented one whose body is not an error envelope.
    pub fn variants(&self) -> impl Iterator<Item = &Response> {
        self.responses.iter().filter(|r| !r.error)
    }

    /// The documented statuses whose body is the error envelope.
    pub fn error_statuses(&self) -> impl Iterator<Item = Status> + '_ {
        self.responses.iter().filter(|r| r.error).map(|r| r.status)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Code(u16),
    /// `4XX`-style ranges: the implementer picks the exact code.
    Class(u16),
}

#[derive(Debug)]
pub struct Header {
    pub wire: String,
    pub name: String,
    pub required: bool,
    pub doc: Doc,
}

/// Documentation and version history carried into the generated docs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Doc {
    pub text: String,
    pub added_in: Option<String>,
    pub changed_in: Vec<(String, String)>,
    pub deprecated: bool,
    pub format: Option<String>,
    pub pattern: Option<String>,
}

/// A value type.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// Any JSON value.
    Any,
    /// A JSON object with arbitrary keys.
    Object,
    String,
    /// A string of a Matrix identifier format (`format: mx-user-id` and friends):
    /// the runtime's type for it, which validates when parsed.
    Id(IdKind),
    /// A string that must match this `pattern` (a regular expression the
    /// `regex` crate compiles; JSON Schema patterns are not anchored).
    Pattern(String),
    Integer,
    Number,
    Boolean,
    Named(TypeId),
    /// A reference back into a type under construction: needs indirection.
    Boxed(TypeId),
    Option(Box<Ty>),
    Vec(Box<Ty>),
    Map(Box<Ty>),
}

/// The Matrix identifier formats the runtime has a validating type for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    UserId,
    ServerName,
    RoomId,
    RoomAlias,
    EventId,
}

impl IdKind {
    /// The kind a schema's `format` names, if it is an identifier format.
    pub fn from_format(format: &str) -> Option<IdKind> {
        Some(match format {
            "mx-user-id" => IdKind::UserId,
            "mx-server-name" => IdKind::ServerName,
            "mx-room-id" => IdKind::RoomId,
            "mx-room-alias" => IdKind::RoomAlias,
            "mx-event-id" => IdKind::EventId,
            _ => return None,
        })
    }

    /// The runtime type's name.
    pub fn type_name(self) -> &'static str {
        match self {
            IdKind::UserId => "UserId",
            IdKind::ServerName => "ServerName",
            IdKind::RoomId => "RoomId",
            IdKind::RoomAlias => "RoomAlias",
            IdKind::EventId => "EventId",
        }
    }
}

/// String formats the generator knows and keeps as `String` (the format is an
/// annotation in the docs): number formats, URIs, email addresses, MXC URIs and
/// base64 text. Any other format is a warning.
pub const PLAIN_STRING_FORMATS: &[&str] = &[
    "int64",
    "float",
    "uri",
    "email",
    "mx-mxc-uri",
    "mx-unpadded-base64",
    "mx-urlsafe-unpadded-base64",
];

/// Where a type's definition is emitted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Module {
    /// `crate::types`: schemas reached by `$ref` from elsewhere.
    Shared,
    /// Inside an operation's module: `(file index, operation index)`.
    Operation(usize, usize),
}

#[derive(Debug)]
pub struct TypeDef {
    pub name: String,
    pub module: Module,
    pub location: Location,
    pub doc: Doc,
    pub kind: TypeKind,
    /// The spec's own example values for this schema, for round-trip tests.
    pub examples: Vec<Value>,
}

#[derive(Debug)]
pub enum TypeKind {
    Struct {
        fields: Vec<Field>,
        /// Keys not listed in `properties` (`additionalProperties` /
        /// `patternProperties`), kept in a flattened map of this value type.
        extra: Option<Ty>,
    },
    /// A string enum; unknown values are kept, not rejected.
    StringEnum { values: Vec<EnumValue> },
    /// `oneOf`/`anyOf` without a discriminating property: tried in order.
    Untagged { variants: Vec<Variant> },
    /// `oneOf`/`anyOf` whose members all fix one property (`tag`) to a constant.
    Tagged { tag: String, variants: Vec<Variant> },
}

#[derive(Debug, Clone)]
pub struct EnumValue {
    pub wire: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Variant {
    pub name: String,
    /// For tagged enums: the tag value.
    pub wire: Option<String>,
    pub ty: Ty,
}

#[derive(Debug, Clone)]
pub struct Field {
    pub wire: String,
    pub name: String,
    /// The value type; `Option` is added at emission for optional fields without a
    /// default.
    pub ty: Ty,
    pub required: bool,
    pub default: Option<Value>,
    pub doc: Doc,
}
