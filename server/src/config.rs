//! Configuration: a TOML file whose every key has a default, so the server also
//! runs with none. Unknown keys and bad values are one-line errors naming the key.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use crate::ratelimit::Action;

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
    pub connections: Connections,
    pub registration: Registration,
    pub passwords: Passwords,
    pub tokens: Tokens,
    pub rate_limits: RateLimits,
    pub email: Email,
    pub sms: Sms,
    pub metrics: Metrics,
    pub oauth: OAuth,
    pub homeserver: Homeserver,
}

/// Which homeserver this server authenticates for (`[homeserver]`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HomeserverKind {
    /// None: this server stands alone.
    #[default]
    None,
    /// An unmodified Synapse that delegates authentication to this server
    /// (its `matrix_authentication_service` settings).
    Synapse,
}

/// The homeserver this server is the authentication service of. With
/// `kind = "synapse"`, Synapse asks this server about every access token, and
/// this server tells Synapse about accounts and devices as they change.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Homeserver {
    pub kind: HomeserverKind,
    /// Synapse's client listener as this server reaches it (an internal
    /// address), e.g. `http://127.0.0.1:8008`.
    pub url: String,
    /// A file holding the secret shared with Synapse (its
    /// `matrix_authentication_service.secret`); surrounding whitespace is
    /// ignored.
    pub secret_path: Option<std::path::PathBuf>,
    /// How long one call to Synapse may take before it is tried again.
    pub timeout_secs: u64,
    /// How often the updates Synapse missed (devices, email addresses, locks
    /// it could not be told of) are sent again: the first retry comes this
    /// long after the failure, each next one twice as late (at most an hour).
    pub retry_secs: u64,
}

impl Default for Homeserver {
    fn default() -> Self {
        Homeserver {
            kind: HomeserverKind::None,
            url: String::new(),
            secret_path: None,
            timeout_secs: 10,
            retry_secs: 30,
        }
    }
}

/// Which authentication APIs the server offers. The one switched off answers
/// `404 M_UNRECOGNIZED`, as the spec says a server without it does.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthApis {
    /// The legacy API only (`/login`, `/register` with interactive auth, …).
    Legacy,
    /// Both: legacy clients keep working, OAuth 2.0 clients (Element X) can
    /// register and log in.
    Both,
    /// The OAuth 2.0 API only.
    Oauth,
}

/// The OAuth 2.0 API (`[oauth]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuth {
    pub apis: AuthApis,
    /// How long a login on this server's pages lasts in the browser.
    pub browser_session_lifetime_secs: u64,
    /// How long a device authorisation (its device code and user code) waits
    /// for the person to enter the code, log in and allow it.
    pub device_code_lifetime_secs: u64,
    /// The least time between two polls of the token endpoint by a device
    /// (`interval`); sooner polls are told `slow_down`.
    pub device_poll_interval_secs: u64,
}

impl Default for OAuth {
    fn default() -> Self {
        OAuth {
            apis: AuthApis::Both,
            browser_session_lifetime_secs: 7 * 24 * 3600,
            // RFC 8628's examples: ten minutes, polled every five seconds.
            device_code_lifetime_secs: 600,
            device_poll_interval_secs: 5,
        }
    }
}

impl OAuth {
    pub fn enabled(&self) -> bool {
        self.apis != AuthApis::Legacy
    }

    pub fn legacy_enabled(&self) -> bool {
        self.apis != AuthApis::Oauth
    }
}

/// Prometheus metrics (`GET /metrics`) on a listener of their own, off unless
/// `bind` is set. Not for the public: bind it to loopback or a private network.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    pub bind: Option<SocketAddr>,
}

