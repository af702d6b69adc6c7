//! The client side of an operation, independent of any HTTP stack: building the
//! HTTP request for a typed `Request` ([`Outgoing`]) and reading the typed
//! `Response` back from the answer ([`Answer`]). Generated code implements
//! [`ClientRequest`] per operation with a few calls to these; the `client`
//! feature's [`Client`](crate::Client) sends them over hyper, and anything else
//! that speaks `http` types can too.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::auth::{AuthScheme, Metadata};
use crate::error::ErrorEnvelope;
use crate::response::{Binary, Html};
use crate::to_param::ToParam;

/// An operation's typed request as a client sends it (generated per operation).
pub trait ClientRequest {
    /// The operation's typed `Response`.
    type Response;
    /// The error envelope of the operation's API file.
    type Error: ErrorEnvelope;

    /// The operation's generated `METADATA`.
    fn metadata() -> &'static Metadata;

    /// The HTTP request: `base_url` (scheme and authority, e.g.
    /// `http://localhost:8008`) joined with the operation's path, its parameters
    /// and body; `access_token` is sent when the operation takes one.
    fn to_http(
        &self,
        base_url: &str,
        access_token: Option<&str>,
    ) -> Result<http::Request<Bytes>, ClientError<Self::Error>>;

    /// The typed response for an answer: a documented status becomes its
    /// variant, an error envelope `ClientError::Api`, anything else an error.
    fn parse(response: http::Response<Bytes>) -> Result<Self::Response, ClientError<Self::Error>>;
}

/// Why a client call did not produce the operation's typed `Response`.
#[derive(Debug)]
pub enum ClientError<E> {
    /// The server answered with an error envelope (`{"errcode": ...}`).
    Api(E),
    /// A status the operation does not document, and not an error envelope.
    UnexpectedStatus { status: StatusCode, body: Bytes },
    /// A documented status whose body (or a required header) does not parse.
    Decode { status: StatusCode, message: String },
    /// The request could not be sent or the answer not read.
    Transport(Box<dyn std::error::Error + Send + Sync>),
    /// No answer within the client's timeout.
    Timeout,
    /// The request cannot be expressed in HTTP (a value not allowed in a
    /// header, an unparseable base URL, a body that does not serialise).
    InvalidRequest(String),
}

impl<E> ClientError<E> {
    /// The envelope, when the server answered with one.
    pub fn api(&self) -> Option<&E> {
        match self {
            ClientError::Api(e) => Some(e),
            _ => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for ClientError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Api(e) => write!(f, "the server answered an error: {e}"),
            ClientError::UnexpectedStatus { status, body } => {
                write!(f, "undocumented status {status} ({} byte body)", body.len())
            }
            ClientError::Decode { status, message } => {
                write!(f, "answer with status {status} does not parse: {message}")
            }
            ClientError::Transport(e) => write!(f, "transport error: {e}"),
            ClientError::Timeout => f.write_str("no answer in time"),
            ClientError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ClientError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Transport(e) => Some(&**e),
            _ => None,
        }
    }
}

/// Every byte but the unreserved ones (RFC 3986: letters, digits, `-._~`) is
/// escaped in a path segment, so `@a:b` becomes `%40a%3Ab`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Builds an operation's HTTP request (used by the generated `to_http`). Each
/// method records a part; [`Outgoing::build`] reports the first problem.
pub struct Outgoing {
    metadata: &'static Metadata,
    base_url: String,
    path_params: Vec<String>,
    query: form_urlencoded::Serializer<'static, String>,
    has_query: bool,
    headers: Vec<(String, String)>,
    body: Bytes,
    content_type: Option<String>,
    error: Option<String>,
}

impl Outgoing {
    pub fn new(metadata: &'static Metadata, base_url: &str, access_token: Option<&str>) -> Self {
        let mut out = Outgoing {
            metadata,
            base_url: base_url.trim_end_matches('/').to_owned(),
            path_params: Vec::new(),
            query: form_urlencoded::Serializer::new(String::new()),
            has_query: false,
            headers: Vec::new(),
            body: Bytes::new(),
            content_type: None,
            error: None,
        };
        if let Some(token) = access_token {
            out.credential(token);
        }
        out
    }

    /// Puts the token where the operation's schemes look for it: the first
    /// `Authorization` scheme (`Bearer` preferred), else a query parameter or
    /// header scheme. An operation without security gets none.
    fn credential(&mut self, token: &str) {
        let schemes = self.metadata.security.schemes;
        let bearer = schemes.iter().find(
            |(_, s)| matches!(s, AuthScheme::Authorization(p) if p.eq_ignore_ascii_case("Bearer")),
        );
        match bearer.or_else(|| schemes.first()).map(|(_, s)| *s) {
            Some(AuthScheme::Authorization("")) => self.push_header("authorization", token),
            Some(AuthScheme::Authorization(prefix)) => {
                self.push_header("authorization", &format!("{prefix} {token}"))
            }
            Some(AuthScheme::Query(name)) => {
                self.has_query = true;
                self.query.append_pair(name, token);
            }
            Some(AuthScheme::Header(name)) => self.push_header(name, token),
            None => {}
        }
    }

