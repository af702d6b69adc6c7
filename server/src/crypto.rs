//! Secrets: random tokens (stored only as SHA-256 hashes), argon2id password
//! hashes, and the keyed hash that binds an interactive-auth session to a request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use matrix_api::runtime::MatrixError;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
    /// holds its argon2 memory (19 MiB by default). A permit belongs to the
    /// blocking task that hashes, not to the request: a client that disconnects
    /// does not free its slot while its hash still runs.
    permits: Arc<Semaphore>,
    /// How many permits there are (for the metrics).
    cores: usize,
    /// Requests waiting for a permit, and how many may wait: beyond that a
    /// request is refused at once instead of queueing without bound.
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    memory: Arc<HashMemory>,
    /// A hash of a random password with the configured cost, checked against for
    /// unknown users so that they take as long as known ones.
    dummy: Arc<str>,
}

/// Why a password could not be hashed or checked.
#[derive(Debug)]
pub enum HashError {
    /// Too many hashes queued: the caller should retry later.
    Busy,
    Failed(String),
}

impl From<HashError> for MatrixError {
    fn from(e: HashError) -> MatrixError {
        match e {
            HashError::Busy => MatrixError::limit_exceeded(1000),
            HashError::Failed(e) => {
                tracing::error!(error = e, "password hashing failed");
                MatrixError::unknown("Internal server error")
            }
        }
    }
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
        Self::with_limits(params, cores, p.max_queued_hashes)
    }

    fn with_limits(params: Params, permits: usize, max_waiting: usize) -> Result<Self, String> {
        return_large_allocations_to_the_os();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = argon2
            .hash_password(
                new_token("dummy").as_bytes(),
                &SaltString::generate(&mut OsRng),
            )
            .map_err(|e| format!("passwords: {e}"))?
            .to_string();
        Ok(PasswordHasherConfig {
            argon2,
            permits: Arc::new(Semaphore::new(permits)),
            cores: permits,
            waiting: Arc::default(),
            max_waiting,
            memory: Arc::default(),
            dummy: dummy.into(),
        })
    }

    /// A permit to hash, owned so that it can move into the blocking task.
    async fn permit(&self) -> Result<OwnedSemaphorePermit, HashError> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Ok(p);
        }
        let waiter = Waiter::enter(&self.waiting);
        if waiter.ahead >= self.max_waiting {
            crate::metrics::record_rate_limited("password_hash_queue");
            return Err(HashError::Busy);
        }
        // If the request is dropped while it waits (the client went away), the
        // waiter leaves the count as it is dropped.
        let permit = self.permits.clone().acquire_owned().await;
        drop(waiter);
        permit.map_err(|e| HashError::Failed(e.to_string()))
    }

    /// Requests waiting for a core to hash on (for the metrics).
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Hashes running now (for the metrics).
    pub fn running(&self) -> usize {
        self.cores.saturating_sub(self.permits.available_permits())
    }

    /// Drops working memory unused for `idle`; how many buffers went.
    pub fn trim(&self, idle: Duration) -> usize {
        let mut buffers = self.memory.idle.lock().unwrap_or_else(|p| p.into_inner());
        let before = buffers.len();
        buffers.retain(|(_, at)| at.elapsed() < idle);
        before - buffers.len()
    }

    /// Hashes on the blocking pool: argon2 is deliberately slow.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let permit = self.permit().await?;
        let (argon2, memory, password) = (
            self.argon2.clone(),
            self.memory.clone(),
            password.to_owned(),
        );
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
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
        .map_err(|e| HashError::Failed(format!("password hashing task failed: {e}")))?
        .map_err(HashError::Failed)
    }

    /// Checks a password against a user's stored hash (whatever parameters it was
    /// made with). Without one (unknown user, no password) it spends the same time
    /// on a dummy hash of the configured cost and answers `false`.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, HashError> {
        let matches = self.check(password, stored.unwrap_or(&self.dummy)).await?;
        Ok(matches && stored.is_some())
    }

    async fn check(&self, password: &str, stored: &str) -> Result<bool, HashError> {
        let permit = self.permit().await?;
        let (memory, password, stored) =
            (self.memory.clone(), password.to_owned(), stored.to_owned());
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
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
        .map_err(|e| HashError::Failed(format!("password checking task failed: {e}")))
    }
}

/// One request counted among those waiting for a hashing permit, for as long as
/// it lives.
struct Waiter<'a> {
    count: &'a AtomicUsize,
    /// How many were waiting before this one.
    ahead: usize,
}

