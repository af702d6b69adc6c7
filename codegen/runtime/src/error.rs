//! The Matrix error envelope (`{"errcode": ..., "error": ...}`), used for every
//! failure the framework produces and for errors an implementation returns.

use std::fmt;

use http::StatusCode;
use serde_json::{Map, Value};

use crate::response::{self, HttpResponse};

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

    /// The JSON envelope with its status (a 429 with `retry_after_ms` also gets
    /// `Retry-After`, see [`response::json`]).
    pub fn into_response(self) -> HttpResponse {
        response::json(self.status, &self.to_json())
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
