//! Request extraction: path, query and header parameters and bodies, each failure
//! mapped to the Matrix error a client expects.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde::de::{DeserializeOwned, Deserializer, Visitor};
use serde_json::error::Category;

use crate::error::MatrixError;
use crate::response::Binary;

/// The peer's address; a server puts it in the request's extensions so
/// implementations can rate-limit per IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

/// What an implementation may want to know about the request beyond its typed
/// parameters.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub remote_addr: Option<SocketAddr>,
    /// The operation the request was routed to (its generated `METADATA`).
    pub operation: &'static crate::auth::Metadata,
}

/// A request matched to an operation, its body read (within the size limit).
#[derive(Debug)]
pub struct Incoming {
    pub info: RequestInfo,
    pub(crate) path_params: Vec<String>,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

/// Builds an operation's typed request from an [`Incoming`] (generated per operation).
pub trait FromRequest: Sized {
    fn from_request(req: &Incoming) -> Result<Self, MatrixError>;
}

/// A parameter value parsed from its text form; `None` means invalid.
pub trait FromParam: Sized {
    fn from_param(s: &str) -> Option<Self>;
}

impl FromParam for String {
    fn from_param(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
}
impl FromParam for i64 {
    fn from_param(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}
impl FromParam for f64 {
    fn from_param(s: &str) -> Option<Self> {
        s.parse().ok().filter(|f: &f64| f.is_finite())
    }
}
impl FromParam for bool {
    fn from_param(s: &str) -> Option<Self> {
        match s {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
}

fn parse<T: FromParam>(kind: &str, name: &str, value: &str) -> Result<T, MatrixError> {
    T::from_param(value)
        .ok_or_else(|| MatrixError::invalid_param(format!("invalid {kind} parameter `{name}`")))
}

impl Incoming {
    pub fn path<T: FromParam>(&self, index: usize, name: &str) -> Result<T, MatrixError> {
        let value = self.path_params.get(index).ok_or_else(|| {
            MatrixError::missing_param(format!("missing path parameter `{name}`"))
        })?;
        parse("path", name, value)
    }

    pub fn query<T: FromParam>(&self, name: &str) -> Result<Option<T>, MatrixError> {
        match self.query.iter().find(|(k, _)| k == name) {
            Some((_, v)) => parse("query", name, v).map(Some),
            None => Ok(None),
        }
    }

    pub fn query_required<T: FromParam>(&self, name: &str) -> Result<T, MatrixError> {
        self.query(name)?
            .ok_or_else(|| MatrixError::missing_param(format!("missing query parameter `{name}`")))
    }

    /// Every occurrence of a repeated query parameter (`?via=a&via=b`).
    pub fn query_list<T: FromParam>(&self, name: &str) -> Result<Vec<T>, MatrixError> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| parse("query", name, v))
            .collect()
    }

    pub fn query_list_required<T: FromParam>(&self, name: &str) -> Result<Vec<T>, MatrixError> {
        let list = self.query_list(name)?;
        if list.is_empty() {
            return Err(MatrixError::missing_param(format!(
                "missing query parameter `{name}`"
            )));
        }
        Ok(list)
    }

    /// The query parameters the operation does not declare (an exploded
    /// object-valued parameter).
    pub fn query_rest(&self, declared: &[&str]) -> BTreeMap<String, String> {
        self.query
            .iter()
            .filter(|(k, _)| !declared.contains(&k.as_str()) && k != "access_token")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn header<T: FromParam>(&self, name: &str) -> Result<Option<T>, MatrixError> {
        match self.info.headers.get(name) {
            Some(v) => {
                let text = v
                    .to_str()
                    .map_err(|_| MatrixError::invalid_param(format!("invalid header `{name}`")))?;
                parse("header", name, text).map(Some)
            }
            None => Ok(None),
        }
    }

    pub fn header_required<T: FromParam>(&self, name: &str) -> Result<T, MatrixError> {
        self.header(name)?
            .ok_or_else(|| MatrixError::missing_param(format!("missing header `{name}`")))
    }

    /// The JSON body. An empty body counts as `{}` only where `{}` is a valid body
    /// (no required fields): clients send no body to such operations. Elsewhere an
    /// empty body is not JSON (`M_NOT_JSON`), not a request missing its fields.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, MatrixError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return serde_json::from_str("{}").map_err(|_| {
                MatrixError::not_json(
                    "Content not JSON: the body is empty; this operation needs one",
                )
            });
        }
        parse_json(self.text()?)
    }

