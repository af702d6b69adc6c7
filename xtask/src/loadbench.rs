//! `cargo xtask loadbench`: throughput and latency of the release server on its
//! hot paths, each next to a bare hyper server answering a fixed body on the same
//! path (the machine is shared and noisy, so the ratio is the figure that travels),
//! plus the server's RSS and the share of its CPU that registration and login
//! spend in password hashing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

use crate::codegen::project_root;

const CONNECTIONS: usize = 32;
const READ_SECONDS: u64 = 4;
const HASH_SECONDS: u64 = 6;

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
async fn once(addr: SocketAddr, req: Request<Full<Bytes>>) -> Option<(u16, Bytes)> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    send(&mut sender, req).await
}

async fn run_load(
    addr: SocketAddr,
    scenario: Scenario,
    connections: usize,
    seconds: u64,
    tag: &str,
) -> Measured {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for worker in 0..connections {
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
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let start = Instant::now();
                let ok = match &scenario {
                    Scenario::Single(make) => {
                        matches!(send(&mut sender, make(n)).await, Some((200, _)))
                    }
                    Scenario::Register => {
                        let name = format!("{tag}{worker}n{n}");
                        let body = json!({"username": name, "password": "correct horse battery"});
                        match send(
                            &mut sender,
                            request(
                                "POST",
                                "/_matrix/client/v3/register",
                                None,
                                Some(body.clone()),
                            ),
                        )
                        .await
                        {
                            Some((401, b)) => {
                                let session = serde_json::from_slice::<Value>(&b)
                                    .ok()
                                    .and_then(|v| v["session"].as_str().map(str::to_string));
                                let mut body = body;
                                body["auth"] = json!({"type": "m.login.dummy", "session": session});
                                matches!(
                                    send(
                                        &mut sender,
                                        request(
                                            "POST",
                                            "/_matrix/client/v3/register",
                                            None,
                                            Some(body)
                                        )
                                    )
                                    .await,
                                    Some((200, _))
                                )
                            }
                            _ => false,
                        }
                    }
                };
                if ok {
                    latencies.push(start.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
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
    let seconds = start.elapsed().as_secs_f64().max(seconds as f64);
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
    }
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

fn spawn_and_wait(
    mut cmd: Command,
    log_dir: &Path,
    name: &str,
) -> Result<(Child, SocketAddr), String> {
    let out = log_dir.join(format!("{name}.out"));
    let child = cmd
        .stdout(std::fs::File::create(&out).map_err(|e| e.to_string())?)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{name}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if let Some(addr) = text
            .lines()
            .find_map(|l| l.strip_prefix("listening on http://"))
        {
            return Ok((
                child,
                addr.trim().parse().map_err(|e| format!("{name}: {e}"))?,
            ));
        }
        if Instant::now() > deadline {
            return Err(format!("{name} did not start"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (RSS in MiB, CPU seconds used so far) of a process, from /proc.
fn process_stats(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    (rss_kib / 1024.0, ticks / 100.0)
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
        let _ = argon.hash_password(b"correct horse battery", &salt);
    }
    start.elapsed().as_secs_f64() / f64::from(n)
}

pub fn loadbench() -> Result<(), String> {
    if cfg!(debug_assertions) {
        return Err("run the load benchmark from a release build: cargo run --release -p xtask -- loadbench".into());
    }
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
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("cargo build --release -p matrix-account-server failed".into());
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let server_bin = target.join("release/matrix-account-server");
    let dir = std::env::temp_dir().join(format!("loadbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!("bind = \"127.0.0.1:0\"\ndatabase = \"sqlite://{}/db.sqlite\"\n[rate_limits]\nenabled = false\n", dir.display()),
    )
    .map_err(|e| e.to_string())?;
    let mut server_cmd = Command::new(&server_bin);
    server_cmd
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn");
    let (mut server, addr) = spawn_and_wait(server_cmd, &dir, "server")?;
    let mut bare_cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    bare_cmd.arg("bare-server");
    let (mut bare, bare_addr) = spawn_and_wait(bare_cmd, &dir, "bare")?;

    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let result = rt.block_on(async {
        // Prepare a user, its access token and an OpenID token through the API.
        let body = json!({"username": "bench", "password": "correct horse battery"});
        let (_, b) = once(addr, request("POST", "/_matrix/client/v3/register", None, Some(body.clone()))).await.ok_or("register")?;
        let session = serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string())?["session"].clone();
        let mut body = body;
        body["auth"] = json!({"type": "m.login.dummy", "session": session});
        let (_, b) = once(addr, request("POST", "/_matrix/client/v3/register", None, Some(body))).await.ok_or("register")?;
        let reg: Value = serde_json::from_slice(&b).map_err(|e| e.to_string())?;
        let token = reg["access_token"].as_str().ok_or("no access token")?.to_string();
        let path = "/_matrix/client/v3/user/@bench:localhost/openid/request_token";
        let (_, b) = once(addr, request("POST", path, Some(&token), Some(json!({})))).await.ok_or("openid")?;
        let oid = serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string())?["access_token"].as_str().ok_or("no openid token")?.to_string();

        let t = token.clone();
        let o = oid.clone();
        let reads: Vec<(&str, Scenario)> = vec![
            ("GET /versions", Scenario::Single(Arc::new(|_| request("GET", "/_matrix/client/versions", None, None)))),
            (
                "GET /register/available",
                Scenario::Single(Arc::new(|n| request("GET", &format!("/_matrix/client/v3/register/available?username=free{n}"), None, None))),
            ),
            ("GET /account/whoami", Scenario::Single(Arc::new(move |_| request("GET", "/_matrix/client/v3/account/whoami", Some(&t), None)))),
            (
                "GET /openid/userinfo",
                Scenario::Single(Arc::new(move |_| request("GET", &format!("/_matrix/federation/v1/openid/userinfo?access_token={o}"), None, None))),
            ),
            (
                "POST /openid/request_token",
                Scenario::Single(Arc::new(move |_| request("POST", path, Some(&token), Some(json!({}))))),
            ),
        ];
        println!("| operation | server req/s | bare req/s | ratio | p50 | p99 |");
        println!("|---|---|---|---|---|---|");
        for (name, scenario) in reads {
            let m = run_load(addr, scenario.clone(), CONNECTIONS, READ_SECONDS, "r").await;
            let b = run_load(bare_addr, scenario, CONNECTIONS, READ_SECONDS, "b").await;
            println!(
                "| {name} | {:.0} | {:.0} | {:.0}% | {:.2} ms | {:.2} ms |{}",
                m.rate(),
                b.rate(),
                100.0 * m.rate() / b.rate(),
                m.p50_ms,
                m.p99_ms,
                if m.errors > 0 { format!(" ({} errors)", m.errors) } else { String::new() }
            );
        }
        // Password-hashing paths: throughput, and the share of server CPU that
        // went into argon2 (hashes done × cost of one hash ÷ CPU used).
        let cost = hash_cost();
        for (name, scenario) in [
            ("registration (2 requests)", Scenario::Register),
            (
                "POST /login",
                Scenario::Single(Arc::new(|_| {
                    request(
                        "POST",
                        "/_matrix/client/v3/login",
                        None,
                        Some(json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bench"}, "password": "correct horse battery"})),
                    )
                })),
            ),
        ] {
            let (_, cpu_before) = process_stats(server.id());
            let m = run_load(addr, scenario, 4, HASH_SECONDS, "h").await;
            let (_, cpu_after) = process_stats(server.id());
            let share = 100.0 * m.ops as f64 * cost / (cpu_after - cpu_before).max(1e-9);
            println!(
                "| {name} | {:.1} | — | {share:.0}% of CPU in argon2 | {:.1} ms | {:.1} ms |{}",
                m.rate(),
                m.p50_ms,
                m.p99_ms,
                if m.errors > 0 { format!(" ({} errors)", m.errors) } else { String::new() }
            );
        }
        let (rss, _) = process_stats(server.id());
        tokio::time::sleep(Duration::from_secs(4)).await;
        let (idle_rss, _) = process_stats(server.id());
        println!(
            "\nserver RSS right after the run: {rss:.1} MiB; after 4 s idle: {idle_rss:.1} MiB; one argon2id hash (19 MiB, t=2): {:.1} ms",
            cost * 1000.0
        );
        Ok::<(), String>(())
    });
    let _ = server.kill();
    let _ = bare.kill();
    let _ = server.wait();
    let _ = bare.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
