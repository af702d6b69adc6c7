//! A real, unmodified Synapse for the delegation tests: [`Synapse::start`] runs
//! `matrix-synapse` from PyPI as a child process on loopback, with its
//! authentication delegated (`matrix_authentication_service`) to the endpoint
//! the test gives, the way Synapse is deployed with MAS. The contract between
//! the two is docs/synapse-delegation.md.
//!
//! How it works:
//!
//! - **The venv.** `matrix-synapse` is pinned with its dependency set in
//!   `tests/synapse/requirements.txt`. The first [`Synapse::start`] of a test
//!   process runs `tests/synapse/setup`, which installs it into
//!   `<target dir>/synapse-venv` and reuses that venv while `requirements.txt`
//!   is unchanged: the first run on a clean checkout takes about a minute and
//!   needs PyPI, later runs none. Within a process a `OnceLock` runs the setup
//!   once; across processes the script holds an exclusive `flock`. If `python3`
//!   (with `venv`) is missing or the install fails, `start` skips the test
//!   through [`crate::skip`] (a failure in CI) and returns `None`.
//! - **The server.** Each Synapse has its own temporary directory:
//!   `homeserver.yaml` (written as JSON, which is YAML), `log.config`,
//!   `homeserver.db` (SQLite, created on start) and `media_store/`, and its
//!   own loopback port (a free one the system picks, released and handed to
//!   Synapse; tried again with another if it was taken in between). One
//!   listener, `client` resources only (which carry `/_synapse/mas/`), no
//!   federation listener, registration and password login off (delegation
//!   requires it), rate limits out of the way, and an ed25519 signing key
//!   given inline (`signing_key`), so no `--generate-keys` run is needed.
//!   `start` waits until `GET /_matrix/client/versions` answers 200.
//!   A start costs about 4 s of CPU (Python imports, then about 2.5 s
//!   creating the SQLite schema): 9 to 15 s of wall time on a busy 2-core
//!   machine, more with several at once.
//! - **The auth service** need not be up: Synapse fetches the endpoint's
//!   `/.well-known/openid-configuration` lazily, at the first client request
//!   that needs it, and introspects tokens per request.
//! - **Cleanup.** Synapse runs under `tests/synapse/run.py`, which ends the
//!   process when its stdin closes; the [`Synapse`] holds the write end, so
//!   even a test process that is killed leaves no Synapse behind. `Drop` (and
//!   [`Synapse::stop`]) closes stdin, waits for the child a moment and kills it
//!   if it has not gone. After a panic the directory is kept and its path
//!   printed, so `homeserver.log` can be read.
//! - **The log.** `homeserver.log` has Synapse's log at INFO (one line per
//!   request, `synapse.access.http`) and, before logging is set up, its
//!   stdout and stderr (config errors, tracebacks).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

/// How long [`Synapse::start`] waits for `/_matrix/client/versions`. A start
/// costs about 4 s of CPU; several at once on a busy 2-core machine take a
/// while (two in parallel under a load of 8: 19 s each).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// What [`Synapse::start`] runs.
#[derive(Clone, Debug)]
pub struct SynapseOptions {
    /// Synapse's `server_name`: user IDs are `@localpart:<server_name>`.
    pub server_name: String,
    /// `matrix_authentication_service.endpoint`: the base URL of the auth
    /// service, e.g. `http://127.0.0.1:8080/`.
    pub auth_endpoint: String,
    /// `matrix_authentication_service.secret`: the Bearer token each side
    /// presents to the other.
    pub secret: String,
    /// Top-level keys merged into the generated `homeserver.yaml` last, each
    /// replacing the generated value of that key (a whole section, not a
    /// deep merge).
    pub extra_config: Map<String, Value>,
}

impl SynapseOptions {
    /// `server_name` `localhost`, delegating to `auth_endpoint`, with a fresh
    /// random secret and nothing extra.
    pub fn new(auth_endpoint: impl Into<String>) -> SynapseOptions {
        SynapseOptions {
            server_name: "localhost".to_string(),
            auth_endpoint: auth_endpoint.into(),
            secret: random_hex(32),
            extra_config: Map::new(),
        }
    }
}

/// A running Synapse; stopped on drop.
pub struct Synapse {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    dir: Option<tempfile::TempDir>,
    server_name: String,
    secret: String,
    startup: Duration,
    agent: ureq::Agent,
}

impl Synapse {
    /// Starts a Synapse configured by `opts` on a free loopback port and
    /// waits until it answers. `None` (after a visible skip; in CI a failure)
    /// when Python or the venv cannot be set up. Panics, with the tail of
    /// Synapse's log, if the venv is there but Synapse does not come up.
    pub fn start(opts: SynapseOptions) -> Option<Synapse> {
        let python = match venv_python() {
            Ok(python) => python,
            Err(reason) => {
                crate::skip::skip(&format!("no Synapse: {reason}"));
                return None;
            }
        };
        match Synapse::spawn(&python, &opts) {
            Ok(synapse) => Some(synapse),
            Err(e) => panic!("Synapse did not start: {e}"),
        }
    }

