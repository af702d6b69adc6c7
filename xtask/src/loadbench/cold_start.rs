//! `loadbench --cold-start`: time from spawning the server process to its first
//! answered request (`GET /_matrix/client/versions`, polled every millisecond on
//! the address it prints), on SQLite and PostgreSQL, with a new database (the
//! start creates the schema), an empty one (schema present, no accounts) and one
//! with 100,000 accounts. The accounts are inserted by SQL (`sqlite3`, `psql`),
//! all with one precomputed argon2id hash, and one of them logs in to show the
//! fill is real.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::*;

const BULK_ACCOUNTS: u32 = 100_000;
/// The bulk account that logs in after the fill.
const BULK_PROBE: &str = "bulk54321";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// A database for one case, and its configuration file.
struct Db {
    config: PathBuf,
    sqlite_path: Option<PathBuf>,
    pg: Option<PgDb>,
}

fn new_db(backend: Backend, dir: &Path, o: &Options, name: &str) -> Result<Db, String> {
    let config = dir.join(format!("{name}.toml"));
    let (url, sqlite_path, pg) = match backend {
        Backend::Sqlite => {
            let path = dir.join(name).join("db.sqlite");
            (format!("sqlite://{}", path.display()), Some(path), None)
        }
        Backend::Postgres => {
            let pg = PgDb::create(
                &o.postgres,
                &format!("loadbench_{}_{name}", std::process::id()),
            )?;
            (pg.url(), None, Some(pg))
        }
    };
    write_config(&config, &url)?;
    Ok(Db {
        config,
        sqlite_path,
        pg,
    })
}

/// Runs SQL on the case's database with the backend's command-line client.
fn sql(db: &Db, statement: &str) -> Result<String, String> {
    match (&db.sqlite_path, &db.pg) {
        (Some(path), _) => {
            let out = Command::new("sqlite3")
                .arg(path)
                .arg(statement)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run sqlite3: {e}"))?;
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                return Err(format!(
                    "sqlite3 {}: {}",
                    path.display(),
                    err.lines().next().unwrap_or("failed")
                ));
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
        (None, Some(pg)) => psql(&pg.url(), statement),
        (None, None) => Err("no database".into()),
    }
}

/// One argon2id PHC string of `PASSWORD` with the server's default cost, shared by
/// all bulk accounts.
fn bulk_hash() -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(19 * 1024, 2, 1, None).map_err(|e| e.to_string())?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"bulk-accounts-16").map_err(|e| e.to_string())?;
    argon
        .hash_password(PASSWORD.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Inserts the bulk accounts `@bulk0:localhost` … in one statement (one
/// transaction); how long it took.
fn fill(backend: Backend, db: &Db, hash: &str) -> Result<Duration, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let last = BULK_ACCOUNTS - 1;
    let select = format!("SELECT '@bulk' || i || ':localhost', '{hash}', {now}");
    let statement = match backend {
        Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
             INSERT INTO users (user_id, password_hash, created_ms) {select} FROM n;"
        ),
        Backend::Postgres => format!(
            "INSERT INTO users (user_id, password_hash, created_ms) {select} \
             FROM generate_series(0, {last}) AS i; ANALYZE users;"
        ),
    };
    let start = Instant::now();
    sql(db, &statement)?;
    let took = start.elapsed();
    let count = sql(db, "SELECT count(*) FROM users WHERE user_id LIKE '@bulk%'")?;
    if count != BULK_ACCOUNTS.to_string() {
        return Err(format!(
            "{}: {count} bulk accounts after the fill, not {BULK_ACCOUNTS}",
            backend.label()
        ));
    }
    Ok(took)
}

