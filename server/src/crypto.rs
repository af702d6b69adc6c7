//! Secrets: random tokens (stored only as SHA-256 hashes), argon2id password
//! hashes, and the keyed hash that binds an interactive-auth session to a request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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
    /// Hashes in flight at once: one per core. More only queue for CPU, while each
    /// holds its argon2 memory (19 MiB by default).
    permits: Arc<tokio::sync::Semaphore>,
    memory: Arc<HashMemory>,
}

/// Working memory for argon2, reused between hashes: allocating 19 MiB afresh
/// costs page faults and kernel zeroing worth ~40% of a hash. Buffers idle for a
/// while are dropped (see `trim`), so an idle server gives the memory back.
#[derive(Default)]
struct HashMemory {
    idle: Mutex<Vec<(Vec<Block>, Instant)>>,
}

impl HashMemory {
    fn take(&self, blocks: usize) -> Vec<Block> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        match idle.iter().position(|(b, _)| b.len() == blocks) {
            Some(i) => idle.swap_remove(i).0,
            None => vec![Block::default(); blocks],
        }
    }

    fn give(&self, buffer: Vec<Block>) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((buffer, Instant::now()));
    }
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
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        return_large_allocations_to_the_os();
        Ok(PasswordHasherConfig {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            permits: Arc::new(tokio::sync::Semaphore::new(cores)),
            memory: Arc::default(),
        })
    }

    /// Drops working memory unused for `idle`.
    pub fn trim(&self, idle: Duration) {
        self.memory
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(_, at)| at.elapsed() < idle);
    }

    /// Hashes on the blocking pool: argon2 is deliberately slow.
    pub async fn hash(&self, password: &str) -> Result<String, String> {
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let (argon2, memory, password) = (
            self.argon2.clone(),
            self.memory.clone(),
            password.to_owned(),
        );
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            let output = compute(&argon2, &memory, password.as_bytes(), salt.as_salt())?;
            let hash = PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(argon2.params()).map_err(|e| e.to_string())?,
                salt: Some(salt.as_salt()),
                hash: Some(output),
            };
            Ok(hash.to_string())
        })
        .await
        .map_err(|e| format!("password hashing task failed: {e}"))?
    }

    /// Checks a password against a stored hash (whatever parameters it was made with).
    pub async fn verify(&self, password: &str, stored: &str) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let (memory, password, stored) =
            (self.memory.clone(), password.to_owned(), stored.to_owned());
        tokio::task::spawn_blocking(move || {
            let Ok(parsed) = PasswordHash::new(&stored) else {
                return false;
            };
            let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
                Algorithm::try_from(parsed.algorithm),
                Params::try_from(&parsed),
                parsed.salt,
                parsed.hash,
            ) else {
                return false;
            };
            let version = parsed
                .version
                .and_then(|v| Version::try_from(v).ok())
                .unwrap_or_default();
            let argon2 = Argon2::new(algorithm, version, params);
            // `Output` compares in constant time.
            compute(&argon2, &memory, password.as_bytes(), salt).is_ok_and(|out| out == expected)
        })
        .await
        .unwrap_or(false)
    }
}

/// One argon2 computation in pooled memory.
fn compute(
    argon2: &Argon2<'_>,
    memory: &HashMemory,
    password: &[u8],
    salt: Salt<'_>,
) -> Result<Output, String> {
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf).map_err(|e| e.to_string())?;
    let params = argon2.params();
    let mut blocks = memory.take(params.block_count());
    let output = Output::init_with(
        params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN),
        |out| {
            argon2
                .hash_password_into_with_memory(password, salt, out, &mut blocks)
                .map_err(|_| argon2::password_hash::Error::Crypto)
        },
    );
    memory.give(blocks);
    output.map_err(|e| format!("password hashing failed: {e}"))
}

/// glibc serves large allocations with mmap, but after the first one is freed it
/// raises that threshold, so later argon2 buffers come from heap arenas that are
/// never given back: RSS climbed to 1 GB under load. A fixed threshold keeps
/// each buffer an mmap that returns to the OS when the hash is done.
fn return_large_allocations_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; any value is valid input.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
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

    #[tokio::test]
    async fn pooled_hashes_are_standard_phc_strings() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let cfg = PasswordHasherConfig::new(&Passwords {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            ..Passwords::default()
        })
        .unwrap();
        let ours = cfg.hash("pw one").await.unwrap();
        let standard = Argon2::default();
        assert!(standard
            .verify_password(b"pw one", &PasswordHash::new(&ours).unwrap())
            .is_ok());
        // A hash made elsewhere, with other parameters, still verifies.
        let salt = SaltString::generate(&mut OsRng);
        let theirs = standard
            .hash_password(b"pw two", &salt)
            .unwrap()
            .to_string();
        assert!(cfg.verify("pw two", &theirs).await);
        assert!(!cfg.verify("pw one", &theirs).await);
        cfg.trim(Duration::ZERO);
        assert!(cfg.memory.idle.lock().unwrap().is_empty());
    }
}
