//! Storage: everything the server knows lives in one SQL database, SQLite (embedded,
//! the default) or PostgreSQL (several server processes behind a load balancer).
//!
//! One implementation serves both: the queries are portable SQL run through sqlx's
//! `Any` driver, and the schema is one migration set. What really differs between
//! the databases is here: SQLite's durability pragmas, and how writes commit
//! (`writer`: batched behind one writer on SQLite, a transaction each on
//! PostgreSQL). Every method commits before returning, so a success the server
//! acknowledges is on disk.

mod account_threepid;
mod auth;
mod cache;
mod homeserver_outbox;
mod oauth;
mod oauth_device;
mod oauth_registration;
mod sql;
mod sqlite_reads;
mod threepid;
mod users;
mod writer;

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

use sql::{BoxFuture, Conn, Statement};
use writer::Writer;

pub use account_threepid::PendingThreepid;
pub use auth::UiaSession;
pub use homeserver_outbox::HomeserverPart;
pub use oauth::{Authorization, CodeExchange};
pub use oauth_device::{DeviceGrant, DevicePoll};
pub use oauth_registration::PendingRegistration;
pub use threepid::{NewValidation, Submitted};
pub use users::{Device, LogoutDevices, NewSession, OAuthGrant, Refreshed, TokenOwner, User};

#[derive(Debug)]
pub enum StoreError {
    /// A unique key is taken (a user ID, a 3PID).
    Conflict,
    Db(sqlx::Error),
    /// The write ran, but the batch it was committed with failed (or never ran).
    Commit(String),
    /// SQLite's writer connection failed.
    Sqlite(String),
    /// A row did not hold what the query expected.
    Row(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e.as_database_error() {
            Some(d) if d.is_unique_violation() => StoreError::Conflict,
            _ => StoreError::Db(e),
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Conflict => write!(f, "already exists"),
            StoreError::Db(e) => write!(f, "database error: {e}"),
            StoreError::Commit(e) => write!(f, "database write failed: {e}"),
            StoreError::Sqlite(e) => write!(f, "database error: {e}"),
            StoreError::Row(e) => write!(f, "unexpected row: {e}"),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    cache: std::sync::Arc<cache::ReadCache>,
    /// SQLite only: point reads on the calling thread (see `sqlite_reads`).
    reads: Option<std::sync::Arc<sqlite_reads::SqliteReads>>,
    /// SQLite only: the one writer that batches commits (see `writer`).
    writer: Option<std::sync::Arc<Writer>>,
}

/// Every SQLite connection that may write (the pool's, the writer's): WAL lets
/// readers run beside the writer; FULL syncs the WAL at every commit, so an
/// acknowledged write survives a crash or power loss; the busy timeout lets a
/// command-line process and the server take turns at the write lock.
const SQLITE_PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;";

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Connects (creating an SQLite file and its directory if needed) and applies
    /// pending migrations.
    pub async fn open(
        url: &str,
        auth_cache: std::time::Duration,
    ) -> std::result::Result<Store, String> {
        sqlx::any::install_default_drivers();
        let sqlite_path = url.strip_prefix("sqlite://").map(str::to_string);
        let (backend, url) = if let Some(path) = url.strip_prefix("sqlite://") {
            if let Some(dir) = std::path::Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("database: cannot create {}: {e}", dir.display()))?;
            }
            let sep = if url.contains('?') { '&' } else { '?' };
            (Backend::Sqlite, format!("{url}{sep}mode=rwc"))
        } else {
            (Backend::Postgres, url.to_string())
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(SQLITE_PRAGMAS).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| format!("database: cannot connect to {}: {e}", redact(&url)))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| format!("database: migration failed: {e}"))?;
        let reads = sqlite_path.map(|p| std::sync::Arc::new(sqlite_reads::SqliteReads::new(p)));
        let writer = match &reads {
            Some(r) => Some(std::sync::Arc::new(Writer::start(
                r.path(),
                crate::metrics::record_write_batch,
                r.commit_counter(),
            )?)),
            None => None,
        };
        Ok(Store {
            pool,
            backend,
            cache: std::sync::Arc::new(cache::ReadCache::new(auth_cache)),
            reads,
            writer,
        })
    }

    /// Runs `job` as one atomic write and returns its result once the write is
    /// durable. An `Err` from the job undoes everything it wrote; so does a
    /// failed commit, which fails the job too. Jobs must take their inputs
    /// owned (they may run on the writer's thread) and write nothing outside the
    /// database: the cache is the caller's business, after this returns.
    async fn write<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        self.write_job(false, job).await
    }

    async fn write_job<T, F>(&self, one_statement: bool, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        match &self.writer {
            Some(writer) => writer.write(job).await,
            // A lone statement commits by itself: no BEGIN and COMMIT round trips.
            None if one_statement => {
                let mut conn = self.pool.acquire().await?;
                job(&mut sql::Sqlx(&mut conn)).await
            }
            None => writer::write_alone(&self.pool, job).await,
        }
    }

    /// Ends SQLite read snapshots nobody renewed (see `sqlite_reads`).
    pub fn end_old_snapshots(&self) {
        if let Some(reads) = &self.reads {
            reads.end_old_snapshots();
        }
    }

    /// The pool's open connections and how many of them are idle (for the
    /// metrics).
    pub fn pool_connections(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// One statement as a write of its own; the number of rows it changed.
    async fn execute(&self, statement: Statement) -> Result<u64> {
        self.write_job(true, move |c| Box::pin(statement.execute(c)))
            .await
    }
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
            Some(colon) => format!("{}:***{}", &url[..s + 3 + colon], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// A store on a fresh SQLite file, removed with the returned guard.
#[cfg(test)]
pub(crate) async fn scratch_store() -> (Store, RemoveOnDrop) {
    let dir = std::env::temp_dir().join(format!(
        "mas-store-test-{}-{}",
        std::process::id(),
        crate::crypto::new_id()
    ));
    let url = format!("sqlite://{}/db.sqlite", dir.display());
    let store = Store::open(&url, std::time::Duration::ZERO).await.unwrap();
    (store, RemoveOnDrop(dir))
}

#[cfg(test)]
pub(crate) struct RemoveOnDrop(std::path::PathBuf);

#[cfg(test)]
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
