//! A real OAuth 2.0 client for the black-box OAuth tests: [`OAuthClient`] drives
//! openid-client (npm, by panva; over its own oauth4webapi) through
//! `tests/oauth/client.mjs`, a long-running node process. Nothing here speaks
//! OAuth itself: discovery, dynamic client registration, PKCE, the
//! authorization URL, the callback's checks (state, `iss`), the grants, the
//! revocation and the device flow's polling are the library's, so the server
//! is held to what a third-party client requires of it.
//!
//! How it works:
//!
//! - **The install.** openid-client is pinned with its dependency set in
//!   `tests/oauth/package.json` and `package-lock.json`. The first
//!   [`OAuthClient::start`] of a test process runs `tests/oauth/setup`, which
//!   installs it (`npm ci`) with `client.mjs` into `<target dir>/oauth-client`
//!   (the target directory of the running test binary) and reuses that while
//!   the three files are unchanged: the first run on a clean checkout takes a
//!   few seconds and needs the npm registry, later runs none. Within a process
//!   a `OnceLock` runs the setup once; across processes the script holds an
//!   exclusive `flock`. If node (20 or later) or npm is missing or the install
//!   fails, `start` skips the test through [`crate::skip`] (a failure in CI)
//!   and returns `None`.
//! - **The protocol.** One JSON command per line on the driver's stdin, one
//!   JSON answer per line on its stdout: `{"ok": ...}` or `{"error": ...}`
//!   (an [`OAuthFailure`]), with the command's `id` echoed. The driver keeps
//!   its state between commands: the client (openid-client `Configuration`),
//!   the last PKCE verifier, state and redirect URI, the last tokens, the last
//!   device authorization. [`OAuthClient::call`] sends any command; the other
//!   methods are typed shorthands, one per op of `client.mjs` (its comments
//!   say what each does with the library).
//! - **Time limits.** Each call waits 30 s for its answer ([`CALL_TIMEOUT`];
//!   a device poll its own timeout on top). A driver that does not answer in
//!   time, exits, or answers something that is not the protocol fails the test
//!   with what it printed to stderr (a log line per command, the stack of each
//!   error).
//! - **Cleanup.** The driver exits when its stdin closes, so even a killed test
//!   process leaves no node behind. `Drop` closes stdin, waits a moment and
//!   kills it if it has not gone; after a panic it prints the driver's stderr.
//!
//! `discover` must come first: it loads the server's metadata (the library
//! discovers through `/.well-known/oauth-authorization-server`, checking the
//! issuer; the driver requires `/_matrix/client/v1/auth_metadata` to be the
//! same document and builds clients from the latter). Then `register` (RFC
//! 7591, through the library) or `use_client` chooses the client the other ops
//! use.

// OAuthFailure is large (every detail a test may assert on, the server's body
// among them) and it is the error path of a test client: boxing it would only
// make the tests' matching on it clumsier.
#![allow(clippy::result_large_err)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

/// How long a call waits for the driver's answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an OAuth operation failed, as the driver reports it: for an OAuth error
/// response (openid-client's `ResponseBodyError`: a 4xx with a JSON body that
/// has `error`) or an error in the authorization response
/// (`AuthorizationResponseError`, from the callback URL), [`error`] and
/// [`error_description`] are the server's; otherwise [`code`] says what the
/// library objected to (e.g. `OAUTH_INVALID_RESPONSE` for a callback without
/// the expected `state` or `iss`, `OAUTH_RESPONSE_IS_NOT_CONFORM` for an
/// unexpected HTTP status, `OAUTH_TIMEOUT` for a device poll that timed out).
///
/// [`error`]: OAuthFailure::error
/// [`error_description`]: OAuthFailure::error_description
/// [`code`]: OAuthFailure::code
#[derive(Clone, Debug, PartialEq)]
pub struct OAuthFailure {
    /// The OAuth `error` code (`invalid_grant`, `access_denied`,
    /// `authorization_pending`, ...), when there is one.
    pub error: Option<String>,
    /// The OAuth `error_description`, when there is one.
    pub error_description: Option<String>,
    /// The HTTP status of the server's answer, when the failure is one.
    pub status: Option<u16>,
    /// The library's (or the driver's) message.
    pub message: String,
    /// The JavaScript error's class: `ResponseBodyError`,
    /// `AuthorizationResponseError`, `WWWAuthenticateChallengeError`,
    /// `ClientError`, `TypeError`, the driver's `MetadataMismatch`, ...
    pub name: String,
    /// The library's error code (`OAUTH_RESPONSE_BODY_ERROR`,
    /// `OAUTH_INVALID_RESPONSE`, ...), when there is one.
    pub code: Option<String>,
    /// The server's body when there is one (parsed JSON, else a string), or
    /// the callback's parameters for an `AuthorizationResponseError`; `Null`
    /// otherwise.
    pub body: Value,
    /// The messages of the error's causes (what the library found wrong),
    /// joined with `; `.
    pub cause: Option<String>,
}

