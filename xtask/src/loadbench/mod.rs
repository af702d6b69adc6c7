//! `cargo xtask loadbench`: throughput and latency of the release server on its
//! hot paths, each next to a bare hyper server answering a fixed body on the same
//! path (the machine is shared and noisy, so the ratio is the figure that travels),
//! plus the server's RSS through the run and the share of its CPU that
//! registration and login spend in password hashing. Every figure is the median
//! over `--runs` runs.
//!
//! Two companion modes: `--scale-out` (one, then two server processes on one
//! PostgreSQL database, `scale_out.rs`) and `--cold-start` (time from spawning the
//! server to its first answer, empty and with 100,000 accounts, `cold_start.rs`).

mod cold_start;
mod scale_out;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

use crate::codegen::project_root;

/// Connections for the password-hashing paths: more only queue behind the cores.
const HASH_CONNECTIONS: usize = 4;
const PASSWORD: &str = "correct horse battery";

pub const USAGE: &str = "loadbench options:
  --runs N              runs per measurement; every figure is the median over them (default 3)
  --connections 16,32   keep-alive connection counts to measure (default 16,32; --scale-out: 32)
  --seconds S           length of one measurement in seconds (default 2)
  --only TEXT           measure only the operations whose name contains TEXT
                        (e.g. available; the default mode only)
  --scale-out           one, then two server processes on one PostgreSQL database
  --cold-start          time from spawning the server to its first answer (SQLite, PostgreSQL)
  --postgres URL        PostgreSQL server for --scale-out and --cold-start, without a database
                        name (default postgres://postgres@127.0.0.1:5432)
";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sqlite,
    ScaleOut,
    ColdStart,
}

pub struct Options {
    runs: usize,
    connections: Vec<usize>,
    seconds: f64,
    mode: Mode,
    postgres: String,
    only: Option<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            runs: 3,
            connections: Vec::new(),
            seconds: 2.0,
            mode: Mode::Sqlite,
            postgres: "postgres://postgres@127.0.0.1:5432".into(),
            only: None,
        };
        let mut it = args.iter();
        let bad = |flag: &str, v: &str| format!("loadbench: bad value {v:?} for {flag}\n{USAGE}");
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .map(String::as_str)
                    .ok_or_else(|| format!("loadbench: {flag} needs a value\n{USAGE}"))
            };
            match flag.as_str() {
                "--runs" => {
                    let v = value()?;
                    o.runs = v
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| bad(flag, v))?;
                }
                "--connections" => {
                    let v = value()?;
                    o.connections = v
                        .split(',')
                        .map(|c| c.trim().parse().ok().filter(|&n: &usize| n > 0))
                        .collect::<Option<_>>()
                        .ok_or_else(|| bad(flag, v))?;
                }
                "--seconds" => {
                    let v = value()?;
                    o.seconds = v
                        .parse()
                        .ok()
                        .filter(|&s: &f64| s > 0.0 && s.is_finite())
                        .ok_or_else(|| bad(flag, v))?;
                }
                "--postgres" => o.postgres = value()?.trim_end_matches('/').to_string(),
                "--only" => o.only = Some(value()?.to_string()),
                "--scale-out" | "--cold-start" if o.mode != Mode::Sqlite => {
                    return Err(format!(
                        "loadbench: --scale-out and --cold-start are separate runs\n{USAGE}"
                    ))
                }
                "--scale-out" => o.mode = Mode::ScaleOut,
                "--cold-start" => o.mode = Mode::ColdStart,
                _ => return Err(format!("loadbench: unknown option {flag}\n{USAGE}")),
            }
        }
        if o.only.is_some() && o.mode != Mode::Sqlite {
            return Err(format!(
                "loadbench: --only is for the default mode\n{USAGE}"
            ));
        }
        if o.connections.is_empty() {
            o.connections = match o.mode {
                Mode::ScaleOut => vec![32],
                _ => vec![16, 32],
            };
        }
        Ok(o)
    }

    /// Whether `--only` (if given) selects the operation `name`.
    fn selects(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|t| name.contains(t))
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }
}

