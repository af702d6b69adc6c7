//! Rate limiting: token buckets per action, keyed by client address, account or
//! third-party identifier, configured per action (`[rate_limits.*]`).
//!
//! Every attempt takes a token (`check`) before it is made. The failure-only
//! buckets give it back (`refund`) when the attempt succeeded, so only failures
//! count — and since the token is taken first, parallel attempts cannot all slip
//! through a bucket that has room for one.
//!
//! Buckets live in the process: behind a load balancer each process limits what
//! it sees, which bounds abuse per process without a database write per request.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use matrix_api::runtime::{MatrixError, RequestInfo};

use crate::config::{Bucket, RateLimits};

/// What is being limited; each action has its own bucket configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Registration,
    Availability,
    LoginAddress,
    LoginAccount,
    LoginFailures,
    PasswordFailures,
    AccountChanges,
    RequestTokenAddress,
    RequestTokenThreepid,
    Refresh,
    Openid,
    SubmitToken,
    OAuthClients,
    DeviceCodeEntry,
}

impl Action {
    /// Every action (the configuration check visits each bucket).
    pub const ALL: [Action; 14] = [
        Action::Registration,
        Action::Availability,
        Action::LoginAddress,
        Action::LoginAccount,
        Action::LoginFailures,
        Action::PasswordFailures,
        Action::AccountChanges,
        Action::RequestTokenAddress,
        Action::RequestTokenThreepid,
        Action::Refresh,
        Action::Openid,
        Action::SubmitToken,
        Action::OAuthClients,
        Action::DeviceCodeEntry,
    ];
}

/// Whose bucket: a client address (IPv6 by /64), an account, or a 3PID.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Address(String),
    User(String),
    Threepid(String),
}

pub struct RateLimiter {
    config: RateLimits,
    buckets: Mutex<HashMap<(Action, Key), (f64, Instant)>>,
}

/// Beyond this many buckets, full ones (which carry no information) are forgotten.
const MAX_BUCKETS: usize = 100_000;