impl<'a> Waiter<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        let ahead = count.fetch_add(1, Ordering::AcqRel);
        Waiter { count, ahead }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
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
    let started = Instant::now();
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
    crate::metrics::record_hash(started.elapsed());
    output.map_err(|e| format!("password hashing failed: {e}"))
}

/// glibc keeps freed heap pages of every thread's arena for reuse; after a
/// burst of work (the requests around a burst of hashes) that is several MiB
/// an idle server holds for nothing. `malloc_trim` hands them back.
pub fn return_free_heap_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
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
        assert!(cfg.verify("correct horse", Some(&h)).await.unwrap());
        assert!(!cfg.verify("wrong horse", Some(&h)).await.unwrap());
        assert!(!cfg
            .verify("correct horse", Some("not a hash"))
            .await
            .unwrap());
        assert!(!cfg.verify("correct horse", None).await.unwrap());
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
        assert!(cfg.verify("pw two", Some(&theirs)).await.unwrap());
        assert!(!cfg.verify("pw one", Some(&theirs)).await.unwrap());
        cfg.trim(Duration::ZERO);
        assert!(cfg.memory.idle.lock().unwrap().is_empty());
    }

    #[test]
    fn the_dummy_hash_has_the_configured_cost() {
        let cfg = PasswordHasherConfig::new(&Passwords {
            argon2_memory_kib: 96,
            argon2_iterations: 3,
            ..Passwords::default()
        })
        .unwrap();
        let dummy = PasswordHash::new(&cfg.dummy).unwrap();
        let params = Params::try_from(&dummy).unwrap();
        assert_eq!((params.m_cost(), params.t_cost()), (96, 3));
    }

    /// Polls `cond` until it holds, for at most ten seconds.
    async fn until(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn slow_hasher(max_waiting: usize) -> PasswordHasherConfig {
        // Slow enough (~100 ms and more) that the test acts while a hash runs.
        let params = Params::new(32 * 1024, 4, 1, None).unwrap();
        PasswordHasherConfig::with_limits(params, 1, max_waiting).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_hash_keeps_its_permit_until_it_finishes() {
        let cfg = slow_hasher(8);
        let running = tokio::spawn({
            let cfg = cfg.clone();
            async move { cfg.hash("pw").await }
        });
        until("the hash to start", || cfg.permits.available_permits() == 0).await;
        // The client goes away: its request future is dropped mid-hash.
        running.abort();
        assert!(running.await.unwrap_err().is_cancelled());
        assert_eq!(
            cfg.permits.available_permits(),
            0,
            "the argon2 run still holds its memory, so it must still hold its permit"
        );
        until("the hash to finish", || {
            cfg.permits.available_permits() == 1
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_instead_of_growing() {
        let cfg = slow_hasher(1);
        let first = tokio::spawn({
            let cfg = cfg.clone();
            async move { cfg.hash("one").await }
        });
        until("the first hash to run", || {
            cfg.permits.available_permits() == 0
        })
        .await;
        let second = tokio::spawn({
            let cfg = cfg.clone();
            async move { cfg.hash("two").await }
        });
        until("the second to queue", || {
            cfg.waiting.load(Ordering::Acquire) == 1
        })
        .await;
        assert!(matches!(cfg.hash("three").await, Err(HashError::Busy)));
        let busy: MatrixError = HashError::Busy.into();
        assert_eq!(
            (busy.status.as_u16(), busy.errcode.as_str()),
            (429, "M_LIMIT_EXCEEDED")
        );
        assert!(first.await.unwrap().is_ok() && second.await.unwrap().is_ok());
        assert_eq!(cfg.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiter_that_goes_away_leaves_the_queue() {
        let cfg = slow_hasher(1);
        let running = tokio::spawn({
            let cfg = cfg.clone();
            async move { cfg.hash("one").await }
        });
        until("the first hash to run", || {
            cfg.permits.available_permits() == 0
        })
        .await;
        let queued = tokio::spawn({
            let cfg = cfg.clone();
            async move { cfg.hash("two").await }
        });
        until("the second to queue", || {
            cfg.waiting.load(Ordering::Acquire) == 1
        })
        .await;
        // Its client disconnects: the queue must not stay one shorter for ever.
        queued.abort();
        assert!(queued.await.unwrap_err().is_cancelled());
        assert_eq!(cfg.waiting.load(Ordering::Acquire), 0);
        running.await.unwrap().unwrap();
        cfg.hash("three").await.unwrap();
    }
}