    fn spawn(python: &Path, opts: &SynapseOptions) -> Result<Synapse, String> {
        let dir = tempfile::Builder::new()
            .prefix("synapse-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let log_path = dir.path().join("homeserver.log");
        let config_path = dir.path().join("homeserver.yaml");
        write_file(&dir.path().join("log.config"), &log_config(&log_path))?;

        let began = Instant::now();
        // The port is free when picked, but another process may take it before
        // Synapse binds it: then Synapse exits at once and another is tried.
        let mut attempt = 1;
        loop {
            let port = unused_port();
            let config = homeserver_config(dir.path(), port, opts);
            write_file(
                &config_path,
                &serde_json::to_string_pretty(&config).expect("a JSON value"),
            )?;
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|e| format!("{}: {e}", log_path.display()))?;
            let stdout = log.try_clone().map_err(|e| format!("a log handle: {e}"))?;
            let mut child = Command::new(python)
                .arg(workspace().join("tests/synapse/run.py"))
                .arg("-c")
                .arg(&config_path)
                .current_dir(dir.path())
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::piped())
                .stdout(stdout)
                .stderr(log)
                .spawn()
                .map_err(|e| format!("running {}: {e}", python.display()))?;
            let stdin = child.stdin.take();
            match wait_ready(&mut child, &agent, port) {
                Ok(()) => {
                    return Ok(Synapse {
                        child,
                        stdin,
                        port,
                        dir: Some(dir),
                        server_name: opts.server_name.clone(),
                        secret: opts.secret.clone(),
                        startup: began.elapsed(),
                        agent,
                    });
                }
                Err(e) => {
                    drop(stdin);
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    if attempt < 3 && log.contains("Address already in use") {
                        attempt += 1;
                        let _ = std::fs::rename(
                            &log_path,
                            dir.path().join(format!("homeserver.{attempt}.log")),
                        );
                        continue;
                    }
                    let kept = dir.keep();
                    return Err(format!(
                        "{e}; directory kept: {}; the end of homeserver.log:\n{}",
                        kept.display(),
                        tail(&log, 40)
                    ));
                }
            }
        }
    }

    /// `http://127.0.0.1:<port>` (no trailing slash): where clients and the
    /// auth service reach Synapse.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The loopback port Synapse listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Synapse's `server_name`.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// `@<localpart>:<server_name>`.
    pub fn user_id(&self, localpart: &str) -> String {
        format!("@{localpart}:{}", self.server_name)
    }

    /// The shared secret (`matrix_authentication_service.secret`).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Synapse's log file (`homeserver.log` in its directory).
    pub fn log_path(&self) -> PathBuf {
        self.path().join("homeserver.log")
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The directory Synapse runs in (its config, database and log).
    pub fn dir(&self) -> &Path {
        self.path()
    }

    /// How long [`Synapse::start`] took, from writing the config to the first
    /// 200 from `/_matrix/client/versions`.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().expect("present until drop").path()
    }

    /// A request to Synapse: `path` from the root (`/_matrix/client/v3/...`),
    /// with `Authorization: Bearer <bearer>` if given and `json` as the body.
    /// Returns the status and the body: JSON, else a JSON string of the text,
    /// else `Null` when empty. Panics only when no answer comes (connection
    /// refused, timeout), with the end of Synapse's log.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        json: Option<&Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base_url());
        let mut request = http::Request::builder().method(method).uri(&url);
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match json {
            Some(value) => {
                request = request.header("content-type", "application/json");
                serde_json::to_vec(value).expect("JSON")
            }
            None => Vec::new(),
        };
        let request = request
            .body(body)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let mut response = self.agent.run(request).unwrap_or_else(|e| {
            panic!(
                "Synapse: {method} {path}: {e}; the end of its log:\n{}",
                tail(&self.log(), 40)
            )
        });
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .unwrap_or_else(|e| panic!("Synapse: {method} {path}: reading the body: {e}"));
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    /// What the auth service does: a request to `/_synapse/mas/<path>`
    /// (`path` like `provision_user` or `query_user?localpart=alice`) with
    /// the shared secret as Bearer token. Returns the status and the JSON body
    /// (see [`Synapse::request`]).
    pub fn admin_request(&self, method: &str, path: &str, json: Option<&Value>) -> (u16, Value) {
        let path = format!("/_synapse/mas/{}", path.trim_start_matches('/'));
        self.request(method, &path, Some(&self.secret), json)
    }

    /// Closes Synapse's stdin (which ends it, see `tests/synapse/run.py`) and
    /// waits up to 10 s for it to exit. `Err` if it had to be killed. The
    /// directory goes unless the thread is panicking.
    pub fn stop(mut self) -> Result<(), String> {
        self.shut_down(Duration::from_secs(10))
    }

    fn shut_down(&mut self, grace: Duration) -> Result<(), String> {
        drop(self.stdin.take());
        let deadline = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                outcome => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!(
                        "Synapse had not exited {grace:?} after its stdin closed ({outcome:?}): killed"
                    ));
                }
            }
        }
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        let _ = self.shut_down(Duration::from_secs(2));
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                let _ = writeln!(
                    std::io::stderr(),
                    "Synapse on port {}: config, database and homeserver.log kept in {}",
                    self.port,
                    kept.display()
                );
            }
        }
    }
}