impl OAuthFailure {
    fn from_json(value: &Value) -> OAuthFailure {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
        OAuthFailure {
            error: text("error"),
            error_description: text("error_description"),
            status: value
                .get("status")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok()),
            message: text("message").unwrap_or_default(),
            name: text("name").unwrap_or_default(),
            code: text("code"),
            body: value.get("body").cloned().unwrap_or(Value::Null),
            cause: text("cause"),
        }
    }
}

impl std::fmt::Display for OAuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)?;
        if let Some(code) = &self.code {
            write!(f, " [{code}]")?;
        }
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        if let Some(error) = &self.error {
            write!(f, " error={error}")?;
        }
        if let Some(description) = &self.error_description {
            write!(f, " error_description={description:?}")?;
        }
        if let Some(cause) = &self.cause {
            write!(f, "; cause: {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for OAuthFailure {}

/// What `discover` found.
#[derive(Clone, Debug)]
pub struct Discovery {
    /// `GET {base}/_matrix/client/v1/auth_metadata`: the document the driver's
    /// clients are built from.
    pub metadata: Value,
    /// What the library's discovery loaded from
    /// `{base}/.well-known/oauth-authorization-server` (equal to `metadata`,
    /// or `discover` fails with `MetadataMismatch`).
    pub well_known: Value,
}

/// The parameters of an authorization request, for
/// [`OAuthClient::authorization_url`].
#[derive(Clone, Debug)]
pub struct AuthorizationParams {
    pub redirect_uri: String,
    /// `scope`; `None` leaves it out.
    pub scope: Option<String>,
    /// `prompt` (`create`); `None` leaves it out.
    pub prompt: Option<String>,
    /// `response_mode` (`query`, `fragment`); `None` leaves it out.
    pub response_mode: Option<String>,
    /// `S256` (the default of [`AuthorizationParams::new`]): PKCE with a SHA-256
    /// challenge; `None`: no PKCE parameters at all; `plain`: the verifier as
    /// the challenge; anything else is sent as the method, with an S256
    /// challenge.
    pub code_challenge_method: Option<String>,
    /// More parameters, set last: they override the others (a `null` value
    /// removes a parameter, e.g. `state`).
    pub extra: Map<String, Value>,
}

impl AuthorizationParams {
    /// `redirect_uri` and `scope`, PKCE S256, nothing else.
    pub fn new(redirect_uri: &str, scope: &str) -> AuthorizationParams {
        AuthorizationParams {
            redirect_uri: redirect_uri.to_string(),
            scope: Some(scope.to_string()),
            prompt: None,
            response_mode: None,
            code_challenge_method: Some("S256".to_string()),
            extra: Map::new(),
        }
    }
}

/// An authorization URL and what the driver remembers for its callback.
#[derive(Clone, Debug)]
pub struct AuthorizationUrl {
    /// The URL to send the user's browser to.
    pub url: String,
    pub state: String,
    /// The PKCE verifier; `None` without PKCE.
    pub code_verifier: Option<String>,
    pub code_challenge: Option<String>,
}

/// Overrides for [`OAuthClient::exchange_with`]. For the two `Option<Option<_>>`
/// fields: `None` uses what the driver remembers from the last
/// `authorization_url`; `Some(None)` sends no `code_verifier` / skips the
/// state check; `Some(Some(value))` uses `value`.
#[derive(Clone, Debug, Default)]
pub struct ExchangeOptions {
    pub code_verifier: Option<Option<String>>,
    pub expected_state: Option<Option<String>>,
    /// More token request parameters.
    pub extra: Map<String, Value>,
}

/// A token response, as the library returns it (it lowercases `token_type`
/// and turns a numeric-string `expires_in` into a number; `raw` is its
/// object, [`OAuthClient::last_http`] has the server's bytes).
#[derive(Clone, Debug)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<f64>,
    pub scope: Option<String>,
    pub token_type: String,
    pub raw: Value,
}

impl Tokens {
    fn from_json(value: Value) -> Tokens {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
        Tokens {
            access_token: text("access_token")
                .unwrap_or_else(|| panic!("OAuth driver: tokens without access_token: {value}")),
            refresh_token: text("refresh_token"),
            expires_in: value.get("expires_in").and_then(Value::as_f64),
            scope: text("scope"),
            token_type: text("token_type").unwrap_or_default(),
            raw: value,
        }
    }
}

/// A device authorization response (RFC 8628 section 3.2).
#[derive(Clone, Debug)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: f64,
    pub interval: Option<f64>,
    pub raw: Value,
}

