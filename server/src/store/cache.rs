//! A short-lived, per-process cache of what authentication reads: the owner of an
//! access token and of an OpenID token. Every authenticated request needs one of
//! these lookups, and a database round trip costs several times what the rest of
//! the request does.
//!
//! Every `Store` write that can change an answer clears the cache after it
//! commits, so within one process a revocation applies at once. Other processes
//! sharing the database see it when their entries expire (`auth_cache_ms`; 0
//! turns the cache off). A generation counter keeps a read that raced a clearing
//! from putting the old answer back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::users::TokenOwner;

pub(super) struct ReadCache {
    ttl: Duration,
    generation: AtomicU64,
    tokens: Mutex<HashMap<String, (TokenOwner, Instant)>>,
    openid: Mutex<HashMap<String, (String, i64, Instant)>>,
}

/// Beyond this many entries the cache starts over rather than grow.
const MAX_ENTRIES: usize = 100_000;

impl ReadCache {
    pub fn new(ttl: Duration) -> Self {
        ReadCache {
            ttl,
            generation: AtomicU64::new(0),
            tokens: Mutex::default(),
            openid: Mutex::default(),
        }
    }

    /// Taken before a database read; the read's answer is cached only if no
    /// clearing happened meanwhile.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn token(&self, hash: &str) -> Option<TokenOwner> {
        let map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(o, _)| o.clone())
    }

    pub fn put_token(&self, generation: u64, hash: &str, owner: &TokenOwner) {
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if self.ttl.is_zero() || generation != self.generation() {
            return;
        }
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(hash.to_string(), (owner.clone(), Instant::now()));
    }

    /// The owner of an OpenID token, if cached and the token has not expired.
    pub fn openid(&self, hash: &str, now_ms: i64) -> Option<String> {
        let map = self.openid.lock().unwrap_or_else(|p| p.into_inner());
        map.get(hash)
            .filter(|(_, expires, at)| at.elapsed() < self.ttl && *expires > now_ms)
            .map(|(user, _, _)| user.clone())
    }

    pub fn put_openid(&self, generation: u64, hash: &str, user_id: &str, expires_ms: i64) {
        let mut map = self.openid.lock().unwrap_or_else(|p| p.into_inner());
        if self.ttl.is_zero() || generation != self.generation() {
            return;
        }
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            hash.to_string(),
            (user_id.to_string(), expires_ms, Instant::now()),
        );
    }

    /// After any write that can revoke or change what was read.
    pub fn clear(&self) {
        // Bump under both locks, so no reader can insert between bump and clear.
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let mut openid = self.openid.lock().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        tokens.clear();
        openid.clear();
    }

    /// Forgets one token (its device's activity time changed).
    pub fn forget_token(&self, hash: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(hash);
    }
}
