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

/// An HTML page (`text/html`), rendered by the implementation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Html(pub String);

/// The Content-Security-Policy every page gets unless its operation documents
/// (and the handler sets) its own: nothing from elsewhere and nothing inline —
/// scripts, styles, images and requests only from this origin — no framing
/// (clickjacking), no `<base>`. (No `form-action`: browsers apply it to the
/// redirect after a post too, and a validation form ends at the client's
/// `next_link`, elsewhere by design.)
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A page: `text/html; charset=utf-8` with [`PAGE_CSP`], `nosniff`, no
/// referrer (pages carry one-time tokens in their URLs) and no caching.
pub fn html(status: StatusCode, page: Html) -> HttpResponse {
    let mut resp = http::Response::new(Full::new(Bytes::from(page.0)));
    *resp.status_mut() = status;
    set_header(&mut resp, "content-type", "text/html; charset=utf-8");
    set_header(&mut resp, "content-security-policy", PAGE_CSP);
    set_header(&mut resp, "x-content-type-options", "nosniff");
    set_header(&mut resp, "referrer-policy", "no-referrer");
    set_header(&mut resp, "cache-control", "no-store");
    resp
}

/// An `application/x-www-form-urlencoded` body.
pub fn form<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> HttpResponse {
    match serde_urlencoded::to_string(body) {
        Ok(text) => {
            let mut resp = http::Response::new(Full::new(Bytes::from(text)));
            *resp.status_mut() = status;
            set_header(
                &mut resp,
                "content-type",
                "application/x-www-form-urlencoded",
            );
            resp
        }
        Err(e) => MatrixError::unknown(format!("response not serialisable: {e}")).into_response(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_strict_about_where_they_load_from_and_who_frames_them() {
        let resp = html(StatusCode::OK, Html("<p>hi</p>".into()));
        let h = resp.headers();
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        assert_eq!(h["content-security-policy"], PAGE_CSP);
        assert!(
            PAGE_CSP.contains("default-src 'none'") && PAGE_CSP.contains("frame-ancestors 'none'")
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["cache-control"], "no-store");
    }

    #[test]
    fn form_answers_are_urlencoded() {
        let resp = form(StatusCode::OK, &[("state", "a b&c")]);
        assert_eq!(
            resp.headers()["content-type"],
            "application/x-www-form-urlencoded"
        );
        let body = resp.into_body();
        let bytes = ready_body_text(body);
        assert_eq!(bytes, "state=a+b%26c");
    }

    /// The body of a `Full` without an executor: it is ready at once.
    fn ready_body_text(body: Full<Bytes>) -> String {
        use http_body::Body as _;
        let mut body = std::pin::pin!(body);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match body.as_mut().poll_frame(&mut cx) {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap()
            }
            _ => String::new(),
        }
    }
}