impl DeviceAuthorization {
    fn from_json(value: Value) -> DeviceAuthorization {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
        let required = |key: &str| {
            text(key)
                .unwrap_or_else(|| panic!("OAuth driver: device response without {key}: {value}"))
        };
        DeviceAuthorization {
            device_code: required("device_code"),
            user_code: required("user_code"),
            verification_uri: required("verification_uri"),
            verification_uri_complete: text("verification_uri_complete"),
            expires_in: value
                .get("expires_in")
                .and_then(Value::as_f64)
                .unwrap_or_default(),
            interval: value.get("interval").and_then(Value::as_f64),
            raw: value,
        }
    }
}

/// A running `tests/oauth/client.mjs`; stopped on drop.
pub struct OAuthClient {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Lines of the driver's stdout, from a reader thread; disconnected when
    /// stdout closes.
    lines: Receiver<String>,
    next_id: u64,
    /// Holds `stderr.log`, the driver's stderr.
    dir: tempfile::TempDir,
    /// Whether a panic has shown the driver's stderr already.
    shown: std::cell::Cell<bool>,
}

impl OAuthClient {
    /// Starts a driver. `None` (after a visible skip; in CI a failure) when
    /// node or npm is missing or the install fails. Panics if the install is
    /// there but the driver does not come up.
    pub fn start() -> Option<OAuthClient> {
        let script = match installed_client() {
            Ok(script) => script,
            Err(reason) => {
                crate::skip::skip(&format!("no OAuth client: {reason}"));
                return None;
            }
        };
        let mut client = OAuthClient::spawn(&script)
            .unwrap_or_else(|e| panic!("OAuth client driver did not start: {e}"));
        // The driver has loaded openid-client once it answers.
        if let Err(failure) = client.call(json!({"op": "state"})) {
            panic!(
                "OAuth client driver: its first answer is an error: {failure}; its stderr:\n{}",
                client.stderr()
            );
        }
        Some(client)
    }

    fn spawn(script: &Path) -> Result<OAuthClient, String> {
        let dir = tempfile::Builder::new()
            .prefix("oauth-client-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let log_path = dir.path().join("stderr.log");
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut child = Command::new("node")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("running node {}: {e}", script.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(OAuthClient {
            child,
            stdin,
            lines,
            next_id: 1,
            dir,
            shown: std::cell::Cell::new(false),
        })
    }

    /// What the driver has printed to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Sends `command` (a JSON object with `op`; see `tests/oauth/client.mjs`)
    /// and waits up to [`CALL_TIMEOUT`] for its answer: `Ok` with what the op
    /// answers, `Err` with the failure it reports. Panics, with the driver's
    /// stderr, when there is no answer in time or no proper answer at all.
    pub fn call(&mut self, command: Value) -> Result<Value, OAuthFailure> {
        self.call_with_timeout(command, CALL_TIMEOUT)
    }

    /// [`OAuthClient::call`] with its own time limit.
    pub fn call_with_timeout(
        &mut self,
        mut command: Value,
        timeout: Duration,
    ) -> Result<Value, OAuthFailure> {
        let id = self.next_id;
        self.next_id += 1;
        let object = command
            .as_object_mut()
            .expect("an OAuth driver command is a JSON object");
        object.insert("id".to_string(), json!(id));
        let op = object
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();

        let mut line = serde_json::to_string(&command).expect("serializing a command");
        line.push('\n');
        let written = match self.stdin.as_mut() {
            Some(stdin) => stdin
                .write_all(line.as_bytes())
                .and_then(|()| stdin.flush()),
            None => Err(std::io::Error::other("stdin is closed")),
        };
        if let Err(e) = written {
            self.fail(&format!("writing op {op:?} to its stdin: {e}"));
        }

        let deadline = Instant::now() + timeout;
        let answer = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.trim().is_empty() => continue,
                Ok(line) => break line,
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("no answer to op {op:?} within {timeout:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait_exit(Duration::from_secs(2));
                    self.fail(&format!("it exited ({status}) before answering op {op:?}"))
                }
            }
        };
        let answer: Value = serde_json::from_str(&answer).unwrap_or_else(|e| {
            self.fail(&format!(
                "its answer to op {op:?} is not JSON ({e}): {answer}"
            ))
        });
        if answer.get("id") != Some(&json!(id)) {
            self.fail(&format!(
                "its answer to op {op:?} (id {id}) has another id: {answer}"
            ));
        }
        match (answer.get("ok"), answer.get("error")) {
            (Some(ok), None) => Ok(ok.clone()),
            (None, Some(error)) => Err(OAuthFailure::from_json(error)),
            _ => self.fail(&format!(
                "its answer to op {op:?} has neither \"ok\" nor \"error\": {answer}"
            )),
        }
    }

