//! Black-box harness: runs the real `matrix-account-server` binary on a free port
//! with a fresh database (an SQLite file in a temporary directory, or a PostgreSQL
//! database of its own) and talks HTTP to it over TCP.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use matrix_api::client_server::registration;
use matrix_api::types::AuthData;
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The server binary, built once per test run next to the test executable (so a
/// custom `CARGO_TARGET_DIR` works).
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "matrix-account-server"])
            .current_dir(&root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building matrix-account-server failed");
        let exe = std::env::current_exe().expect("test executable");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps");
        profile_dir.join(format!(
            "matrix-account-server{}",
            std::env::consts::EXE_SUFFIX
        ))
    })
    .clone()
}

/// A PostgreSQL database for one test, dropped afterwards.
struct PgDatabase {
    admin_url: String,
    name: String,
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

impl PgDatabase {
    /// `None` when no server is reachable: the test is skipped, visibly (see
    /// [`crate::skip`]); in CI that fails it.
    fn create() -> Option<PgDatabase> {
        let admin_url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!(
            "mas_test_{}_{}",
            std::process::id(),
            crate::server::unique()
        );
        let result = block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await?;
            Ok::<_, sqlx::Error>(())
        });
        match result {
            Ok(()) => Some(PgDatabase { admin_url, name }),
            Err(e) => {
                crate::skip::skip(&format!(
                    "PostgreSQL at {admin_url} unreachable ({e}); set DATABASE_URL to run it"
                ));
                None
            }
        }
    }

    fn url(&self) -> String {
        match self.admin_url.rfind('/') {
            Some(i) => format!("{}/{}", &self.admin_url[..i], self.name),
            None => self.admin_url.clone(),
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = block_on(async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
        });
    }
}

pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    t * 1000 + N.fetch_add(1, Ordering::Relaxed)
}

/// Polls `condition` until it holds, failing the test after `within`. For things
/// that happen with time (expiry, caches), instead of sleeping a guessed amount.
pub fn eventually(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: http::HeaderMap,
}