pub fn loadbench(args: &[String]) -> Result<(), String> {
    let o = Options::parse(args)?;
    if cfg!(debug_assertions) {
        return Err(
            "loadbench: run it from a release build: cargo run --release -p xtask -- loadbench"
                .into(),
        );
    }
    let result = match o.mode {
        Mode::Sqlite => sqlite_bench(&o),
        Mode::ScaleOut => scale_out::scale_out(&o),
        Mode::ColdStart => cold_start::cold_start(&o),
    };
    // One line: the caller prints it as the whole error.
    result.map_err(|e| format!("loadbench: {}", e.replace('\n', " ")))
}

// ---------------------------------------------------------------------------
// Processes, directories and databases that clean up after themselves.

/// Child processes, killed when this is dropped (also on errors and panics).
struct Procs {
    dir: PathBuf,
    children: Vec<Child>,
}

impl Procs {
    fn new(dir: &Path) -> Procs {
        Procs {
            dir: dir.to_path_buf(),
            children: Vec::new(),
        }
    }

    /// Starts a process and waits until it prints `listening on http://ADDR`.
    fn spawn(&mut self, cmd: Command, name: &str) -> Result<(u32, SocketAddr), String> {
        let (pid, addr, _) = self.spawn_timed(cmd, name, Duration::from_millis(20))?;
        Ok((pid, addr))
    }

    /// Like `spawn`, polling every `poll`; also gives the time from spawning to
    /// the printed address.
    fn spawn_timed(
        &mut self,
        mut cmd: Command,
        name: &str,
        poll: Duration,
    ) -> Result<(u32, SocketAddr, Duration), String> {
        let out = self.dir.join(format!("{name}.out"));
        let err = self.dir.join(format!("{name}.err"));
        let create =
            |p: &Path| std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
        cmd.stdout(create(&out)?)
            .stderr(create(&err)?)
            .stdin(Stdio::null());
        let start = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let pid = child.id();
        self.children.push(child);
        let deadline = start + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if let Some(addr) = text
                .lines()
                .find_map(|l| l.strip_prefix("listening on http://"))
            {
                let addr = addr
                    .trim()
                    .parse()
                    .map_err(|e| format!("{name} printed a bad address {addr:?}: {e}"))?;
                return Ok((pid, addr, start.elapsed()));
            }
            let child = self.children.last_mut().expect("just pushed");
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "{name} exited ({status}) before listening: {}",
                    last_line(&err)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{name} did not print its address within 30 s: {}",
                    last_line(&err)
                ));
            }
            std::thread::sleep(poll);
        }
    }

    /// Stops one process: SIGTERM (the server shuts down gracefully), then
    /// SIGKILL if it is still there after 5 s.
    fn stop(&mut self, pid: u32) {
        let Some(i) = self.children.iter().position(|c| c.id() == pid) else {
            return;
        };
        let mut child = self.children.swap_remove(i);
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last non-empty line of a log file, for error messages.
fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| "(no output)".into())
}