    fn fail(&self, what: &str) -> ! {
        self.shown.set(true);
        panic!(
            "OAuth client driver: {what}; its stderr:\n{}",
            self.stderr()
        )
    }

    fn wait_exit(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => return "still running".to_string(),
                Err(e) => return format!("unknown: {e}"),
            }
        }
    }

    /// Loads the metadata of the server at `base` (`http://127.0.0.1:PORT`):
    /// the library's RFC 8414 discovery of issuer `{base}/` through
    /// `/.well-known/oauth-authorization-server` (the document's `issuer`
    /// must be `{base}/`), and `/_matrix/client/v1/auth_metadata`, which must
    /// be the same document. Forgets any client, tokens and flow.
    pub fn discover(&mut self, base: &str) -> Result<Discovery, OAuthFailure> {
        let ok = self.call(json!({"op": "discover", "base": base}))?;
        Ok(Discovery {
            metadata: ok.get("metadata").cloned().unwrap_or(Value::Null),
            well_known: ok.get("well_known").cloned().unwrap_or(Value::Null),
        })
    }

    /// Registers a client (RFC 7591) with `metadata` (the library adds
    /// `token_endpoint_auth_method: none` unless given) and uses it from then
    /// on. Answers the registered client's metadata, with `client_id`.
    pub fn register(&mut self, metadata: Value) -> Result<Value, OAuthFailure> {
        self.call(json!({"op": "register", "metadata": metadata}))
    }

    /// Uses the existing public client `client_id` from then on.
    pub fn use_client(&mut self, client_id: &str) -> Result<Value, OAuthFailure> {
        self.call(json!({"op": "use_client", "client_id": client_id}))
    }

    /// A fresh PKCE verifier and state, and the authorization URL with them;
    /// the driver remembers verifier, state and redirect URI for
    /// [`OAuthClient::exchange`].
    pub fn authorization_url(
        &mut self,
        params: &AuthorizationParams,
    ) -> Result<AuthorizationUrl, OAuthFailure> {
        let ok = self.call(json!({
            "op": "authorization_url",
            "redirect_uri": params.redirect_uri,
            "scope": params.scope,
            "prompt": params.prompt,
            "response_mode": params.response_mode,
            "code_challenge_method": params.code_challenge_method,
            "extra": params.extra,
        }))?;
        let text = |key: &str| ok.get(key).and_then(Value::as_str).map(str::to_string);
        Ok(AuthorizationUrl {
            url: text("url").unwrap_or_default(),
            state: text("state").unwrap_or_default(),
            code_verifier: text("code_verifier"),
            code_challenge: text("code_challenge"),
        })
    }

    /// The authorization code grant for the redirect the server sent the
    /// browser to (`callback_url`, with the response in its query or its
    /// fragment), with the remembered PKCE verifier and state; the library
    /// checks `state` and `iss` first. The driver remembers the tokens.
    pub fn exchange(&mut self, callback_url: &str) -> Result<Tokens, OAuthFailure> {
        self.exchange_with(callback_url, &ExchangeOptions::default())
    }

    /// [`OAuthClient::exchange`] with another verifier or expected state, or
    /// more token request parameters.
    pub fn exchange_with(
        &mut self,
        callback_url: &str,
        options: &ExchangeOptions,
    ) -> Result<Tokens, OAuthFailure> {
        let mut command = json!({
            "op": "exchange",
            "callback_url": callback_url,
            "extra": options.extra,
        });
        if let Some(verifier) = &options.code_verifier {
            command["code_verifier"] = json!(verifier);
        }
        if let Some(state) = &options.expected_state {
            command["expected_state"] = json!(state);
        }
        self.call(command).map(Tokens::from_json)
    }

    /// The refresh token grant with `refresh_token`, or the last one the driver
    /// got. The driver remembers the new tokens (keeping the old refresh token
    /// if no new one comes).
    pub fn refresh(&mut self, refresh_token: Option<&str>) -> Result<Tokens, OAuthFailure> {
        self.call(json!({"op": "refresh", "refresh_token": refresh_token}))
            .map(Tokens::from_json)
    }

    /// Revokes `token` (RFC 7009), with `token_type_hint` if given.
    pub fn revoke(
        &mut self,
        token: &str,
        token_type_hint: Option<&str>,
    ) -> Result<(), OAuthFailure> {
        self.call(json!({"op": "revoke", "token": token, "token_type_hint": token_type_hint}))
            .map(|_| ())
    }

    /// Starts a device authorization (RFC 8628) for `scope`; the driver
    /// remembers it for the polls.
    pub fn device_start(&mut self, scope: &str) -> Result<DeviceAuthorization, OAuthFailure> {
        self.call(json!({"op": "device_start", "scope": scope}))
            .map(DeviceAuthorization::from_json)
    }

    /// The library's polling loop for the remembered device authorization,
    /// for up to `timeout`: it waits `interval` seconds (5 without one) before
    /// each request and 5 s more after each `slow_down`, until tokens, another
    /// error (`access_denied`, `expired_token`, ...) or the timeout (code
    /// `OAUTH_TIMEOUT`).
    pub fn device_poll(&mut self, timeout: Duration) -> Result<Tokens, OAuthFailure> {
        let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.call_with_timeout(
            json!({"op": "device_poll", "timeout_ms": millis}),
            timeout + CALL_TIMEOUT,
        )
        .map(Tokens::from_json)
    }

    /// One token request for the remembered device code, no polling:
    /// `authorization_pending` and `slow_down` come back as failures.
    pub fn device_poll_once(&mut self) -> Result<Tokens, OAuthFailure> {
        self.call(json!({"op": "device_poll_once"}))
            .map(Tokens::from_json)
    }

    /// The last HTTP exchange the library made: `method`, `url`,
    /// `request_body`, and the server's `status`, `headers` (lowercase names)
    /// and `body` (text), as they were on the wire.
    pub fn last_http(&mut self) -> Result<Value, OAuthFailure> {
        self.call(json!({"op": "last_http"}))
    }

    /// The driver's memory: `issuer`, `client_id`, `code_verifier`, `state`,
    /// `redirect_uri`, `tokens`, `device`.
    pub fn state(&mut self) -> Result<Value, OAuthFailure> {
        self.call(json!({"op": "state"}))
    }
}