    /// An optional JSON body: absent when the request has none.
    pub fn json_optional<T: DeserializeOwned>(&self) -> Result<Option<T>, MatrixError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        parse_json(self.text()?).map(Some)
    }

    /// The body as text. JSON is UTF-8 throughout (RFC 8259), including strings in
    /// fields the type ignores, which serde would otherwise skip unchecked.
    fn text(&self) -> Result<&str, MatrixError> {
        std::str::from_utf8(&self.body)
            .map_err(|e| MatrixError::not_json(format!("Content not JSON: not UTF-8 ({e})")))
    }

    /// An `application/x-www-form-urlencoded` body: a missing required field
    /// is `M_MISSING_PARAM`, any other mismatch `M_INVALID_PARAM`. Unknown
    /// fields are ignored, as in JSON bodies.
    pub fn form<T: DeserializeOwned>(&self) -> Result<T, MatrixError> {
        serde_urlencoded::from_bytes(&self.body).map_err(|e| {
            let message = e.to_string();
            if message.starts_with("missing field") {
                MatrixError::missing_param(format!("form body: {message}"))
            } else {
                MatrixError::invalid_param(format!("form body: {message}"))
            }
        })
    }

    /// An optional form body: absent when the request has none.
    pub fn form_optional<T: DeserializeOwned>(&self) -> Result<Option<T>, MatrixError> {
        if self.body.is_empty() {
            return Ok(None);
        }
        self.form().map(Some)
    }

    pub fn binary(&self) -> Binary {
        Binary {
            content_type: self
                .info
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            bytes: self.body.clone(),
        }
    }
}

/// Not JSON at all (syntax, truncation, invalid UTF-8) is `M_NOT_JSON`; JSON of the
/// wrong shape is `M_BAD_JSON`, or `M_MISSING_PARAM` when a required field is absent.
fn parse_json<T: DeserializeOwned>(text: &str) -> Result<T, MatrixError> {
    let mut de = serde_json::Deserializer::from_str(text);
    T::deserialize(ObjectBody(&mut de))
        .and_then(|value| de.end().map(|()| value))
        .map_err(|e| json_error(e, text))
}

/// serde's derived structs also accept a JSON array of their fields in order, so
/// `[null, null, true]` would be a deactivation request. A body whose type is a
/// struct must be an object: this deserializer reads a struct as a map and passes
/// everything else through. (Nested structs keep serde's leniency.)
struct ObjectBody<'a, 'de>(&'a mut serde_json::Deserializer<serde_json::de::StrRead<'de>>);

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method($($arg,)* visitor)
        }
    )*};
}

impl<'de> Deserializer<'de> for ObjectBody<'_, 'de> {
    type Error = serde_json::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_map(visitor)
    }

    forward! {
        deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
        deserialize_i32(); deserialize_i64(); deserialize_i128(); deserialize_u8();
        deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
        deserialize_f32(); deserialize_f64(); deserialize_char(); deserialize_str();
        deserialize_string(); deserialize_bytes(); deserialize_byte_buf();
        deserialize_option(); deserialize_unit(); deserialize_seq(); deserialize_map();
        deserialize_identifier(); deserialize_ignored_any();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
    }
}

fn json_error(e: serde_json::Error, text: &str) -> MatrixError {
    // serde reports the first problem it meets: `[1, 2` against a struct is a shape
    // error before it is a syntax error. Failing requests are re-read for syntax.
    if e.classify() == Category::Data
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_err()
    {
        return MatrixError::not_json(format!("Content not JSON: {e}"));
    }
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            MatrixError::not_json(format!("Content not JSON: {e}"))
        }
        Category::Data if e.to_string().starts_with("missing field") => {
            MatrixError::missing_param(e.to_string())
        }
        Category::Data => MatrixError::bad_json(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Metadata;

    static OP: Metadata = Metadata::for_tests(Method::POST, "/test");

    fn incoming(body: &'static [u8]) -> Incoming {
        Incoming {
            info: RequestInfo {
                method: Method::POST,
                path: "/test".into(),
                headers: HeaderMap::new(),
                remote_addr: None,
                operation: &OP,
            },
            path_params: Vec::new(),
            query: Vec::new(),
            body: Bytes::from_static(body),
        }
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Grant {
        grant_type: String,
        max_age: Option<i64>,
    }

    #[test]
    fn form_bodies_parse_typed_fields_and_name_what_is_wrong() {
        let ok: Grant = incoming(b"grant_type=a%20b&max_age=5&extra=1")
            .form()
            .unwrap();
        assert_eq!(
            ok,
            Grant {
                grant_type: "a b".into(),
                max_age: Some(5)
            }
        );
        let missing = incoming(b"max_age=5").form::<Grant>().unwrap_err();
        assert_eq!(missing.errcode, "M_MISSING_PARAM");
        assert!(missing.error.contains("grant_type"), "{}", missing.error);
        let invalid = incoming(b"grant_type=x&max_age=soon")
            .form::<Grant>()
            .unwrap_err();
        assert_eq!(invalid.errcode, "M_INVALID_PARAM");
        assert_eq!(incoming(b"").form_optional::<Grant>().unwrap(), None);
    }
}
