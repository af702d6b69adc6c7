//! Configuration: a TOML file whose every key has a default, so the server also
//! runs with none. Unknown keys and bad values are one-line errors naming the key.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub bind: SocketAddr,
    pub server_name: String,
    pub public_baseurl: Option<String>,
    pub database: String,
    /// How long a process may reuse what it read about an access or OpenID token.
    /// Its own revocations apply at once; those of other processes sharing the
    /// database within this time. 0 turns the cache off.
    pub auth_cache_ms: u64,
    pub max_body_bytes: usize,
    pub registration: Registration,
    pub passwords: Passwords,
    pub tokens: Tokens,
    pub rate_limits: RateLimits,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    /// Anyone may register (`m.login.dummy`), or with a registration token.
    Open,
    /// Only with a registration token (`m.login.registration_token`).
    Token,
    Disabled,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Registration {
    pub mode: RegistrationMode,
    pub allow_guests: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Passwords {
    /// Shorter passwords get `M_WEAK_PASSWORD`; 0 turns the check off.
    pub min_length: usize,
    /// Require a letter, a digit and a symbol.
    pub require_mixed: bool,
    /// argon2id cost (OWASP: 19 MiB, 2 passes, 1 lane).
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tokens {
    /// Lifetime of access tokens issued with a refresh token.
    pub access_token_lifetime_secs: u64,
    pub openid_lifetime_secs: u64,
    pub login_token_lifetime_secs: u64,
    pub uia_session_lifetime_secs: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    pub enabled: bool,
    /// Sustained rate per client IP and per user on registration, login,
    /// requestToken and password endpoints.
    pub per_second: f64,
    pub burst: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 8008)),
            server_name: "localhost".into(),
            public_baseurl: None,
            database: "sqlite://data/homeserver.db".into(),
            auth_cache_ms: 1000,
            max_body_bytes: 64 * 1024,
            registration: Registration::default(),
            passwords: Passwords::default(),
            tokens: Tokens::default(),
            rate_limits: RateLimits::default(),
        }
    }
}

impl Default for Registration {
    fn default() -> Self {
        Registration {
            mode: RegistrationMode::Open,
            allow_guests: false,
        }
    }
}

impl Default for Passwords {
    fn default() -> Self {
        Passwords {
            min_length: 8,
            require_mixed: false,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
        }
    }
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens {
            access_token_lifetime_secs: 300,
            openid_lifetime_secs: 3600,
            login_token_lifetime_secs: 120,
            uia_session_lifetime_secs: 900,
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            enabled: true,
            per_second: 0.5,
            burst: 10,
        }
    }
}

/// The commented default configuration written by `generate-config`.
pub const DEFAULT_TOML: &str = r#"# matrix-account-server configuration. Every key is optional; these are the defaults.

# Address to listen on.
bind = "127.0.0.1:8008"
# The server name in user IDs (@alice:<server_name>).
server_name = "localhost"
# Base URL clients reach this server at, published in /.well-known/matrix/client.
# public_baseurl = "https://matrix.example.org/"
# sqlite://PATH (created on first start) or postgres://USER@HOST:PORT/DB.
database = "sqlite://data/homeserver.db"
# Milliseconds a process may reuse what it read about a token. Its own logouts and
# locks apply at once; with several processes on one PostgreSQL database, those
# made by another process apply within this time. 0 turns the cache off.
auth_cache_ms = 1000
# Larger request bodies get 413 M_TOO_LARGE.
max_body_bytes = 65536

[registration]
# open: anyone may register; token: only with a registration token
# (create them with `matrix-account-server token create`); disabled.
mode = "open"
allow_guests = false

[passwords]
# Shorter passwords get M_WEAK_PASSWORD (0: no minimum).
min_length = 8
# Require a letter, a digit and a symbol.
require_mixed = false
# argon2id cost; the defaults are OWASP's recommendation.
argon2_memory_kib = 19456
argon2_iterations = 2
argon2_parallelism = 1

[tokens]
# Access tokens issued with a refresh token expire after this long.
access_token_lifetime_secs = 300
openid_lifetime_secs = 3600
login_token_lifetime_secs = 120
# How long a user-interactive authentication session stays usable.
uia_session_lifetime_secs = 900

[rate_limits]
# Per client IP and per user, on registration, login, requestToken and password
# endpoints: `burst` requests at once, refilled at `per_second`.
enabled = true
per_second = 0.5
burst = 10
"#;

impl Config {
    /// Reads and checks a configuration file; the error is one line naming the file
    /// and the key.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().to_string();
            match e.span() {
                Some(span) => format!("line {}: {msg}", text[..span.start].lines().count().max(1)),
                None => msg,
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let name_ok = !self.server_name.is_empty()
            && self
                .server_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !name_ok {
            return Err(format!(
                "server_name: `{}` is not a valid server name",
                self.server_name
            ));
        }
        if !(self.database.starts_with("sqlite://")
            || self.database.starts_with("postgres://")
            || self.database.starts_with("postgresql://"))
        {
            return Err(format!(
                "database: `{}` must start with sqlite:// or postgres://",
                self.database
            ));
        }
        if self.rate_limits.enabled
            && !(self.rate_limits.per_second > 0.0 && self.rate_limits.burst > 0)
        {
            return Err("rate_limits: per_second and burst must be positive when enabled".into());
        }
        if self.passwords.argon2_memory_kib < 8 * self.passwords.argon2_parallelism
            || self.passwords.argon2_iterations == 0
        {
            return Err("passwords: argon2 memory must be at least 8 KiB per lane and iterations at least 1".into());
        }
        if self.tokens.access_token_lifetime_secs == 0 || self.tokens.openid_lifetime_secs == 0 {
            return Err("tokens: lifetimes must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_default_is_the_default() {
        let parsed = Config::parse(DEFAULT_TOML).unwrap();
        let default = Config::default();
        assert_eq!(format!("{parsed:?}"), format!("{default:?}"));
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(
            Config::parse("bnd = 1").unwrap_err().split(':').next(),
            Some("line 1")
        );
        assert!(Config::parse("bnd = 1")
            .unwrap_err()
            .contains("unknown field `bnd`"));
        assert!(Config::parse("[registration]\nmode = \"sometimes\"")
            .unwrap_err()
            .contains("sometimes"));
        assert!(Config::parse("database = \"mysql://x\"")
            .unwrap_err()
            .starts_with("database:"));
        assert!(Config::parse("server_name = \"\"")
            .unwrap_err()
            .starts_with("server_name:"));
        assert!(Config::parse("bind = \"nowhere\"")
            .unwrap_err()
            .contains("line 1"));
    }
}