impl Drop for OAuthClient {
    fn drop(&mut self) {
        // Closing stdin ends the driver's loop; a kill if it has not gone in 1 s.
        drop(self.stdin.take());
        if self.wait_exit(Duration::from_secs(1)) == "still running" {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() && !self.shown.get() {
            let _ = std::io::stderr().write_all(
                format!("OAuth client driver's stderr:\n{}\n", self.stderr()).as_bytes(),
            );
        }
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The installed `client.mjs`, set up by `tests/oauth/setup` once per process
/// in the test binary's target directory.
fn installed_client() -> Result<PathBuf, String> {
    static CLIENT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let script = workspace().join("tests/oauth/setup");
            let output = Command::new("bash")
                .arg(&script)
                .env("CARGO_TARGET_DIR", crate::smtp::target_dir())
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("running {}: {e}", script.display()))?;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(format!(
                    "tests/oauth/setup failed ({}): {}",
                    output.status,
                    tail.join("\n")
                ));
            }
            let stdout = String::from_utf8_lossy(&output.stdout);
            stdout
                .lines()
                .last()
                .map(|l| PathBuf::from(l.trim()))
                .filter(|p| p.is_file())
                .ok_or_else(|| format!("tests/oauth/setup printed no client.mjs: {stdout:?}"))
        })
        .clone()
}

/// Where the browser lands at the end of a flow: a loopback listener that
/// answers every request with a small page, as a native app's loopback
/// redirect handler would (so the browser shows a page, not an error).
pub struct Callback {
    pub port: u16,
}

impl Callback {
    pub fn start() -> Callback {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let page = "<!DOCTYPE html><title>Back in the app</title><p>Done";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                    page.len()
                );
            }
        });
        Callback { port }
    }

    /// The redirect URI of a request: the registered loopback URI with this
    /// listener's port (RFC 8252 §7.3: any port is accepted).
    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }
}