/// Text messages: the server validates phone numbers itself by sending a code
/// through an HTTP gateway. Off while `gateway_url` is empty.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sms {
    /// The gateway: each message is a `POST` of `{"to": "+<E.164>", "from":
    /// <from>, "text": <text>}` (JSON) to this URL; any 2xx answer means
    /// accepted. Empty: no SMS.
    pub gateway_url: String,
    /// Sent as `Authorization: Bearer <secret>`; empty: no header.
    pub bearer_token: String,
    /// The sender name or number the gateway shows (its `from`).
    pub from: String,
    /// How long a code stays usable.
    pub validation_token_lifetime_secs: u64,
}

impl Sms {
    pub fn enabled(&self) -> bool {
        !self.gateway_url.is_empty()
    }
}

impl Default for Sms {
    fn default() -> Self {
        Sms {
            gateway_url: String::new(),
            bearer_token: String::new(),
            from: "Matrix".into(),
            validation_token_lifetime_secs: 3600,
        }
    }
}

/// Email: the server validates addresses itself (registration with an email
/// address, "forgot password", adding an address to an account) by sending a
/// token over SMTP. Off while `smtp_url` is empty.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Email {
    /// `smtp://[user:password@]host[:port]` (add `?tls=required` for STARTTLS,
    /// `?tls=opportunistic` to use it when offered) or
    /// `smtps://[user:password@]host[:port]` (TLS from the start). Empty: no email.
    pub smtp_url: String,
    /// The sender, `Name <address>` or a bare address.
    pub from: String,
    /// How long a validation token stays usable.
    pub validation_token_lifetime_secs: u64,
    /// Wrong tokens a session survives; one more and it is dead.
    pub max_token_failures: u32,
    /// A directory whose files replace the built-in templates of the same name
    /// (`email/validation.txt`, `pages/base.html`, ... as in the repository's
    /// `server/templates/`).
    pub templates_dir: Option<std::path::PathBuf>,
    /// Domains a `next_link` may point at (empty: any); the scheme must be
    /// http or https in any case.
    pub next_link_domains: Vec<String>,
    /// Regular expressions an address must match to be validated here (empty:
    /// any); others get `403 M_THREEPID_DENIED`.
    pub allowed_addresses: Vec<String>,
    /// Do not tell whether an address is known: registration and 3PID requests
    /// for a bound address, and password resets for an unknown one, get a
    /// session ID like any other after a short random delay, and no message.
    pub inhibit_3pid_errors: bool,
    /// Registration needs a validated email address (only the email flow is
    /// offered).
    pub require_for_registration: bool,
}

impl Email {
    pub fn enabled(&self) -> bool {
        !self.smtp_url.is_empty()
    }
}

/// Limits on client connections, so that slow or idle clients cannot hold the
/// server's connections or memory.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Connections {
    /// Open connections at most; beyond, new ones wait to be accepted.
    pub max: usize,
    /// Open connections from one client address at most (trusted proxies are
    /// not limited); beyond, new ones are closed at once.
    pub max_per_address: usize,
    /// A connection must deliver each request's head (request line and headers)
    /// within this many seconds of opening or of its previous response. This
    /// closes idle keep-alive connections and clients that send headers slowly.
    pub header_timeout_secs: u64,
    /// A request's body must arrive within this many seconds of its head.
    pub body_timeout_secs: u64,
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
    /// Password checks that may wait for a free core; more are refused with
    /// `429 M_LIMIT_EXCEEDED` rather than queue without bound.
    pub max_queued_hashes: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tokens {
    /// Lifetime of access tokens issued with a refresh token.
    pub access_token_lifetime_secs: u64,
    pub openid_lifetime_secs: u64,
    pub login_token_lifetime_secs: u64,
    pub uia_session_lifetime_secs: u64,
    /// Absolute lifetime of a login session, however often it is refreshed; 0:
    /// sessions last until logged out.
    pub session_lifetime_secs: u64,
}