/// A directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Result<TempDir, String> {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs one SQL command with `psql` against `url`; the output, unaligned.
fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run psql (needed for PostgreSQL): {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "psql {}: {}",
            redact(url),
            err.lines().next().unwrap_or("failed").trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
            Some(c) => format!("{}:***{}", &url[..s + 3 + c], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

/// A database created for the benchmark on the PostgreSQL server, dropped (with
/// any connections left to it) when this is dropped.
struct PgDb {
    base: String,
    name: String,
}

impl PgDb {
    /// Checks that the server answers, with one clear message if not.
    fn check_reachable(base: &str) -> Result<(), String> {
        psql(&format!("{base}/postgres"), "SELECT 1")
            .map(|_| ())
            .map_err(|e| format!("PostgreSQL unreachable ({e})"))
    }

    fn create(base: &str, name: &str) -> Result<PgDb, String> {
        let admin = format!("{base}/postgres");
        psql(
            &admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )?;
        psql(&admin, &format!("CREATE DATABASE {name}"))?;
        Ok(PgDb {
            base: base.to_string(),
            name: name.to_string(),
        })
    }

    fn url(&self) -> String {
        format!("{}/{}", self.base, self.name)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let admin = format!("{}/postgres", self.base);
        if let Err(e) = psql(
            &admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            eprintln!("loadbench: could not drop database {}: {e}", self.name);
        }
    }
}

// ---------------------------------------------------------------------------
// The server and the baseline.

/// Builds the release server; its binary.
fn build_server() -> Result<PathBuf, String> {
    let root = project_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "matrix-account-server",
        ])
        .current_dir(&root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build --release -p matrix-account-server failed".into());
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    Ok(target.join("release/matrix-account-server"))
}

/// A configuration on `database`, any free port, rate limits off, every other
/// key at its default (so `auth_cache_ms` is the default 1000).
fn write_config(path: &Path, database: &str) -> Result<(), String> {
    std::fs::write(
        path,
        format!(
            "bind = \"127.0.0.1:0\"\ndatabase = \"{database}\"\n[rate_limits]\nenabled = false\n"
        ),
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}

fn server_cmd(bin: &Path, config: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(config).env("RUST_LOG", "warn");
    cmd
}

fn bare_cmd() -> Result<Command, String> {
    let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    cmd.arg("bare-server");
    Ok(cmd)
}

/// The bare baseline: a hyper server that answers every request with a fixed
/// small JSON body, no routing, parsing or storage. Runs as its own process.
pub fn bare_server() -> Result<(), String> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "listening on http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        loop {
            let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                        let mut resp = Response::new(Full::new(Bytes::from_static(
                            b"{\"user_id\":\"@bench:localhost\",\"available\":true}",
                        )));
                        resp.headers_mut()
                            .insert("content-type", "application/json".parse().unwrap());
                        Ok::<_, std::convert::Infallible>(resp)
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

// ---------------------------------------------------------------------------
// Requests and the load generator.

/// What one simulated client does repeatedly.
#[derive(Clone)]
enum Scenario {
    /// One request, built from a counter (for unique names).
    Single(Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>),
    /// The two-step registration (challenge, then the dummy stage).
    Register,
}

struct Measured {
    ops: usize,
    errors: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU time the answering process used per answered request, in µs (0 where
    /// not measured).
    cpu_us: f64,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.seconds
    }
}

async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Option<(u16, Bytes)> {
    let resp = sender.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, body))
}

fn request(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let body = body.map(|v| Bytes::from(v.to_string())).unwrap_or_default();
    b.body(Full::new(body)).expect("valid request")
}

