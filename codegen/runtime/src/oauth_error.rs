//! The OAuth 2.0 error envelope (RFC 6749 §5.2, RFC 7591 §3.2.2):
//! `{"error": "invalid_request", "error_description": "..."}`, for API files
//! with `x-error-envelope: oauth`.

use std::fmt;

use http::StatusCode;
use serde_json::{Map, Value};

use crate::error::{ErrorEnvelope, MatrixError};
use crate::response::{self, HttpResponse, IntoResponse};

/// An OAuth 2.0 error: a status, an `error` code from the RFCs
/// (`invalid_request`, `invalid_grant`, `invalid_client_metadata`, …) and an
/// optional human-readable `error_description`.
#[derive(Clone, Debug, PartialEq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: String,
    pub error_description: Option<String>,
    /// For a 429: how long to wait, sent as `Retry-After` (not in the body,
    /// which the RFCs define without it).
    pub retry_after_ms: Option<u64>,
}

impl OAuthError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        OAuthError {
            status,
            error: error.into(),
            error_description: None,
            retry_after_ms: None,
        }
    }

    pub fn described(mut self, description: impl Into<String>) -> Self {
        self.error_description = Some(description.into());
        self
    }

    /// `400 invalid_request`: a parameter is missing, repeated or malformed.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request").described(description)
    }

    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".into(), Value::String(self.error.clone()));
        if let Some(d) = &self.error_description {
            body.insert("error_description".into(), Value::String(d.clone()));
        }
        Value::Object(body)
    }
}

/// The framework's own failures in OAuth terms: a bad request body or
/// parameter is `invalid_request`, a missing or bad bearer token
/// `invalid_token` (RFC 6750), a rate limit keeps its 429 (and
/// `Retry-After`), anything else on the server `server_error`. The Matrix
/// message becomes the `error_description`.
impl From<MatrixError> for OAuthError {
    fn from(e: MatrixError) -> Self {
        let error = match e.status.as_u16() {
            401 => "invalid_token",
            403 => "access_denied",
            429 | 503 => "temporarily_unavailable",
            400..=499 => "invalid_request",
            _ => "server_error",
        };
        let mut oauth = OAuthError::new(e.status, error).described(e.error);
        oauth.retry_after_ms = e.extra.get("retry_after_ms").and_then(Value::as_u64);
        oauth
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> HttpResponse {
        let mut resp = response::json(self.status, &self.to_json());
        // RFC 6749 §5.1: responses with tokens or errors must not be cached.
        response::set_header(&mut resp, "cache-control", "no-store");
        if let Some(ms) = self.retry_after_ms {
            response::set_header(&mut resp, "retry-after", &ms.div_ceil(1000).to_string());
        }
        resp
    }
}

impl ErrorEnvelope for OAuthError {
    fn from_body(status: StatusCode, body: &[u8]) -> Option<Self> {
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
            return None;
        };
        let Some(Value::String(error)) = fields.get("error") else {
            return None;
        };
        Some(OAuthError {
            status,
            error: error.clone(),
            error_description: fields
                .get("error_description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            retry_after_ms: None,
        })
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.error)?;
        if let Some(d) = &self.error_description {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for OAuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framework_failures_become_oauth_codes_with_their_status() {
        let cases = [
            (MatrixError::bad_json("x"), 400, "invalid_request"),
            (MatrixError::missing_token(), 401, "invalid_token"),
            (MatrixError::forbidden("x"), 403, "access_denied"),
            (MatrixError::too_large("x"), 413, "invalid_request"),
            (
                MatrixError::limit_exceeded(1200),
                429,
                "temporarily_unavailable",
            ),
            (MatrixError::unknown("x"), 500, "server_error"),
        ];
        for (matrix, status, error) in cases {
            let oauth = OAuthError::from(matrix);
            assert_eq!(
                (oauth.status.as_u16(), oauth.error.as_str()),
                (status, error)
            );
        }
    }

    #[test]
    fn the_wire_form_round_trips_and_is_not_cached() {
        let e = OAuthError::invalid_request("missing `code_verifier`");
        let resp = e.clone().into_response();
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let body = serde_json::to_vec(&e.to_json()).unwrap();
        assert_eq!(OAuthError::from_body(e.status, &body), Some(e));
        assert_eq!(OAuthError::from_body(StatusCode::BAD_REQUEST, b"{}"), None);
    }

    #[test]
    fn a_rate_limit_keeps_retry_after() {
        let resp = OAuthError::from(MatrixError::limit_exceeded(2500)).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["retry-after"], "3");
    }
}