/// Polls `GET /_matrix/client/versions` until it answers 200.
fn wait_ready(child: &mut Child, agent: &ureq::Agent, port: u16) -> Result<(), String> {
    let url = format!("http://127.0.0.1:{port}/_matrix/client/versions");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(response) = agent.get(&url).call() {
            if response.status() == 200 {
                return Ok(());
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("it exited ({status})"));
        }
        if Instant::now() >= deadline {
            return Err(format!("{url} did not answer 200 within {START_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `homeserver.yaml` for a Synapse in `dir` listening on `port`.
fn homeserver_config(dir: &Path, port: u16, opts: &SynapseOptions) -> Value {
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    // Far above anything a test does; Synapse has no switch to turn them off.
    let relaxed = json!({"per_second": 10000, "burst_count": 100000});
    let mut config = json!({
        "server_name": opts.server_name,
        "public_baseurl": format!("http://127.0.0.1:{port}/"),
        "listeners": [{
            "port": port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "tls": false,
            "x_forwarded": false,
            "resources": [{"names": ["client"], "compress": false}],
        }],
        "database": {
            "name": "sqlite3",
            "args": {"database": path("homeserver.db")},
        },
        "log_config": path("log.config"),
        "media_store_path": path("media_store"),
        // Inline: no signing key file, so no `--generate-keys` run first.
        "signing_key": format!("ed25519 a_test {}", random_base64(32)),
        // Else Synapse derives them from the signing key, saying so on stdout.
        "macaroon_secret_key": random_hex(32),
        "form_secret": random_hex(32),
        "trusted_key_servers": [],
        "report_stats": false,
        "enable_registration": false,
        "rc_message": relaxed,
        "rc_registration": relaxed,
        "rc_registration_token_validity": relaxed,
        "rc_login": {"address": relaxed, "account": relaxed, "failed_attempts": relaxed},
        "rc_joins": {"local": relaxed, "remote": relaxed},
        "rc_joins_per_room": relaxed,
        "rc_invites": {"per_room": relaxed, "per_user": relaxed, "per_issuer": relaxed},
        "rc_third_party_invite": relaxed,
        "rc_3pid_validation": relaxed,
        "rc_room_creation": relaxed,
        "rc_admin_redaction": relaxed,
        "rc_key_requests": relaxed,
        "rc_media_create": relaxed,
        "rc_presence": {"per_user": relaxed},
        "rc_delayed_event_mgmt": relaxed,
        "rc_reports": relaxed,
        "rc_user_directory": relaxed,
        "rc_profile": relaxed,
        "matrix_authentication_service": {
            "enabled": true,
            "endpoint": opts.auth_endpoint,
            "secret": opts.secret,
        },
    });
    let map = config.as_object_mut().expect("an object");
    for (key, value) in &opts.extra_config {
        map.insert(key.clone(), value.clone());
    }
    config
}

/// Python logging's dict config: INFO and up to `log`, in Synapse's format.
fn log_config(log: &Path) -> String {
    let config = json!({
        "version": 1,
        "formatters": {"precise": {
            "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s",
        }},
        "filters": {"context": {
            "()": "synapse.logging.context.LoggingContextFilter",
            "request": "",
        }},
        "handlers": {"file": {
            "class": "logging.FileHandler",
            "formatter": "precise",
            "filename": log.to_string_lossy(),
            "filters": ["context"],
        }},
        "root": {"level": "INFO", "handlers": ["file"]},
        "disable_existing_loggers": false,
    });
    serde_json::to_string_pretty(&config).expect("a JSON value")
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    bytes
}

fn random_hex(n: usize) -> String {
    random_bytes(n).iter().map(|b| format!("{b:02x}")).collect()
}

/// Unpadded standard base64, as Synapse writes signing keys.
fn random_base64(n: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(random_bytes(n))
}

/// A loopback port free at the time of the call.
fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding 127.0.0.1:0")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv's python, set up by `tests/synapse/setup` once per process.
fn venv_python() -> Result<PathBuf, String> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let script = workspace().join("tests/synapse/setup");
            let output = Command::new("bash")
                .arg(&script)
                .env("CARGO_TARGET_DIR", crate::smtp::target_dir())
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("running {}: {e}", script.display()))?;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                return Err(format!(
                    "tests/synapse/setup failed ({}): {}",
                    output.status,
                    tail(&stderr, 15)
                ));
            }
            let stdout = String::from_utf8_lossy(&output.stdout);
            stdout
                .lines()
                .last()
                .map(|l| PathBuf::from(l.trim()))
                .filter(|p| p.is_file())
                .ok_or_else(|| format!("tests/synapse/setup printed no venv python: {stdout:?}"))
        })
        .clone()
}