/// Rate limits, modelled on Synapse's `rc_*` settings: a token bucket per action,
/// each with its own rate and burst, keyed by client address, account or 3PID.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// Off: nothing is limited.
    pub enabled: bool,
    /// Reverse proxies (addresses or CIDR blocks) whose `X-Forwarded-For` header
    /// names the client. From anyone else the header is ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Users the per-account limits skip when they are the caller or the
    /// account logged into (bridges, bots). Failed-password counts still apply.
    pub exempt_users: Vec<String>,
    /// Server administrators are exempt in the same way.
    pub exempt_admins: bool,
    /// `POST /register`, per client address.
    pub registration: Bucket,
    /// Username availability and registration-token validity checks, per address.
    pub availability: Bucket,
    /// Login attempts per client address.
    pub login_address: Bucket,
    /// Login attempts per account.
    pub login_account: Bucket,
    /// Failed logins per account: only failures count, so an account's owner is
    /// not slowed by their own successful logins.
    pub login_failures: Bucket,
    /// Failed password stages of interactive auth (password change, deactivation,
    /// login tokens), per account and per address: only failures count.
    pub password_failures: Bucket,
    /// Password changes, login-token and 3PID requests, per account.
    pub account_changes: Bucket,
    /// `requestToken` calls per client address.
    pub request_token_address: Bucket,
    /// `requestToken` calls per email address or phone number.
    pub request_token_threepid: Bucket,
    /// `POST /refresh`, per client address.
    pub refresh: Bucket,
    /// OpenID token requests, per account.
    pub openid: Bucket,
    /// Validation tokens submitted (the JSON endpoint and the page's form), per
    /// client address; wrong ones also count against their session.
    pub submit_token: Bucket,
    /// OAuth 2.0 client registrations and device authorisations, per client
    /// address.
    pub oauth_clients: Bucket,
    /// User codes entered on the device verification page, per client
    /// address: only wrong codes count.
    pub device_code_entry: Bucket,
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    #[serde(default = "enabled")]
    pub enabled: bool,
    pub per_second: f64,
    pub burst: u32,
}

fn enabled() -> bool {
    true
}

impl Bucket {
    const fn new(per_second: f64, burst: u32) -> Bucket {
        Bucket {
            enabled: true,
            per_second,
            burst,
        }
    }
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
            connections: Connections::default(),
            registration: Registration::default(),
            passwords: Passwords::default(),
            tokens: Tokens::default(),
            rate_limits: RateLimits::default(),
            email: Email::default(),
            sms: Sms::default(),
            metrics: Metrics::default(),
            oauth: OAuth::default(),
            homeserver: Homeserver::default(),
        }
    }
}

impl Default for Email {
    fn default() -> Self {
        Email {
            smtp_url: String::new(),
            from: "Matrix <noreply@localhost>".into(),
            validation_token_lifetime_secs: 24 * 3600,
            max_token_failures: 5,
            templates_dir: None,
            next_link_domains: Vec::new(),
            allowed_addresses: Vec::new(),
            inhibit_3pid_errors: false,
            require_for_registration: false,
        }
    }
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            max: 4096,
            max_per_address: 256,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
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
            max_queued_hashes: 64,
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
            session_lifetime_secs: 0,
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        // Synapse's defaults where it has the setting.
        RateLimits {
            enabled: true,
            // A reverse proxy on the same machine is the usual deployment.
            trusted_proxies: vec![
                ipnet::IpNet::from(std::net::IpAddr::from([127, 0, 0, 1])),
                ipnet::IpNet::from(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
            ],
            exempt_users: Vec::new(),
            exempt_admins: true,
            registration: Bucket::new(0.17, 3),
            availability: Bucket::new(1.0, 10),
            login_address: Bucket::new(0.003, 5),
            login_account: Bucket::new(0.003, 5),
            login_failures: Bucket::new(0.17, 3),
            password_failures: Bucket::new(0.17, 3),
            account_changes: Bucket::new(0.1, 5),
            request_token_address: Bucket::new(0.003, 5),
            request_token_threepid: Bucket::new(0.003, 5),
            refresh: Bucket::new(1.0, 20),
            openid: Bucket::new(1.0, 20),
            submit_token: Bucket::new(0.5, 10),
            // A client registers at the start of every login: as often as
            // logins, in bursts when someone retries.
            oauth_clients: Bucket::new(0.2, 10),
            // Room for typing mistakes; against guessing, user codes are one in
            // 20^8 and live minutes.
            device_code_entry: Bucket::new(0.05, 10),
        }
    }
}