impl Reply {
    pub fn errcode(&self) -> &str {
        self.body["errcode"].as_str().unwrap_or("")
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

pub struct TestServer {
    child: Option<Child>,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    agent: ureq::Agent,
    _pg: Option<PgDatabase>,
}

/// Fast hashing and no rate limits unless a test asks; `extra` is appended TOML.
const BASE_CONFIG: &str = "server_name = \"test.local\"\n";

impl TestServer {
    /// Starts a server; `None` when the database is unavailable (skipped).
    pub fn start(db: Db, extra: &str) -> Option<TestServer> {
        let dir = tempfile::tempdir().unwrap();
        let pg = match db {
            Db::Sqlite => None,
            Db::Postgres => Some(PgDatabase::create()?),
        };
        let url = match &pg {
            Some(p) => p.url(),
            None => format!("sqlite://{}/db/homeserver.db", dir.path().display()),
        };
        // `extra` comes first (its top-level keys must precede any section); its
        // sections replace the defaults below, section by section.
        // A test that must know the address before the server starts (to
        // give it to another process first) sets `bind` itself.
        let bind = match extra.starts_with("bind =") {
            true => "",
            false => "bind = \"127.0.0.1:0\"\n",
        };
        let mut text = format!("{bind}{BASE_CONFIG}database = \"{url}\"\n{extra}\n");
        if !extra.contains("[passwords]") {
            text.push_str(
                "[passwords]\nargon2_memory_kib = 1024\nargon2_iterations = 1\nmin_length = 8\n",
            );
        }
        if !extra.contains("[rate_limits]") {
            text.push_str("[rate_limits]\nenabled = false\n");
        }
        let config = dir.path().join("config.toml");
        std::fs::write(&config, text).unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut s = TestServer {
            child: None,
            base: String::new(),
            dir,
            config,
            agent,
            _pg: pg,
        };
        s.spawn();
        Some(s)
    }

    /// A second server process on the same database (another node behind the
    /// same load balancer).
    pub fn another_process(&self) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::copy(&self.config, &config).unwrap();
        let mut s = TestServer {
            child: None,
            base: String::new(),
            dir,
            config,
            agent: self.agent.clone(),
            _pg: None,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let out = self.dir.path().join("stdout.log");
        let err = self.dir.path().join("stderr.log");
        let child = Command::new(binary())
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if let Some(addr) = text.lines().find_map(|l| l.strip_prefix("listening on ")) {
                self.base = addr.trim().to_string();
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "server exited ({status}): {}",
                    std::fs::read_to_string(&err).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`: no shutdown, no flushing beyond what was committed.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server process's ID (for signals sent from other threads).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Runs an admin subcommand against this server's database.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(binary())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("cli runs")
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> Reply {
        self.try_request(method, path, token, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Like `request`, but a dropped connection is an `Err` (the crash test expects
    /// them), not a test failure.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Reply, String> {
        let url = format!("{}{}", self.base, path);
        let mut req = http::Request::builder().method(method).uri(&url);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(body.map(<[u8]>::to_vec).unwrap_or_default())
            .map_err(|e| e.to_string())?;
        let mut resp = self.agent.run(req).map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Reply {
            status,
            body,
            headers,
        })
    }

    /// Sends a ready-made `http::Request` (built by another library) and returns
    /// the raw response.
    pub fn send_http(&self, req: http::Request<Vec<u8>>) -> http::Response<Vec<u8>> {
        let mut resp = self.agent.run(req).expect("request sent");
        let mut out = http::Response::builder().status(resp.status());
        for (k, v) in resp.headers() {
            out = out.header(k, v);
        }
        let body = resp.body_mut().read_to_vec().expect("body read");
        out.body(body).expect("valid response")
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request("GET", path, token, None)
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request("POST", path, token, Some(body.to_string().as_bytes()))
    }

    pub fn put(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request("PUT", path, token, Some(body.to_string().as_bytes()))
    }

    /// Registers through the dummy flow with the typed client; returns the
    /// response body.
    pub fn register(&self, username: &str, password: &str) -> Value {
        let mut body = registration::register::RequestBody::new();
        body.username = Some(username.into());
        body.password = Some(password.into());
        let done = self.client().register(body);
        serde_json::to_value(done).unwrap()
    }

    /// Registers and returns `(user_id, access_token)`.
    pub fn user(&self, username: &str) -> (String, String) {
        let body = self.register(username, "correct horse");
        (
            body["user_id"].as_str().unwrap().into(),
            body["access_token"].as_str().unwrap().into(),
        )
    }

    pub fn login(&self, user: &str, password: &str) -> Reply {
        self.post(
            "/_matrix/client/v3/login",
            None,
            json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password}),
        )
    }

    /// A typed client of this server (the generated crate's
    /// `matrix_api::runtime::Client`), callable from synchronous tests.
    pub fn client(&self) -> ApiClient {
        ApiClient {
            client: matrix_api::runtime::Client::new(&self.base),
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// What the server printed (the addresses it listens on).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }
}

/// The typed client of a [`TestServer`], blocking: each call runs on a runtime
/// shared by the test process (tests here are synchronous).
#[derive(Clone, Debug)]
pub struct ApiClient {
    pub client: matrix_api::runtime::Client,
}

impl ApiClient {
    /// The same client sending `token` to operations that take one.
    pub fn with_access_token(&self, token: &str) -> ApiClient {
        ApiClient {
            client: self.client.clone().with_access_token(token),
        }
    }

    /// Sends `request` and waits for the typed answer.
    pub fn send<R: matrix_api::runtime::ClientRequest>(
        &self,
        request: &R,
    ) -> Result<R::Response, matrix_api::runtime::ClientError<R::Error>> {
        static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
        RUNTIME
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .unwrap()
            })
            .block_on(self.client.send(request))
    }

    /// Registers with `body` through the `m.login.dummy` stage: the first
    /// request gets the session, the second completes it.
    pub fn register(
        &self,
        mut body: registration::register::RequestBody,
    ) -> registration::register::OkBody {
        use registration::register::{Request, Response};
        let session = match self.send(&Request::new(body.clone())) {
            Ok(Response::Unauthorized(uia)) => uia.session,
            other => panic!("expected the UIA flows, got {other:?}"),
        };
        body.auth = Some(auth_stage("m.login.dummy", session));
        match self.send(&Request::new(body)) {
            Ok(Response::Ok(done)) => done,
            other => panic!("registration failed: {other:?}"),
        }
    }

    /// Sends `request`, expecting an error envelope; returns it.
    pub fn error<R>(&self, request: &R) -> R::Error
    where
        R: matrix_api::runtime::ClientRequest,
        R::Response: std::fmt::Debug,
        R::Error: std::fmt::Display,
    {
        match self.send(request) {
            Err(matrix_api::runtime::ClientError::Api(e)) => e,
            other => panic!("expected an error envelope, got {other:?}"),
        }
    }
}

/// The `auth` of a user-interactive authentication stage.
pub fn auth_stage(stage: &str, session: Option<String>) -> AuthData {
    let mut auth = AuthData::new();
    auth.type_ = Some(stage.into());
    auth.session = session;
    auth
}

/// A test server's PostgreSQL database, for tests that check what is stored.
pub struct PgHandle {
    url: String,
}

impl PgHandle {
    /// Runs `f` on a fresh connection to the database.
    fn with<T, F>(&self, f: F) -> T
    where
        F: for<'c> FnOnce(
            &'c mut sqlx::PgConnection,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, sqlx::Error>> + 'c>,
        >,
    {
        block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&self.url).await?;
            f(&mut conn).await
        })
        .expect("SQL runs")
    }

    pub fn execute(&self, sql: &str) {
        let sql = sql.to_string();
        self.with(|c| {
            Box::pin(async move {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(c)
                    .await
                    .map(drop)
            })
        });
    }

    /// The single text a query answers.
    pub fn text(&self, sql: &str) -> String {
        let sql = sql.to_string();
        self.with(|c| Box::pin(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(c)))
    }

    /// The single integer a query answers (`SELECT count(*) ...`).
    pub fn count(&self, sql: &str) -> i64 {
        let sql = sql.to_string();
        self.with(|c| Box::pin(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(c)))
    }
}

impl TestServer {
    /// The server's database when it is PostgreSQL.
    pub fn postgres(&self) -> Option<PgHandle> {
        self._pg.as_ref().map(|p| PgHandle { url: p.url() })
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One behaviour, tested on both databases: `both!(name, |s| { ... })`, with
/// optional extra TOML configuration.
#[macro_export]
macro_rules! both {
    ($name:ident, $config:expr, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn run(db: matrix_tests::server::Db) {
                if let Some(s) = matrix_tests::server::TestServer::start(db, $config) {
                    let f: &dyn Fn(&matrix_tests::server::TestServer) = &$body;
                    f(&s);
                }
            }
            #[test]
            fn sqlite() {
                run(matrix_tests::server::Db::Sqlite)
            }
            #[test]
            fn postgres() {
                run(matrix_tests::server::Db::Postgres)
            }
        }
    };
    ($name:ident, $body:expr) => {
        both!($name, "", $body);
    };
}