    fn push_header(&mut self, name: &str, value: &str) {
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    /// The next `{param}` of the path template, percent-encoded.
    pub fn path(mut self, value: &impl ToParam) -> Self {
        let text = value.to_param();
        if text.is_empty() && self.error.is_none() {
            self.error = Some("a path parameter is empty".into());
        }
        self.path_params
            .push(percent_encoding::utf8_percent_encode(&text, SEGMENT).to_string());
        self
    }

    pub fn query(mut self, name: &str, value: &impl ToParam) -> Self {
        self.has_query = true;
        self.query.append_pair(name, &value.to_param());
        self
    }

    /// An optional query parameter: absent when `None`.
    pub fn query_opt<T: ToParam>(self, name: &str, value: Option<&T>) -> Self {
        match value {
            Some(v) => self.query(name, v),
            None => self,
        }
    }

    /// A repeated query parameter (`?via=a&via=b`).
    pub fn query_list<T: ToParam>(mut self, name: &str, values: &[T]) -> Self {
        for v in values {
            self = self.query(name, v);
        }
        self
    }

    /// An exploded object-valued query parameter: one pair per entry.
    pub fn query_map<'a, K, V, I>(mut self, entries: I) -> Self
    where
        K: AsRef<str> + 'a,
        V: ToParam + 'a,
        I: IntoIterator<Item = (&'a K, &'a V)>,
    {
        for (k, v) in entries {
            self = self.query(k.as_ref(), v);
        }
        self
    }

    pub fn header(mut self, name: &str, value: &impl ToParam) -> Self {
        self.push_header(name, &value.to_param());
        self
    }

    /// An optional header: absent when `None`.
    pub fn header_opt<T: ToParam>(self, name: &str, value: Option<&T>) -> Self {
        match value {
            Some(v) => self.header(name, v),
            None => self,
        }
    }

    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.body = Bytes::from(bytes);
                self.content_type = Some("application/json".into());
            }
            Err(e) => {
                self.error
                    .get_or_insert_with(|| format!("body does not serialise: {e}"));
            }
        }
        self
    }

    /// An optional JSON body: no body at all when `None`.
    pub fn json_opt<T: Serialize>(self, body: Option<&T>) -> Self {
        match body {
            Some(b) => self.json(b),
            None => self,
        }
    }

    /// An `application/x-www-form-urlencoded` body.
    pub fn form<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_urlencoded::to_string(body) {
            Ok(text) => {
                self.body = Bytes::from(text);
                self.content_type = Some("application/x-www-form-urlencoded".into());
            }
            Err(e) => {
                self.error
                    .get_or_insert_with(|| format!("form body does not serialise: {e}"));
            }
        }
        self
    }

    /// An optional form body: no body at all when `None`.
    pub fn form_opt<T: Serialize>(self, body: Option<&T>) -> Self {
        match body {
            Some(b) => self.form(b),
            None => self,
        }
    }

    pub fn binary(mut self, body: &Binary) -> Self {
        self.body = body.bytes.clone();
        self.content_type = Some(
            body.content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
        );
        self
    }

    /// The request, or why there is none.
    pub fn build<E>(mut self) -> Result<http::Request<Bytes>, ClientError<E>> {
        if let Some(e) = self.error {
            return Err(ClientError::InvalidRequest(e));
        }
        let mut uri = self.base_url;
        let mut params = self.path_params.into_iter();
        let mut rest = self.metadata.path;
        while let Some(start) = rest.find('{') {
            uri.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .map_or(rest.len(), |e| start + e + 1);
            match params.next() {
                Some(p) => uri.push_str(&p),
                None => {
                    return Err(ClientError::InvalidRequest(format!(
                        "no value for path parameter {}",
                        &rest[start..end]
                    )))
                }
            }
            rest = &rest[end..];
        }
        uri.push_str(rest);
        if self.has_query {
            uri.push('?');
            uri.push_str(&self.query.finish());
        }
        let mut builder = http::Request::builder()
            .method(self.metadata.method.clone())
            .uri(uri.as_str());
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ClientError::InvalidRequest(format!("`{name}` is not a header name"))
            })?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                ClientError::InvalidRequest(format!("the value of `{name}` cannot be a header"))
            })?;
            builder = builder.header(name, value);
        }
        if let Some(ct) = &self.content_type {
            let value = HeaderValue::from_str(ct).map_err(|_| {
                ClientError::InvalidRequest("the content type cannot be a header".into())
            })?;
            builder = builder.header(http::header::CONTENT_TYPE, value);
        }
        builder
            .body(self.body)
            .map_err(|e| ClientError::InvalidRequest(format!("{uri}: {e}")))
    }
}

/// An answer being read into an operation's typed response (used by the
/// generated `parse`); `E` is the operation's error envelope.
pub struct Answer<E> {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
    envelope: PhantomData<fn() -> E>,
}