/// One request on a connection of its own (for setting the benchmark up).
async fn once(addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<(u16, Value), String> {
    let what = format!("{} {}", req.method(), req.uri().path());
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("{what} on {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{what} on {addr}: {e}"))?;
    tokio::spawn(conn);
    let (status, body) = send(&mut sender, req)
        .await
        .ok_or_else(|| format!("{what} on {addr}: no answer"))?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// One request that must answer 200; its body.
async fn once_ok(addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<Value, String> {
    let what = format!("{} {}", req.method(), req.uri().path());
    match once(addr, req).await? {
        (200, body) => Ok(body),
        (status, body) => Err(format!("{what} on {addr} answered {status}: {body}")),
    }
}

/// A user, its access token and an OpenID token, made through the API.
struct Credentials {
    user: String,
    token: String,
    openid: String,
}

async fn prepare(addr: SocketAddr, localpart: &str) -> Result<Credentials, String> {
    let body = json!({"username": localpart, "password": PASSWORD});
    let (_, b) = once(
        addr,
        request(
            "POST",
            "/_matrix/client/v3/register",
            None,
            Some(body.clone()),
        ),
    )
    .await?;
    let mut body = body;
    body["auth"] = json!({"type": "m.login.dummy", "session": b["session"]});
    let reg = once_ok(
        addr,
        request("POST", "/_matrix/client/v3/register", None, Some(body)),
    )
    .await?;
    let token = reg["access_token"]
        .as_str()
        .ok_or("registration gave no access token")?
        .to_string();
    let user = reg["user_id"]
        .as_str()
        .ok_or("registration gave no user_id")?
        .to_string();
    let path = format!("/_matrix/client/v3/user/{user}/openid/request_token");
    let oid = once_ok(addr, request("POST", &path, Some(&token), Some(json!({})))).await?;
    let openid = oid["access_token"]
        .as_str()
        .ok_or("request_token gave no token")?
        .to_string();
    Ok(Credentials {
        user,
        token,
        openid,
    })
}

fn login_request(localpart: &str) -> Request<Full<Bytes>> {
    request(
        "POST",
        "/_matrix/client/v3/login",
        None,
        Some(
            json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": localpart}, "password": PASSWORD}),
        ),
    )
}

type Op = (&'static str, Scenario);

fn single(f: impl Fn(u64) -> Request<Full<Bytes>> + Send + Sync + 'static) -> Scenario {
    Scenario::Single(Arc::new(f))
}

/// The read-only operations (no database writes).
fn read_ops(c: &Credentials, with_versions: bool) -> Vec<Op> {
    let (t, o) = (c.token.clone(), c.openid.clone());
    let mut ops: Vec<Op> = Vec::new();
    if with_versions {
        ops.push((
            "GET /versions",
            single(|_| request("GET", "/_matrix/client/versions", None, None)),
        ));
    }
    ops.push((
        "GET /register/available",
        single(|n| {
            request(
                "GET",
                &format!("/_matrix/client/v3/register/available?username=free{n}"),
                None,
                None,
            )
        }),
    ));
    ops.push((
        "GET /account/whoami",
        single(move |_| request("GET", "/_matrix/client/v3/account/whoami", Some(&t), None)),
    ));
    ops.push((
        "GET /openid/userinfo",
        single(move |_| {
            request(
                "GET",
                &format!("/_matrix/federation/v1/openid/userinfo?access_token={o}"),
                None,
                None,
            )
        }),
    ));
    ops
}

/// The write operation: one durable insert per request.
fn write_op(c: &Credentials) -> Op {
    let t = c.token.clone();
    let path = format!("/_matrix/client/v3/user/{}/openid/request_token", c.user);
    (
        "POST /openid/request_token",
        single(move |_| request("POST", &path, Some(&t), Some(json!({})))),
    )
}

fn login_op(localpart: &str) -> Op {
    let l = localpart.to_string();
    ("POST /login", single(move |_| login_request(&l)))
}

/// Drives `scenario` for `duration` over `connections` keep-alive connections,
/// spread round-robin over `addrs` (several addresses: one client pool each).
async fn run_load(
    addrs: &[SocketAddr],
    scenario: Scenario,
    connections: usize,
    duration: Duration,
    tag: &str,
) -> Measured {
    let deadline = Instant::now() + duration;
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let addr = addrs[worker % addrs.len()];
        let scenario = scenario.clone();
        let counter = counter.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let Ok(stream) = TcpStream::connect(addr).await else {
                return (latencies, 1);
            };
            let _ = stream.set_nodelay(true);
            let Ok((mut sender, conn)) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
            else {
                return (latencies, 1);
            };
            tokio::spawn(conn);
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let start = Instant::now();
                let ok = match &scenario {
                    Scenario::Single(make) => {
                        matches!(send(&mut sender, make(n)).await, Some((200, _)))
                    }
                    Scenario::Register => {
                        register_once(&mut sender, &format!("{tag}{worker}n{n}")).await
                    }
                };
                if ok {
                    latencies.push(start.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                    if sender.is_closed() {
                        break;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let start = Instant::now();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let seconds = start.elapsed().as_secs_f64().max(duration.as_secs_f64());
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    Measured {
        ops: all.len(),
        errors,
        seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        cpu_us: 0.0,
    }
}

async fn register_once(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    name: &str,
) -> bool {
    let body = json!({"username": name, "password": PASSWORD});
    let reg = |body| request("POST", "/_matrix/client/v3/register", None, Some(body));
    let Some((401, b)) = send(sender, reg(body.clone())).await else {
        return false;
    };
    let session = serde_json::from_slice::<Value>(&b)
        .ok()
        .and_then(|v| v["session"].as_str().map(str::to_string));
    let mut body = body;
    body["auth"] = json!({"type": "m.login.dummy", "session": session});
    matches!(send(sender, reg(body)).await, Some((200, _)))
}

// ---------------------------------------------------------------------------
// Measurements of processes and figures.

/// RSS in MiB of a process (VmRSS in /proc/PID/status); 0 if it is gone.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// CPU seconds (user + system) a process has used so far, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime, in clock ticks (100 per second on Linux).
    (field(11) + field(12)) / 100.0
}

/// CPU seconds used so far by all processes named `postgres` on this machine (the
/// PostgreSQL backends serving the benchmark, and whatever else it serves).
fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(cpu_seconds)
        .sum()
}

/// A request rate, with a decimal only when it is small.
fn fmt_rate(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    }
}

/// The highest RSS of a process while this runs (sampled every 50 ms).
struct RssPeak {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<f64>,
}

impl RssPeak {
    fn start(pid: u32) -> RssPeak {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak: f64 = 0.0;
            while !s.load(Ordering::Relaxed) {
                peak = peak.max(rss_mib(pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak.max(rss_mib(pid))
        });
        RssPeak { stop, thread }
    }

    fn finish(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0.0)
    }
}

fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

fn min_max(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    values
        .into_iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        })
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

fn errors_note(errors: usize) -> String {
    if errors > 0 {
        format!(" ({errors} errors)")
    } else {
        String::new()
    }
}

/// Blocking HTTP/1.1 request on a fresh connection (`Connection: close`): the
/// status and body. For polling a starting server without a runtime.
fn http_blocking(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status line"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Runtime::new().map_err(|e| format!("tokio runtime: {e}"))
}

// ---------------------------------------------------------------------------
// The default mode: one server on SQLite next to the bare baseline.

/// One operation at one connection count: (server, bare) per run.
struct Row {
    name: &'static str,
    connections: usize,
    runs: Vec<(Measured, Measured)>,
}

/// Measures each operation at each connection count against the server and then
/// the bare baseline, `runs` times (runs outermost, so that drift in the
/// machine's load spreads over all rows).
async fn compare(
    ops: &[Op],
    server: &[SocketAddr],
    bare: &[SocketAddr],
    pids: (u32, u32),
    o: &Options,
    phase: &str,
) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    if ops.is_empty() {
        return rows;
    }
    for &c in &o.connections {
        for (name, _) in ops {
            rows.push(Row {
                name,
                connections: c,
                runs: Vec::new(),
            });
        }
    }
    for run in 0..o.runs {
        eprintln!("  {phase}: run {}/{}", run + 1, o.runs);
        let mut i = 0;
        for &c in &o.connections {
            for (_, scenario) in ops {
                let per_request = |m: &Measured, cpu: f64| 1e6 * cpu / (m.ops.max(1) as f64);
                let before = cpu_seconds(pids.0);
                let mut m = run_load(server, scenario.clone(), c, o.duration(), "r").await;
                m.cpu_us = per_request(&m, cpu_seconds(pids.0) - before);
                let before = cpu_seconds(pids.1);
                let mut b = run_load(bare, scenario.clone(), c, o.duration(), "b").await;
                b.cpu_us = per_request(&b, cpu_seconds(pids.1) - before);
                rows[i].runs.push((m, b));
                i += 1;
            }
        }
    }
    rows
}

fn print_rows(rows: &[Row]) {
    for r in rows {
        let ratios: Vec<f64> = r
            .runs
            .iter()
            .map(|(m, b)| ratio(m.rate(), b.rate()))
            .collect();
        let (lo, hi) = min_max(ratios.iter().copied());
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0}% | {:.0}–{:.0}% | {:.2} ms | {:.2} ms | {:.1} / {:.1} µs |{}",
            r.name,
            r.connections,
            median(r.runs.iter().map(|(m, _)| m.rate())),
            median(r.runs.iter().map(|(_, b)| b.rate())),
            100.0 * median(ratios.iter().copied()),
            100.0 * lo,
            100.0 * hi,
            median(r.runs.iter().map(|(m, _)| m.p50_ms)),
            median(r.runs.iter().map(|(m, _)| m.p99_ms)),
            median(r.runs.iter().map(|(m, _)| m.cpu_us)),
            median(r.runs.iter().map(|(_, b)| b.cpu_us)),
            errors_note(r.runs.iter().map(|(m, _)| m.errors).sum())
        );
    }
}

