//! Secrets: random tokens (stored only as SHA-256 hashes), argon2id password
//! hashes, and the keyed hash that binds an interactive-auth session to a request.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Passwords;

/// A new random secret of 256 bits, URL-safe, with a prefix saying what it is.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A short random identifier (device IDs, session IDs): 10 upper-case letters.
pub fn new_id() -> String {
    let mut bytes = [0u8; 10];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| char::from(b'A' + b % 26)).collect()
}

/// What is stored for a token: its SHA-256. A database leak reveals no usable token,
/// and lookups stay an index probe.
pub fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality for secrets and their hashes.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A keyed hash (HMAC-SHA-256) of request fields, so a stored session can be bound
/// to a request body without storing its secrets in a form that can be attacked
/// offline.
pub fn bind_hash(key: &[u8], fields: &[&str]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for f in fields {
        mac.update(&(f.len() as u64).to_be_bytes());
        mac.update(f.as_bytes());
    }
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

#[derive(Clone)]
pub struct PasswordHasherConfig {
    argon2: Argon2<'static>,
}

impl PasswordHasherConfig {
    pub fn new(p: &Passwords) -> Result<Self, String> {
        let params = Params::new(
            p.argon2_memory_kib,
            p.argon2_iterations,
            p.argon2_parallelism,
            None,
        )
        .map_err(|e| format!("passwords: invalid argon2 parameters: {e}"))?;
        Ok(PasswordHasherConfig {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        })
    }

    /// Hashes on the blocking pool: argon2 is deliberately slow.
    pub async fn hash(&self, password: &str) -> Result<String, String> {
        let argon2 = self.argon2.clone();
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| format!("password hashing failed: {e}"))
        })
        .await
        .map_err(|e| format!("password hashing task failed: {e}"))?
    }

    /// Checks a password against a stored hash (whatever parameters it was made with).
    pub async fn verify(&self, password: &str, stored: &str) -> bool {
        let argon2 = self.argon2.clone();
        let password = password.to_owned();
        let stored = stored.to_owned();
        tokio::task::spawn_blocking(move || match PasswordHash::new(&stored) {
            Ok(parsed) => argon2.verify_password(password.as_bytes(), &parsed).is_ok(),
            Err(_) => false,
        })
        .await
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed_deterministically() {
        let a = new_token("syt");
        let b = new_token("syt");
        assert_ne!(a, b);
        assert!(a.len() >= 4 + 43, "256 bits of base64: {a}");
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
        assert!(secrets_equal(&a, &a.clone()) && !secrets_equal(&a, &b));
    }

    #[test]
    fn bind_hash_separates_fields() {
        assert_ne!(bind_hash(b"k", &["ab", "c"]), bind_hash(b"k", &["a", "bc"]));
        assert_ne!(bind_hash(b"k", &["a"]), bind_hash(b"other", &["a"]));
    }

    #[tokio::test]
    async fn passwords_verify_only_with_the_right_password() {
        let cfg = PasswordHasherConfig::new(&Passwords {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            ..Passwords::default()
        })
        .unwrap();
        let h = cfg.hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("correct horse"));
        assert!(cfg.verify("correct horse", &h).await);
        assert!(!cfg.verify("wrong horse", &h).await);
        assert!(!cfg.verify("correct horse", "not a hash").await);
    }
}