/// Starts the server on `db`, waits for its first answer, runs `then` on it and
/// stops it: (time to the printed address, time to the first answer).
fn time_start(
    procs: &mut Procs,
    bin: &Path,
    db: &Db,
    name: &str,
    then: impl FnOnce(SocketAddr) -> Result<(), String>,
) -> Result<(Duration, Duration), String> {
    let (pid, addr, listening) = procs.spawn_timed(
        server_cmd(bin, &db.config),
        &format!("server-{name}"),
        Duration::from_millis(1),
    )?;
    let polling = Instant::now();
    loop {
        match http_blocking(addr, "GET", "/_matrix/client/versions", "") {
            Ok((200, _)) => break,
            Ok((status, _)) if polling.elapsed() > Duration::from_secs(30) => {
                return Err(format!("server-{name}: /versions answered {status}"))
            }
            Err(e) if polling.elapsed() > Duration::from_secs(30) => {
                return Err(format!("server-{name}: no answer on {addr}: {e}"))
            }
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    let answered = listening + polling.elapsed();
    let then = then(addr);
    procs.stop(pid);
    then.map(|()| (listening, answered))
}

struct Case {
    backend: Backend,
    what: &'static str,
    starts: Vec<(Duration, Duration)>,
}

fn measure(
    backend: Backend,
    o: &Options,
    bin: &Path,
    dir: &Path,
    hash: &str,
    notes: &mut Vec<String>,
) -> Result<Vec<Case>, String> {
    let tag = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "pg",
    };
    eprintln!("  {}", backend.label());
    let mut procs = Procs::new(dir);
    let none = |_| Ok(());
    let mut new = Vec::new();
    for i in 0..o.runs {
        let db = new_db(backend, dir, o, &format!("{tag}new{i}"))?;
        new.push(time_start(
            &mut procs,
            bin,
            &db,
            &format!("{tag}-new-{i}"),
            none,
        )?);
    }
    let db = new_db(backend, dir, o, &format!("{tag}main"))?;
    // The first start creates the schema; not timed.
    time_start(&mut procs, bin, &db, &format!("{tag}-migrate"), none)?;
    let mut empty = Vec::new();
    for i in 0..o.runs {
        empty.push(time_start(
            &mut procs,
            bin,
            &db,
            &format!("{tag}-empty-{i}"),
            none,
        )?);
    }
    let took = fill(backend, &db, hash)?;
    notes.push(format!(
        "{}: {BULK_ACCOUNTS} accounts inserted in {:.2} s (one INSERT … SELECT).",
        backend.label(),
        took.as_secs_f64()
    ));
    let mut full = Vec::new();
    for i in 0..o.runs {
        let last = i + 1 == o.runs;
        let label = backend.label();
        let mut login_note = None;
        full.push(time_start(&mut procs, bin, &db, &format!("{tag}-full-{i}"), |addr| {
            if !last {
                return Ok(());
            }
            let body = json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": BULK_PROBE}, "password": PASSWORD}).to_string();
            let start = Instant::now();
            match http_blocking(addr, "POST", "/_matrix/client/v3/login", &body) {
                Ok((200, _)) => {
                    login_note = Some(format!(
                        "{label}: bulk account @{BULK_PROBE}:localhost logged in (200) in {:.1} ms.",
                        start.elapsed().as_secs_f64() * 1000.0
                    ));
                    Ok(())
                }
                Ok((status, body)) => Err(format!(
                    "{label}: bulk account {BULK_PROBE} could not log in: {status} {}",
                    body.trim()
                )),
                Err(e) => Err(format!("{label}: login of {BULK_PROBE}: {e}")),
            }
        })?);
        notes.extend(login_note);
    }
    drop(procs);
    Ok(vec![
        Case {
            backend,
            what: "new database (the start creates the schema)",
            starts: new,
        },
        Case {
            backend,
            what: "empty (schema present, no accounts)",
            starts: empty,
        },
        Case {
            backend,
            what: "100,000 accounts",
            starts: full,
        },
    ])
}

pub fn cold_start(o: &Options) -> Result<(), String> {
    Command::new("sqlite3")
        .arg("-version")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run sqlite3 (needed to fill the SQLite database): {e}"))?;
    PgDb::check_reachable(&o.postgres)?;
    let bin = build_server()?;
    let dir = TempDir::new("loadbench-cold")?;
    let hash = bulk_hash()?;
    eprintln!("loadbench --cold-start: {} start(s) per case", o.runs);
    let mut notes = Vec::new();
    let mut cases = measure(Backend::Sqlite, o, &bin, &dir.0, &hash, &mut notes)?;
    cases.extend(measure(
        Backend::Postgres,
        o,
        &bin,
        &dir.0,
        &hash,
        &mut notes,
    )?);

    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    println!(
        "\nCold start: from spawning the process to the printed address and to the first \
         answered GET /versions; medians of {} start(s).\n",
        o.runs
    );
    println!("| backend | database | to address printed | to first answer | each start (ms) |");
    println!("|---|---|---|---|---|");
    for c in &cases {
        let each: Vec<String> = c
            .starts
            .iter()
            .map(|(_, a)| format!("{:.0}", ms(a)))
            .collect();
        println!(
            "| {} | {} | {:.0} ms | {:.0} ms | {} |",
            c.backend.label(),
            c.what,
            median(c.starts.iter().map(|(l, _)| ms(l))),
            median(c.starts.iter().map(|(_, a)| ms(a))),
            each.join(", ")
        );
    }
    println!();
    for n in notes {
        println!("{n}");
    }
    Ok(())
}