/// CPU seconds one argon2id hash takes with the server's default parameters.
fn hash_cost() -> f64 {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(19 * 1024, 2, 1, None).expect("OWASP parameters are valid");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"benchmark-salt-16").expect("valid salt");
    let n = 20;
    let start = Instant::now();
    for _ in 0..n {
        let _ = argon.hash_password(PASSWORD.as_bytes(), &salt);
    }
    start.elapsed().as_secs_f64() / f64::from(n)
}

fn sqlite_bench(o: &Options) -> Result<(), String> {
    let bin = build_server()?;
    let dir = TempDir::new("loadbench")?;
    let config = dir.0.join("config.toml");
    write_config(&config, &format!("sqlite://{}/db.sqlite", dir.0.display()))?;
    let mut procs = Procs::new(&dir.0);
    let (pid, addr) = procs.spawn(server_cmd(&bin, &config), "the server")?;
    // Let the start settle (migrations, the dummy hash) before reading it.
    std::thread::sleep(Duration::from_millis(500));
    let rss_start = rss_mib(pid);
    let (bare_pid, bare_addr) = procs.spawn(bare_cmd()?, "the bare server")?;
    eprintln!(
        "loadbench: {} run(s) × {} s per measurement, connections {:?}",
        o.runs, o.seconds, o.connections
    );

    let rt = runtime()?;
    rt.block_on(async {
        let creds = prepare(addr, "bench").await?;
        let rss_setup = rss_mib(pid);

        let peak = RssPeak::start(pid);
        let selected = |ops: Vec<Op>| -> Vec<Op> { ops.into_iter().filter(|(n, _)| o.selects(n)).collect() };
        let reads = compare(&selected(read_ops(&creds, true)), &[addr], &[bare_addr], (pid, bare_pid), o, "reads").await;
        let (rss_reads_peak, rss_reads) = (peak.finish(), rss_mib(pid));

        let peak = RssPeak::start(pid);
        let writes = compare(&selected(vec![write_op(&creds)]), &[addr], &[bare_addr], (pid, bare_pid), o, "writes").await;
        let (rss_writes_peak, rss_writes) = (peak.finish(), rss_mib(pid));

        // Password hashing: throughput, and the share of the server's CPU that
        // went into argon2 (hashes done × cost of one hash ÷ CPU used).
        let cost = hash_cost();
        let hashing = selected(vec![
            ("registration (2 requests)", Scenario::Register),
            login_op("bench"),
        ]);
        let mut hashed: Vec<Vec<(Measured, f64)>> = hashing.iter().map(|_| Vec::new()).collect();
        let peak = RssPeak::start(pid);
        for run in 0..if hashing.is_empty() { 0 } else { o.runs } {
            eprintln!("  hashing: run {}/{}", run + 1, o.runs);
            for (i, (_, scenario)) in hashing.iter().enumerate() {
                let before = cpu_seconds(pid);
                let m = run_load(&[addr], scenario.clone(), HASH_CONNECTIONS, o.duration(), &format!("h{run}x")).await;
                let used = cpu_seconds(pid) - before;
                let share = ratio(m.ops as f64 * cost, used);
                hashed[i].push((m, share));
            }
        }
        let (rss_hash_peak, rss_hash) = (peak.finish(), rss_mib(pid));
        tokio::time::sleep(Duration::from_secs(5)).await;
        let rss_idle = rss_mib(pid);

        println!(
            "\nMedians over {} run(s) of {} s each (ratio: median of the per-run ratios server/bare, range over runs).\n",
            o.runs, o.seconds
        );
        println!("| operation | connections | server req/s | bare req/s | ratio | ratio range | p50 | p99 | CPU per request, server / bare |");
        println!("|---|---|---|---|---|---|---|---|---|");
        print_rows(&reads);
        print_rows(&writes);
        for ((name, _), runs) in hashing.iter().zip(&hashed) {
            println!(
                "| {name} | {HASH_CONNECTIONS} | {:.1} | — | {:.0}% of CPU in argon2 | — | {:.1} ms | {:.1} ms | — |{}",
                median(runs.iter().map(|(m, _)| m.rate())),
                100.0 * median(runs.iter().map(|(_, s)| *s)),
                median(runs.iter().map(|(m, _)| m.p50_ms)),
                median(runs.iter().map(|(m, _)| m.p99_ms)),
                errors_note(runs.iter().map(|(m, _)| m.errors).sum())
            );
        }
        println!("\nServer RSS (VmRSS):\n");
        println!("| when | RSS |");
        println!("|---|---|");
        for (when, rss) in [
            ("idle after start", rss_start),
            ("after setup (one registration)", rss_setup),
            ("peak during the read-only workloads", rss_reads_peak),
            ("right after the read-only workloads", rss_reads),
            ("peak during request_token", rss_writes_peak),
            ("right after request_token", rss_writes),
            ("peak during registration and login", rss_hash_peak),
            ("right after registration and login", rss_hash),
            ("after 5 s idle", rss_idle),
        ] {
            println!("| {when} | {rss:.1} MiB |");
        }
        println!(
            "\nOne argon2id hash (19 MiB, t=2) in this process: {:.1} ms.",
            cost * 1000.0
        );
        Ok::<(), String>(())
    })
}
