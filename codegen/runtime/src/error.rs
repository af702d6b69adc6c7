//! Error envelopes: the [`ErrorEnvelope`] trait, and the Matrix one
//! (`{"errcode": ..., "error": ...}`), in which the framework states its own
//! failures and which most operations answer errors in.

use std::fmt;

use http::StatusCode;
use serde_json::{Map, Value};

use crate::response::{self, HttpResponse, IntoResponse};

/// The shape of an API file's error bodies (its `x-error-envelope`): what its
/// handlers return as `Err`, and what the client parses a non-variant answer
/// as. The framework states its own failures (bad JSON, a missing token, a
/// rate limit) as a [`MatrixError`], which each envelope converts from.
pub trait ErrorEnvelope:
    From<MatrixError> + IntoResponse + Clone + fmt::Debug + Send + 'static
{
    /// An error body of this envelope with its status, or `None` when the
    /// body is not one (the client's side of [`IntoResponse`]).
    fn from_body(status: StatusCode, body: &[u8]) -> Option<Self>;
}

/// A Matrix standard error: an HTTP status, an `errcode`, a human-readable `error`
/// and any extra fields the error code defines (`retry_after_ms`, `soft_logout`).
/// (The extra fields are boxed to keep `Result<_, MatrixError>` small.)
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixError {
    pub status: StatusCode,
    pub errcode: String,
    pub error: String,
    pub extra: Box<Map<String, Value>>,
}

impl MatrixError {
    pub fn new(status: StatusCode, errcode: impl Into<String>, error: impl Into<String>) -> Self {
        MatrixError {
            status,
            errcode: errcode.into(),
            error: error.into(),
            extra: Box::default(),
        }
    }

    /// Adds a field next to `errcode` and `error`.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    pub fn not_json(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_NOT_JSON", msg)
    }
    pub fn bad_json(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_BAD_JSON", msg)
    }
    pub fn missing_param(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_MISSING_PARAM", msg)
    }
    pub fn invalid_param(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "M_INVALID_PARAM", msg)
    }
    pub fn too_large(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE", msg)
    }
    pub fn unrecognized(status: StatusCode, msg: impl Into<String>) -> Self {
        Self::new(status, "M_UNRECOGNIZED", msg)
    }
    pub fn missing_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "M_MISSING_TOKEN",
            "Missing access token",
        )
    }
    /// `soft_logout: true` tells the client its session expired rather than was
    /// revoked, so it may refresh or log in again keeping its local state.
    pub fn unknown_token(soft_logout: bool) -> Self {
        let e = Self::new(
            StatusCode::UNAUTHORIZED,
            "M_UNKNOWN_TOKEN",
            "Unknown or expired access token",
        );
        if soft_logout {
            e.with("soft_logout", true)
        } else {
            e
        }
    }
    pub fn forbidden(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "M_FORBIDDEN", msg)
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "M_NOT_FOUND", msg)
    }
    /// `429 M_LIMIT_EXCEEDED`; the router also sends a `Retry-After` header.
    pub fn limit_exceeded(retry_after_ms: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "M_LIMIT_EXCEEDED",
            "Too many requests",
        )
        .with("retry_after_ms", retry_after_ms)
    }
    pub fn unknown(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "M_UNKNOWN", msg)
    }

    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("errcode".into(), Value::String(self.errcode.clone()));
        body.insert("error".into(), Value::String(self.error.clone()));
        for (k, v) in self.extra.iter() {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }
}

impl IntoResponse for MatrixError {
    /// The JSON envelope with its status (a 429 with `retry_after_ms` also gets
    /// `Retry-After`, see [`response::json`]).
    fn into_response(self) -> HttpResponse {
        response::json(self.status, &self.to_json())
    }
}

/// A failure in the envelope `E` (what `Metadata::render_error` points at).
pub fn render_error<E: ErrorEnvelope>(e: MatrixError) -> HttpResponse {
    E::from(e).into_response()
}

impl ErrorEnvelope for MatrixError {
    fn from_body(status: StatusCode, body: &[u8]) -> Option<Self> {
        let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(body) else {
            return None;
        };
        let Some(Value::String(errcode)) = fields.remove("errcode") else {
            return None;
        };
        let error = match fields.remove("error") {
            Some(Value::String(error)) => error,
            _ => String::new(),
        };
        Some(MatrixError {
            status,
            errcode,
            error,
            extra: Box::new(fields),
        })
    }
}

impl fmt::Display for MatrixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.errcode,
            self.error
        )
    }
}

impl std::error::Error for MatrixError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_error_body_round_trips_with_its_extra_fields() {
        let e = MatrixError::limit_exceeded(1500);
        let body = serde_json::to_vec(&e.to_json()).unwrap();
        assert_eq!(MatrixError::from_body(e.status, &body), Some(e));
    }

    #[test]
    fn a_body_without_errcode_is_not_a_matrix_error() {
        for body in [&b"{}"[..], b"[]", b"not json", br#"{"errcode": 1}"#] {
            assert_eq!(MatrixError::from_body(StatusCode::BAD_REQUEST, body), None);
        }
    }
}