impl RateLimits {
    /// An action's bucket, with its configuration key.
    pub fn bucket(&self, action: Action) -> (&'static str, Bucket) {
        match action {
            Action::Registration => ("registration", self.registration),
            Action::Availability => ("availability", self.availability),
            Action::LoginAddress => ("login_address", self.login_address),
            Action::LoginAccount => ("login_account", self.login_account),
            Action::LoginFailures => ("login_failures", self.login_failures),
            Action::PasswordFailures => ("password_failures", self.password_failures),
            Action::AccountChanges => ("account_changes", self.account_changes),
            Action::RequestTokenAddress => ("request_token_address", self.request_token_address),
            Action::RequestTokenThreepid => ("request_token_threepid", self.request_token_threepid),
            Action::Refresh => ("refresh", self.refresh),
            Action::Openid => ("openid", self.openid),
            Action::SubmitToken => ("submit_token", self.submit_token),
            Action::OAuthClients => ("oauth_clients", self.oauth_clients),
            Action::DeviceCodeEntry => ("device_code_entry", self.device_code_entry),
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

[connections]
# Open connections at most; beyond, new ones wait to be accepted.
max = 4096
# From one client address at most (trusted proxies are exempt); beyond, new ones
# are closed at once.
max_per_address = 256
# Each request's head (request line and headers) must arrive within this many
# seconds of the connection opening or of the previous response: this closes
# idle keep-alive connections and clients that send headers slowly.
header_timeout_secs = 10
# A request's body must arrive within this many seconds of its head.
body_timeout_secs = 30

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
# Password hashes run one per core; this many more may wait for one. Beyond that
# a request gets 429 M_LIMIT_EXCEEDED at once.
max_queued_hashes = 64

[tokens]
# Access tokens issued with a refresh token expire after this long.
access_token_lifetime_secs = 300
openid_lifetime_secs = 3600
login_token_lifetime_secs = 120
# How long a user-interactive authentication session stays usable.
uia_session_lifetime_secs = 900
# A login session ends this long after the login, however often it is refreshed
# (the client must log in again). 0: sessions last until logged out.
session_lifetime_secs = 0

[rate_limits]
# Token buckets per action, as Synapse's rc_* settings: each allows `burst`
# requests at once, refilled at `per_second`; `enabled = false` in a bucket turns
# just that one off. Over the limit: 429 M_LIMIT_EXCEEDED with retry_after_ms and
# Retry-After. Buckets live in each process: with several processes behind a load
# balancer, a client gets up to the limit from each process it reaches.
enabled = true
# Proxies (addresses or CIDR blocks) whose X-Forwarded-For header is believed;
# by default a reverse proxy on this machine. Clients are keyed by address, IPv6
# clients by their /64.
trusted_proxies = ["127.0.0.1/32", "::1/128"]
# Users the per-account limits skip, e.g. bridges: ["@bridge:example.org"];
# admins too with exempt_admins. Failed-password counts apply to everyone.
exempt_users = []
exempt_admins = true

# POST /register, per client address.
[rate_limits.registration]
per_second = 0.17
burst = 3

# Username availability and registration-token validity, per address.
[rate_limits.availability]
per_second = 1.0
burst = 10

# Login attempts per client address and per account.
[rate_limits.login_address]
per_second = 0.003
burst = 5

[rate_limits.login_account]
per_second = 0.003
burst = 5

# Failed logins per account: only failures count.
[rate_limits.login_failures]
per_second = 0.17
burst = 3

# Failed password stages of interactive auth (password change, deactivation,
# login tokens), per account and per address: only failures count.
[rate_limits.password_failures]
per_second = 0.17
burst = 3

# Password changes, login tokens and 3PID additions, per account.
[rate_limits.account_changes]
per_second = 0.1
burst = 5

# requestToken, per client address and per email address or phone number.
[rate_limits.request_token_address]
per_second = 0.003
burst = 5

[rate_limits.request_token_threepid]
per_second = 0.003
burst = 5

# POST /refresh, per client address.
[rate_limits.refresh]
per_second = 1.0
burst = 20

# OpenID token requests, per account.
[rate_limits.openid]
per_second = 1.0
burst = 20

# Validation tokens submitted, per client address (wrong tokens also count
# against their session, see [email] max_token_failures).
[rate_limits.submit_token]
per_second = 0.5
burst = 10

# OAuth 2.0 client registrations and device authorisations, per client address
# (clients register at the start of every login; a device login also starts a
# device authorisation).
[rate_limits.oauth_clients]
per_second = 0.2
burst = 10

# User codes typed on the device verification page (/_account/v1/device), per
# client address: only wrong codes count, so guessing codes is slow while a
# person's typing mistakes pass.
[rate_limits.device_code_entry]
per_second = 0.05
burst = 10

[email]
# The server validates email addresses itself: it sends a token, and the user
# follows the link or types the token into the client. Off while smtp_url is
# empty; then requestToken answers M_THREEPID_MEDIUM_NOT_SUPPORTED.
#   smtp://user:password@mail.example.org:587?tls=required   (STARTTLS)
#   smtps://user:password@mail.example.org                   (TLS, port 465)
#   smtp://127.0.0.1:25                                      (a local relay)
smtp_url = ""
from = "Matrix <noreply@localhost>"
validation_token_lifetime_secs = 86400
# Wrong tokens a validation session survives.
max_token_failures = 5
# A directory of templates replacing the built-in ones of the same name
# (email/validation_subject.txt, email/validation.txt, email/validation.html,
# pages/*.html); see server/templates/ in the source.
# templates_dir = "/etc/matrix-account-server/templates"
# Domains a client's next_link may point at (empty: any http or https URL).
next_link_domains = []
# Regular expressions an address must match (empty: any), e.g. ['@example\.org$'].
allowed_addresses = []
# Hide whether an address has an account: answer requestToken for a taken (or,
# for password resets, unknown) address like any other, and send nothing.
inhibit_3pid_errors = false
# Registration needs a validated email address.
require_for_registration = false

[sms]
# The server validates phone numbers itself: it sends a code through an HTTP
# gateway, and the user types it into the client. Each message is a POST of
# {"to": "+447700900123", "from": <from>, "text": <the message>} (JSON) to
# gateway_url with "Authorization: Bearer <bearer_token>"; any 2xx answer means
# accepted. Off while gateway_url is empty; then the msisdn requestToken
# endpoints answer M_THREEPID_MEDIUM_NOT_SUPPORTED.
gateway_url = ""
bearer_token = ""
from = "Matrix"
validation_token_lifetime_secs = 3600

[oauth]
# The authentication APIs: "both" (legacy clients and OAuth 2.0 clients such as
# Element X), "legacy" (no OAuth 2.0 API) or "oauth" (the OAuth 2.0 API only:
# legacy login, registration and refresh answer 404 M_UNRECOGNIZED).
apis = "both"
# How long a login on the server's own pages (login, consent) lasts.
browser_session_lifetime_secs = 604800
# The device authorisation grant (RFC 8628), for devices that sign in by showing
# a code the person types in a browser: how long the code waits for the person
# to enter it and allow the device (at most a day), and the least number of
# seconds between two polls of the token endpoint by the device (sooner polls
# are told slow_down; less than the lifetime).
device_code_lifetime_secs = 600
device_poll_interval_secs = 5

[metrics]
# Prometheus metrics: GET /metrics (OpenMetrics text) on a listener of its own,
# off unless bind is set. It tells anyone who can reach it how busy the server
# is: keep it on loopback or a private network. Port 0 picks a free port (the
# server prints the address).
# bind = "127.0.0.1:9100"

[homeserver]
# "none": this server stands alone. "synapse": it is the authentication service
# of an unmodified Synapse (1.157 or later), whose homeserver.yaml then has
#   matrix_authentication_service:
#     enabled: true
#     endpoint: "http://<this server, as Synapse reaches it>/_account/v1/"
#     secret_path: <the same secret as secret_path below>
# Synapse asks this server about every access token; this server creates the
# accounts and devices on Synapse as people register and log in here, and
# removes them as they log out and deactivate. Needs public_baseurl and the
# OAuth 2.0 API ([oauth] apis = "both" or "oauth"). See the README.
kind = "none"
# Synapse's client listener as this server reaches it (an internal address).
url = ""
# A file holding the shared secret.
# secret_path = "/etc/matrix-account-server/synapse-secret"
# Seconds one call to Synapse may take; a call that fails is tried twice more.
timeout_secs = 10
# What Synapse could not be told (devices logged out, email addresses, locks)
# is kept in the database and sent again this many seconds after the failure,
# then twice as late each time (at most an hour), across restarts.
retry_secs = 30
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
                // The line the span starts on (counting newlines before it:
                // `lines()` would miss the line of a key that starts it).
                Some(span) => format!(
                    "line {}: {msg}",
                    text[..span.start].matches('\n').count() + 1
                ),
                None => msg,
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if let Err(e) = matrix_api::runtime::ServerName::parse(&self.server_name) {
            return Err(format!("server_name: `{}`: {e}", self.server_name));
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
        for (key, b) in Action::ALL.map(|a| self.rate_limits.bucket(a)) {
            if b.enabled && !(b.per_second > 0.0 && b.per_second.is_finite() && b.burst > 0) {
                return Err(format!(
                    "rate_limits.{key}: per_second and burst must be positive when enabled"
                ));
            }
        }
        if self.passwords.argon2_memory_kib < 8 * self.passwords.argon2_parallelism
            || self.passwords.argon2_iterations == 0
        {
            return Err("passwords: argon2 memory must be at least 8 KiB per lane and iterations at least 1".into());
        }
        let c = &self.connections;
        if c.max == 0
            || c.max_per_address == 0
            || c.header_timeout_secs == 0
            || c.body_timeout_secs == 0
        {
            return Err("connections: max and the timeouts must be positive".into());
        }
        if let Some(metrics) = self.metrics.bind {
            if metrics == self.bind && metrics.port() != 0 {
                return Err(format!(
                    "metrics.bind: {metrics} is the API's address (bind); use another port"
                ));
            }
        }
        if self.oauth.browser_session_lifetime_secs == 0 {
            return Err("oauth.browser_session_lifetime_secs must be positive".into());
        }
        let (lifetime, interval) = (
            self.oauth.device_code_lifetime_secs,
            self.oauth.device_poll_interval_secs,
        );
        if !(1..=86_400).contains(&lifetime) || interval == 0 || interval >= lifetime {
            return Err("oauth: device_code_lifetime_secs must be 1 to 86400, and \
                 device_poll_interval_secs positive and less than it"
                .into());
        }
        if self.tokens.access_token_lifetime_secs == 0 || self.tokens.openid_lifetime_secs == 0 {
            return Err("tokens: lifetimes must be positive".into());
        }
        self.validate_homeserver()?;
        self.validate_email()
    }

    fn validate_homeserver(&self) -> Result<(), String> {
        let h = &self.homeserver;
        if h.kind == HomeserverKind::None {
            return Ok(());
        }
        if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
            return Err("homeserver.url must be Synapse's http:// or https:// URL".into());
        }
        if h.secret_path.is_none() {
            return Err(
                "homeserver.secret_path must name the file of the secret shared with Synapse"
                    .into(),
            );
        }
        if h.timeout_secs == 0 {
            return Err("homeserver.timeout_secs must be positive".into());
        }
        if h.retry_secs == 0 {
            return Err("homeserver.retry_secs must be positive".into());
        }
        // Synapse republishes the server metadata to clients as its own.
        if self.public_baseurl.is_none() {
            return Err("homeserver: kind = \"synapse\" needs public_baseurl: Synapse gives clients this server's addresses".into());
        }
        if !self.oauth.enabled() {
            return Err("homeserver: kind = \"synapse\" needs the OAuth 2.0 API ([oauth] apis = \"both\" or \"oauth\"): Synapse sends clients to it".into());
        }
        Ok(())
    }

    fn validate_email(&self) -> Result<(), String> {
        let e = &self.email;
        if e.enabled() {
            crate::email::Mailer::new(e).map_err(|m| format!("email.smtp_url: {m}"))?;
        }
        if let Err(m) = e.from.parse::<lettre::message::Mailbox>() {
            return Err(format!("email.from: `{}`: {m}", e.from));
        }
        for pattern in &e.allowed_addresses {
            if let Err(m) = regex::Regex::new(pattern) {
                let m = m.to_string();
                let why = m.lines().last().unwrap_or_default();
                return Err(format!("email.allowed_addresses: `{pattern}`: {why}"));
            }
        }
        if e.validation_token_lifetime_secs == 0 {
            return Err("email.validation_token_lifetime_secs must be positive".into());
        }
        if e.require_for_registration && !e.enabled() {
            return Err("email.require_for_registration needs email.smtp_url".into());
        }
        let sms = &self.sms;
        if sms.enabled()
            && !(sms.gateway_url.starts_with("http://") || sms.gateway_url.starts_with("https://"))
        {
            return Err("sms.gateway_url must be an http:// or https:// URL".into());
        }
        if sms.validation_token_lifetime_secs == 0 {
            return Err("sms.validation_token_lifetime_secs must be positive".into());
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

    #[test]
    fn metrics_are_off_unless_bound_and_not_on_the_api_address() {
        assert_eq!(Config::default().metrics.bind, None);
        let on = Config::parse("[metrics]\nbind = \"127.0.0.1:9100\"").unwrap();
        assert_eq!(on.metrics.bind, Some("127.0.0.1:9100".parse().unwrap()));
        let err = Config::parse("[metrics]\nbind = \"localhost\"").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        let err = Config::parse("[metrics]\nport = 9100").unwrap_err();
        assert!(
            err.starts_with("line 2:") && err.contains("unknown field `port`"),
            "{err}"
        );
        let err = Config::parse("[metrics]\nbind = \"127.0.0.1:8008\"").unwrap_err();
        assert!(err.starts_with("metrics.bind:"), "{err}");
    }

    #[test]
    fn the_device_grant_polls_within_its_codes_lifetime() {
        let ok =
            Config::parse("[oauth]\ndevice_code_lifetime_secs = 2\ndevice_poll_interval_secs = 1")
                .unwrap();
        assert_eq!(ok.oauth.device_code_lifetime_secs, 2);
        for bad in [
            "device_poll_interval_secs = 0",
            "device_code_lifetime_secs = 0",
            "device_code_lifetime_secs = 86401",
            "device_code_lifetime_secs = 5\ndevice_poll_interval_secs = 5",
        ] {
            let err = Config::parse(&format!("[oauth]\n{bad}")).unwrap_err();
            assert!(
                err.starts_with("oauth: device_code_lifetime_secs"),
                "{bad}: {err}"
            );
        }
    }
}
