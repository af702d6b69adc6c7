//! Building HTTP responses: JSON bodies, raw bytes, headers.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use crate::error::MatrixError;

pub type HttpResponse = http::Response<Full<Bytes>>;

/// A non-JSON body (media upload or download) and its content type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Binary {
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

/// An operation's typed response turned into HTTP (generated per operation).
pub trait IntoResponse {
    fn into_response(self) -> HttpResponse;
}

/// A response status given as a number (for `4XX`-style response classes).
pub fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A JSON response. A 429 whose body has `retry_after_ms` also gets the
/// `Retry-After` header the spec asks for (whole seconds, rounded up), whether it
/// is a [`MatrixError`] or an operation's documented 429 variant.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> HttpResponse {
    let bytes = match serde_json::to_vec(body) {
        Ok(bytes) => bytes,
        Err(e) => {
            return MatrixError::unknown(format!("response not serialisable: {e}")).into_response()
        }
    };
    let retry_after_ms = (status == StatusCode::TOO_MANY_REQUESTS)
        .then(|| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .flatten()
        .and_then(|v| v.get("retry_after_ms").and_then(serde_json::Value::as_u64));
    let mut resp = http::Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(ms) = retry_after_ms {
        set_header(&mut resp, "retry-after", &ms.div_ceil(1000).to_string());
    }
    resp
}

pub fn binary(status: StatusCode, body: Binary) -> HttpResponse {
    let mut resp = http::Response::new(Full::new(body.bytes));
    *resp.status_mut() = status;
    let content_type = body
        .content_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    set_header(&mut resp, "content-type", content_type);
    resp
}

pub fn empty(status: StatusCode) -> HttpResponse {
    let mut resp = http::Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// Sets a header; a value that cannot be a header (control characters) is dropped
/// rather than allowed to break the response.
pub fn set_header(resp: &mut HttpResponse, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

/// Chains header setting onto a response (used by generated `IntoResponse` impls).
pub trait ResponseBuilder {
    fn header(self, name: &'static str, value: Option<&str>) -> Self;
}

impl ResponseBuilder for HttpResponse {
    fn header(mut self, name: &'static str, value: Option<&str>) -> Self {
        if let Some(v) = value {
            set_header(&mut self, name, v);
        }
        self
    }
}