impl<E: ErrorEnvelope> Answer<E> {
    pub fn new(response: http::Response<Bytes>) -> Self {
        let (parts, body) = response.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
            envelope: PhantomData,
        }
    }

    /// The status code, to match on.
    pub fn status(&self) -> u16 {
        self.status.as_u16()
    }

    /// A JSON body of the documented type. A body that is not one but is the
    /// error envelope (a `401` from the framework where the operation documents
    /// a `401` of its own) is that error.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError<E>> {
        // An empty body reads as `{}`, as the server reads one.
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &self.body
        };
        serde_json::from_slice(body).map_err(|e| match E::from_body(self.status, &self.body) {
            Some(envelope) => ClientError::Api(envelope),
            None => ClientError::Decode {
                status: self.status,
                message: e.to_string(),
            },
        })
    }

    /// A form body of the documented type.
    pub fn form<T: DeserializeOwned>(&self) -> Result<T, ClientError<E>> {
        serde_urlencoded::from_bytes(&self.body).map_err(|e| ClientError::Decode {
            status: self.status,
            message: e.to_string(),
        })
    }

    /// A page; bytes that are not UTF-8 are replaced, as a browser would show
    /// them. An answer that is not HTML but the error envelope (the handler's
    /// error on a status the operation documents with a page) is that error.
    pub fn html(&self) -> Result<Html, ClientError<E>> {
        let is_html = self
            .header("content-type")
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("text/html"));
        if !is_html {
            if let Some(envelope) = E::from_body(self.status, &self.body) {
                return Err(ClientError::Api(envelope));
            }
        }
        Ok(Html(String::from_utf8_lossy(&self.body).into_owned()))
    }

    pub fn binary(&self) -> Binary {
        Binary {
            content_type: self.header("content-type"),
            bytes: self.body.clone(),
        }
    }

    /// A documented header, if present and text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    pub fn header_required(&self, name: &str) -> Result<String, ClientError<E>> {
        self.header(name).ok_or_else(|| ClientError::Decode {
            status: self.status,
            message: format!("missing header `{name}`"),
        })
    }

    /// An answer that is no variant: the error envelope, or an unexpected status.
    pub fn error<T>(self) -> Result<T, ClientError<E>> {
        Err(match E::from_body(self.status, &self.body) {
            Some(envelope) => ClientError::Api(envelope),
            None => ClientError::UnexpectedStatus {
                status: self.status,
                body: self.body,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::MatrixError;

    static OP: Metadata =
        Metadata::for_tests(http::Method::PUT, "/_x/v3/rooms/{roomId}/state/{key}/end")
            .secured(&[("b", AuthScheme::Authorization("Bearer"))]);

    #[test]
    fn builds_path_query_headers_and_token() {
        let req = Outgoing::new(&OP, "http://h:1/", Some("tok"))
            .path(&"@a:b".to_string())
            .path(&"x/y z".to_string())
            .query_list("via", &["a b".to_string(), "c&d".to_string()])
            .query_opt::<bool>("limit", None)
            .header("x-id", &7i64)
            .json(&serde_json::json!({"k": 1}))
            .build::<MatrixError>()
            .unwrap();
        assert_eq!(
            req.uri(),
            "http://h:1/_x/v3/rooms/%40a%3Ab/state/x%2Fy%20z/end?via=a+b&via=c%26d"
        );
        assert_eq!(req.headers()["authorization"], "Bearer tok");
        assert_eq!(req.headers()["x-id"], "7");
        assert_eq!(req.headers()["content-type"], "application/json");
        assert_eq!(&req.body()[..], br#"{"k":1}"#);
    }

    #[test]
    fn a_value_that_cannot_be_a_header_is_an_invalid_request() {
        let r = Outgoing::new(&OP, "http://h", None)
            .path(&"a".to_string())
            .path(&"b".to_string())
            .header("x-id", &"line\nbreak".to_string())
            .build::<MatrixError>();
        assert!(matches!(r, Err(ClientError::InvalidRequest(_))));
        let r = Outgoing::new(&OP, "http://h", None)
            .path(&"a".to_string())
            .build::<MatrixError>();
        assert!(matches!(r, Err(ClientError::InvalidRequest(_))));
    }

    fn answer(status: u16, body: &str) -> Answer<MatrixError> {
        let mut resp = http::Response::new(Bytes::from(body.to_owned()));
        *resp.status_mut() = StatusCode::from_u16(status).unwrap();
        Answer::new(resp)
    }

    #[test]
    fn answers_that_are_no_variant_are_the_envelope_or_unexpected() {
        let e = answer(403, r#"{"errcode":"M_FORBIDDEN","error":"no"}"#)
            .error::<()>()
            .unwrap_err();
        assert!(matches!(e, ClientError::Api(m) if m.errcode == "M_FORBIDDEN"));
        let e = answer(502, "<html>").error::<()>().unwrap_err();
        assert!(matches!(e, ClientError::UnexpectedStatus { .. }));
        let e = answer(200, "[1]")
            .json::<std::collections::BTreeMap<String, i64>>()
            .unwrap_err();
        assert!(matches!(e, ClientError::Decode { .. }));
        let e = answer(401, r#"{"errcode":"M_MISSING_TOKEN"}"#)
            .json::<Vec<i64>>()
            .unwrap_err();
        assert!(matches!(e, ClientError::Api(_)));
    }
}
