//! What every server-rendered page shares: a template rendered into a page
//! (a template that fails is logged and answered as a 500), and the CSRF
//! double submit — the page sets a random value in a cookie and in its form,
//! and the post must carry both, equal.

use matrix_api::runtime::{Html, MatrixError};
use serde::Serialize;

use crate::crypto;
use crate::service::Server;

impl Server {
    /// The template `name` rendered with `context`, as a page.
    pub(super) fn page(&self, name: &str, context: impl Serialize) -> Result<Html, MatrixError> {
        self.templates.render(name, context).map(Html).map_err(|e| {
            tracing::error!(error = e, "template failed");
            MatrixError::unknown("Internal server error")
        })
    }

    /// A fresh CSRF value for a page's form, and the `Set-Cookie` that holds
    /// it for the pages under `path` (`SameSite=Strict`).
    pub(super) fn csrf_cookie(&self, name: &str, path: &str) -> (String, String) {
        let value = crypto::new_token("csrf");
        let set_cookie = self.set_cookie(name, &value, path, "Strict", None);
        (value, set_cookie)
    }

    /// A `Set-Cookie` for the pages under `path`: `HttpOnly`, the given
    /// `SameSite`, a `Max-Age` if given, and `Secure` when the server is
    /// reached over https.
    pub(super) fn set_cookie(
        &self,
        name: &str,
        value: &str,
        path: &str,
        same_site: &str,
        max_age: Option<u64>,
    ) -> String {
        let secure = if self.public_base().starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        let max_age = max_age
            .map(|s| format!("; Max-Age={s}"))
            .unwrap_or_default();
        format!("{name}={value}; Path={path}; HttpOnly; SameSite={same_site}{max_age}{secure}")
    }
}

/// The whole seconds a rate-limited request waits, from the limiter's `429`
/// (its `retry_after_ms`), for a page to say.
pub(super) fn retry_after_secs(limited: &MatrixError) -> u64 {
    limited
        .extra
        .get("retry_after_ms")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(1000)
        .div_ceil(1000)
}

/// Whether a posted form's CSRF value is the one its page set in the cookie
/// `name` (compared in constant time).
pub(super) fn csrf_matches(cookie_header: Option<&str>, name: &str, submitted: &str) -> bool {
    cookie(cookie_header, name).is_some_and(|c| crypto::secrets_equal(c, submitted))
}

/// The value of one cookie in a `Cookie` header.
pub(super) fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_cookie_is_found_among_others_and_must_match() {
        let h = Some("a=1; validation_csrf=xyz; b=2");
        assert_eq!(cookie(h, "validation_csrf"), Some("xyz"));
        assert_eq!(cookie(Some("validation_csrfx=1"), "validation_csrf"), None);
        assert_eq!(cookie(None, "validation_csrf"), None);
        assert!(csrf_matches(h, "validation_csrf", "xyz"));
        assert!(!csrf_matches(h, "validation_csrf", "xy"));
        assert!(!csrf_matches(None, "validation_csrf", "xyz"));
    }
}