impl RateLimiter {
    pub fn new(config: RateLimits) -> Self {
        RateLimiter {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a user is never limited (configured exemptions; admins if so set).
    pub fn exempt(&self, user_id: &str, is_admin: bool) -> bool {
        (is_admin && self.config.exempt_admins)
            || self.config.exempt_users.iter().any(|u| u == user_id)
    }

    /// Gives back the token an attempt took (it succeeded, so it does not count).
    pub fn refund(&self, action: Action, keys: &[Key]) {
        let Some(bucket) = self.active(action) else {
            return;
        };
        let now = Instant::now();
        let mut buckets = self.lock();
        for key in keys {
            let tokens = level(&buckets, bucket, action, key, now);
            buckets.insert(
                (action, key.clone()),
                ((tokens + 1.0).min(f64::from(bucket.burst)), now),
            );
        }
    }

    /// Whether the action is limited at all (callers skip building keys if not).
    pub fn is_active(&self, action: Action) -> bool {
        self.active(action).is_some()
    }

    fn active(&self, action: Action) -> Option<Bucket> {
        let (_, bucket) = self.config.bucket(action);
        (self.config.enabled && bucket.enabled).then_some(bucket)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Action, Key), (f64, Instant)>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one token from each key's bucket; `429 M_LIMIT_EXCEEDED` (with the
    /// wait) when any is empty. Nothing is taken when the request is refused.
    pub fn check(&self, action: Action, keys: &[Key]) -> Result<(), MatrixError> {
        let Some(bucket) = self.active(action) else {
            return Ok(());
        };
        let now = Instant::now();
        let mut buckets = self.lock();
        if buckets.len() > MAX_BUCKETS {
            forget(&mut buckets, &self.config);
        }
        let levels: Vec<f64> = keys
            .iter()
            .map(|key| level(&buckets, bucket, action, key, now))
            .collect();
        if let Some(lowest) = levels.iter().copied().reduce(f64::min) {
            if lowest < 1.0 {
                crate::metrics::record_rate_limited(self.config.bucket(action).0);
                let wait_ms = ((1.0 - lowest) / bucket.per_second * 1000.0).ceil() as u64;
                return Err(MatrixError::limit_exceeded(wait_ms.max(1)));
            }
        }
        for (key, tokens) in keys.iter().zip(levels) {
            buckets.insert((action, key.clone()), (tokens - 1.0, now));
        }
        Ok(())
    }
}

/// Makes room in a full map: full buckets carry no information and go first;
/// if that is not enough (many clients, each with recent requests), the half
/// least recently touched go, so memory stays bounded whatever keys arrive.
fn forget(buckets: &mut HashMap<(Action, Key), (f64, Instant)>, config: &RateLimits) {
    buckets.retain(|(action, _), (tokens, at)| {
        let (_, b) = config.bucket(*action);
        *tokens + at.elapsed().as_secs_f64() * b.per_second < f64::from(b.burst)
    });
    if buckets.len() > MAX_BUCKETS / 2 {
        let mut times: Vec<Instant> = buckets.values().map(|(_, at)| *at).collect();
        let cut = times.len() - MAX_BUCKETS / 2;
        let (_, oldest_kept, _) = times.select_nth_unstable(cut);
        let oldest_kept = *oldest_kept;
        buckets.retain(|_, (_, at)| *at >= oldest_kept);
    }
}

/// A bucket's tokens now: what it had, refilled for the time since, at most `burst`.
fn level(
    buckets: &HashMap<(Action, Key), (f64, Instant)>,
    bucket: Bucket,
    action: Action,
    key: &Key,
    now: Instant,
) -> f64 {
    let burst = f64::from(bucket.burst);
    match buckets.get(&(action, key.clone())) {
        Some((tokens, at)) => {
            (tokens + now.duration_since(*at).as_secs_f64() * bucket.per_second).min(burst)
        }
        None => burst,
    }
}

/// Whether an address is one of the trusted proxies (IPv4-mapped IPv6 addresses
/// count as the IPv4 address they carry: a dual-stack listener sees those).
pub fn is_trusted_proxy(ip: IpAddr, trusted: &[ipnet::IpNet]) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`), as some proxies write it.
fn forwarded_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The client's address for rate limiting: the TCP peer, or — when the peer is a
/// trusted proxy — the nearest untrusted address in `X-Forwarded-For` (proxies
/// append, so the rightmost entries are the most trustworthy). IPv6 clients are
/// keyed by their /64, the block one subscriber usually gets.
pub fn client_address(info: &RequestInfo, trusted: &[ipnet::IpNet]) -> Option<Key> {
    let mut client = info.remote_addr?.ip().to_canonical();
    if is_trusted_proxy(client, trusted) {
        let forwarded = info
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in forwarded.iter().rev() {
            match forwarded_hop(hop) {
                Some(ip) if is_trusted_proxy(ip, trusted) => client = ip,
                Some(ip) => {
                    client = ip;
                    break;
                }
                // `unknown` or garbage: trust nothing further left of it.
                None => break,
            }
        }
    }
    Some(Key::Address(match client {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let net = ipnet::Ipv6Net::new(v6, 64).map_or(v6, |n| n.network());
            format!("{net}/64")
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(bucket: Bucket) -> RateLimits {
        RateLimits {
            login_address: bucket,
            login_failures: bucket,
            ..RateLimits::default()
        }
    }

    fn addr(a: &str) -> Key {
        Key::Address(a.into())
    }

    #[test]
    fn a_burst_passes_then_the_limit_applies_per_key_and_action() {
        let l = RateLimiter::new(limits(Bucket {
            enabled: true,
            per_second: 0.001,
            burst: 3,
        }));
        for _ in 0..3 {
            l.check(Action::LoginAddress, &[addr("1.2.3.4")]).unwrap();
        }
        let e = l
            .check(Action::LoginAddress, &[addr("1.2.3.4")])
            .unwrap_err();
        assert_eq!(e.errcode, "M_LIMIT_EXCEEDED");
        // One token at 0.001/s: 1000 s.
        assert_eq!(e.extra["retry_after_ms"].as_u64(), Some(1_000_000));
        l.check(Action::LoginAddress, &[addr("5.6.7.8")]).unwrap();
        l.check(Action::LoginFailures, &[addr("1.2.3.4")]).unwrap();
    }

    #[test]
    fn a_refused_request_takes_nothing_from_the_other_keys() {
        let l = RateLimiter::new(limits(Bucket {
            enabled: true,
            per_second: 0.001,
            burst: 1,
        }));
        let user = Key::User("@a:x".into());
        l.check(Action::LoginAddress, &[addr("1.1.1.1")]).unwrap();
        // The address is empty: the user's bucket must stay full.
        l.check(Action::LoginAddress, &[user.clone(), addr("1.1.1.1")])
            .unwrap_err();
        l.check(Action::LoginAddress, &[user]).unwrap();
    }

    #[test]
    fn refunded_attempts_do_not_count() {
        let l = RateLimiter::new(limits(Bucket {
            enabled: true,
            per_second: 0.001,
            burst: 2,
        }));
        let user = [Key::User("@a:x".into())];
        for _ in 0..10 {
            l.check(Action::LoginFailures, &user).unwrap();
            l.refund(Action::LoginFailures, &user);
        }
        // Two attempts in flight at once take both tokens: a third waits even
        // though neither has failed yet.
        l.check(Action::LoginFailures, &user).unwrap();
        l.check(Action::LoginFailures, &user).unwrap();
        let e = l.check(Action::LoginFailures, &user).unwrap_err();
        assert_eq!(e.errcode, "M_LIMIT_EXCEEDED");
        l.refund(Action::LoginFailures, &user);
        l.check(Action::LoginFailures, &user).unwrap();
    }

    #[test]
    fn the_map_stays_bounded_whatever_keys_arrive() {
        let l = RateLimiter::new(limits(Bucket {
            enabled: true,
            per_second: 0.001,
            burst: 5,
        }));
        for i in 0..(MAX_BUCKETS + 10) {
            l.check(Action::LoginAddress, &[addr(&i.to_string())])
                .unwrap();
        }
        // Past the limit it halved, then took the last few keys.
        let len = l.lock().len();
        assert!(len <= MAX_BUCKETS / 2 + 10, "{len}");
    }

    #[test]
    fn disabled_limits_nothing_globally_or_per_bucket() {
        let off = Bucket {
            enabled: false,
            per_second: 0.001,
            burst: 1,
        };
        let l = RateLimiter::new(limits(off));
        let on = RateLimiter::new(RateLimits {
            enabled: false,
            ..limits(Bucket {
                enabled: true,
                ..off
            })
        });
        for _ in 0..10 {
            l.check(Action::LoginAddress, &[addr("x")]).unwrap();
            on.check(Action::LoginAddress, &[addr("x")]).unwrap();
        }
    }

    fn info(peer: &str, forwarded: &[&str]) -> RequestInfo {
        let mut headers = http::HeaderMap::new();
        for f in forwarded {
            headers.append("x-forwarded-for", f.parse().unwrap());
        }
        RequestInfo {
            method: http::Method::GET,
            path: "/".into(),
            headers,
            remote_addr: Some(peer.parse().unwrap()),
            operation: &matrix_api::client_server::login::login::METADATA,
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let key = |peer, fwd: &[&str]| client_address(&info(peer, fwd), &trusted).unwrap();
        assert_eq!(key("10.1.2.3:5", &["203.0.113.9"]), addr("203.0.113.9"));
        // A client cannot name itself through an untrusted peer.
        assert_eq!(
            key("198.51.100.1:5", &["203.0.113.9"]),
            addr("198.51.100.1")
        );
        // Spoofed entries left of the real client are ignored.
        assert_eq!(
            key("10.1.2.3:5", &["1.1.1.1, 203.0.113.9", "10.9.9.9"]),
            addr("203.0.113.9")
        );
        assert_eq!(key("10.1.2.3:5", &["garbage"]), addr("10.1.2.3"));
        assert_eq!(
            key("[2001:db8:1:2:3:4:5:6]:5", &[]),
            addr("2001:db8:1:2::/64")
        );
        assert_eq!(key("[::ffff:192.0.2.1]:5", &[]), addr("192.0.2.1"));
        // A dual-stack listener sees IPv4 proxies as mapped addresses.
        assert_eq!(
            key("[::ffff:10.1.2.3]:5", &["203.0.113.9"]),
            addr("203.0.113.9")
        );
        // Entries with ports.
        assert_eq!(
            key("10.1.2.3:5", &["203.0.113.9:4711"]),
            addr("203.0.113.9")
        );
        assert_eq!(
            key("10.1.2.3:5", &["[2001:db8:5::1]:443"]),
            addr("2001:db8:5::/64")
        );
        assert_eq!(key("10.1.2.3:5", &["unknown"]), addr("10.1.2.3"));
    }
}
