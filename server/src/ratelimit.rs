//! Rate limiting: a token bucket per (action, client IP) and (action, user).
//!
//! Buckets live in the process: behind a load balancer each process limits what
//! it sees, which bounds abuse per process without a database write per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use matrix_api::runtime::MatrixError;

use crate::config::RateLimits;

pub struct RateLimiter {
    config: RateLimits,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(config: RateLimits) -> Self {
        RateLimiter {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from each key's bucket; `429 M_LIMIT_EXCEEDED` (with the
    /// wait) when any bucket is empty.
    pub fn check(&self, action: &str, keys: &[Option<&str>]) -> Result<(), MatrixError> {
        if !self.config.enabled {
            return Ok(());
        }
        let now = Instant::now();
        let burst = f64::from(self.config.burst);
        let rate = self.config.per_second;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            // Full buckets carry no information: forget them.
            buckets.retain(|_, (tokens, at)| *tokens + at.elapsed().as_secs_f64() * rate < burst);
        }
        for key in keys.iter().flatten() {
            let entry = buckets
                .entry(format!("{action}:{key}"))
                .or_insert((burst, now));
            let tokens = (entry.0 + now.duration_since(entry.1).as_secs_f64() * rate).min(burst);
            if tokens < 1.0 {
                let wait_ms = ((1.0 - tokens) / rate * 1000.0).ceil() as u64;
                *entry = (tokens, now);
                return Err(MatrixError::limit_exceeded(wait_ms.max(1)));
            }
            *entry = (tokens - 1.0, now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_limit_applies_per_key() {
        let l = RateLimiter::new(RateLimits {
            enabled: true,
            per_second: 0.001,
            burst: 3,
        });
        for _ in 0..3 {
            l.check("login", &[Some("1.2.3.4")]).unwrap();
        }
        let e = l.check("login", &[Some("1.2.3.4")]).unwrap_err();
        assert_eq!(e.errcode, "M_LIMIT_EXCEEDED");
        assert!(e.extra["retry_after_ms"].as_u64().unwrap() > 0);
        l.check("login", &[Some("5.6.7.8")]).unwrap();
        l.check("register", &[Some("1.2.3.4")]).unwrap();
    }

    #[test]
    fn disabled_limits_nothing() {
        let l = RateLimiter::new(RateLimits {
            enabled: false,
            per_second: 0.001,
            burst: 1,
        });
        for _ in 0..10 {
            l.check("login", &[Some("x")]).unwrap();
        }
    }
}
