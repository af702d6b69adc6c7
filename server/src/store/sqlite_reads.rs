//! Point reads on SQLite without leaving the calling thread.
//!
//! sqlx's SQLite driver runs every connection on a thread of its own, so each
//! query is two thread hand-offs; for a one-row index lookup those cost several
//! times the lookup itself (`/register/available` ran at 27% of a bare server). A
//! read-only rusqlite connection answers the same SQL in microseconds on the
//! caller's thread. WAL mode lets these readers run beside the writer and see
//! every committed write. Any error falls back to the sqlx path (`None`).
//!
//! Each such read is its own read transaction, and beginning and ending one
//! (SQLite's locks on the WAL index, `fcntl` calls) costs several times the
//! index probe. [`SqliteReads::exists_recent`], for answers that are advisory
//! anyway (`/register/available`: `/register` checks again as it writes),
//! reads from a snapshot kept open for at most [`SNAPSHOT_AGE`] and renewed
//! as soon as this process commits anything (the writer counts its commits):
//! it sees every write of this process at once, and another process's (the
//! CLI's) within a millisecond.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::users::User;

pub struct SqliteReads {
    path: String,
    idle: Mutex<Vec<Connection>>,
    /// Connections holding a snapshot, one per slot; a caller takes the
    /// first slot no other holds (`try_lock`).
    snapshots: Vec<Mutex<Option<Snapshot>>>,
    /// The writer's commits so far (see `writer`).
    commits: Arc<AtomicU64>,
    /// [`SNAPSHOT_AGE`], but in tests.
    snapshot_age: Duration,
}

/// A reader connection and the read transaction it holds open, if any: when
/// it began, and the writer's commit count then.
struct Snapshot {
    conn: Connection,
    open: Option<(Instant, u64)>,
}

/// Idle connections kept; more readers than this open and close their own.
const MAX_IDLE: usize = 8;

/// How long a snapshot of [`SqliteReads::exists_recent`] serves, at most:
/// how far behind another process's commits its answers may be.
pub const SNAPSHOT_AGE: Duration = Duration::from_millis(1);

/// Snapshot slots: about one per worker thread, so callers rarely meet.
const SNAPSHOT_SLOTS: usize = 4;

impl SqliteReads {
    pub fn new(path: String) -> Self {
        SqliteReads {
            path: path.split('?').next().unwrap_or(&path).to_string(),
            idle: Mutex::new(Vec::new()),
            snapshots: (0..SNAPSHOT_SLOTS).map(|_| Mutex::new(None)).collect(),
            commits: Arc::new(AtomicU64::new(0)),
            snapshot_age: SNAPSHOT_AGE,
        }
    }

    /// The counter the writer bumps after each commit.
    pub fn commit_counter(&self) -> Arc<AtomicU64> {
        self.commits.clone()
    }

    fn open(&self) -> Option<Connection> {
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        // A reader waits briefly for a checkpoint, then gives way to sqlx.
        c.busy_timeout(Duration::from_millis(50)).ok()?;
        Some(c)
    }

    /// Whether `sql` (selecting by `$1`) finds a row, read from a snapshot at
    /// most [`SNAPSHOT_AGE`] old that holds every commit of this process.
    /// `None` (the caller reads otherwise) when every slot is busy or on any
    /// error.
    pub fn exists_recent(&self, sql: &str, key: &str) -> Option<bool> {
        let mut slot = self.snapshots.iter().find_map(|s| s.try_lock().ok())?;
        // Read before the snapshot begins: a commit after this renews it.
        let commits = self.commits.load(Ordering::Acquire);
        if slot.is_none() {
            *slot = Some(Snapshot {
                conn: self.open()?,
                open: None,
            });
        }
        let snapshot = slot.as_mut()?;
        let answer = (|| {
            if let Some((began, seen)) = snapshot.open {
                if seen != commits || began.elapsed() > self.snapshot_age {
                    snapshot.open = None;
                    snapshot.conn.execute_batch("COMMIT")?;
                }
            }
            if snapshot.open.is_none() {
                // The snapshot itself begins with the first read.
                snapshot.conn.execute_batch("BEGIN")?;
                snapshot.open = Some((Instant::now(), commits));
            }
            snapshot.conn.prepare_cached(sql)?.exists([key])
        })();
        if answer.is_err() {
            *slot = None;
        }
        answer.ok()
    }

    /// Ends the snapshots older than [`SNAPSHOT_AGE`] that no caller renewed
    /// (an idle server must not hold back the WAL's checkpoints).
    pub fn end_old_snapshots(&self) {
        for slot in &self.snapshots {
            let Ok(mut slot) = slot.try_lock() else {
                continue;
            };
            let old = slot
                .as_ref()
                .and_then(|s| s.open)
                .is_some_and(|(began, _)| began.elapsed() > self.snapshot_age);
            if old {
                *slot = None;
            }
        }
    }

    /// The database file.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<T> {
        let conn = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => self.open()?,
        };
        let result = f(&conn).ok();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        result
    }

    /// Whether `sql` (selecting by `$1`) finds a row.
    pub fn exists(&self, sql: &str, key: &str) -> Option<bool> {
        self.with(|c| c.prepare_cached(sql)?.exists([key]))
    }

    /// The user with this ID (`sql` selects the user columns by `$1`).
    pub fn user(&self, sql: &str, user_id: &str) -> Option<Option<User>> {
        self.with(|c| {
            c.prepare_cached(sql)?
                .query_row([user_id], |r| {
                    Ok(User {
                        user_id: r.get(0)?,
                        password_hash: r.get(1)?,
                        is_guest: r.get::<_, i64>(2)? != 0,
                        is_admin: r.get::<_, i64>(3)? != 0,
                        deactivated: r.get::<_, i64>(4)? != 0,
                        locked: r.get::<_, i64>(5)? != 0,
                        suspended: r.get::<_, i64>(6)? != 0,
                        created_ms: r.get(7)?,
                    })
                })
                .optional()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scratch_store;

    const SQL: &str = "SELECT 1 FROM users WHERE user_id = $1";

    /// A snapshot serves until its age runs out or this process commits:
    /// another process's row shows only then, this process's at once.
    #[tokio::test]
    async fn a_snapshot_is_renewed_by_a_commit_here_or_by_age() {
        let (store, _dir) = scratch_store().await;
        let path = store.reads.as_ref().unwrap().path().to_string();
        let mut reads = SqliteReads::new(path.clone());
        reads.snapshot_age = Duration::from_secs(3600);
        let other = Connection::open(&path).unwrap();
        let insert = |id: &str| {
            other
                .execute(
                    "INSERT INTO users (user_id, created_ms) VALUES (?1, 0)",
                    [id],
                )
                .unwrap()
        };

        assert_eq!(reads.exists_recent(SQL, "@a:x"), Some(false));
        insert("@a:x");
        // The snapshot is older than that row, and still young.
        assert_eq!(reads.exists_recent(SQL, "@a:x"), Some(false));
        // A commit of this process's writer renews it.
        reads.commits.fetch_add(1, Ordering::Release);
        assert_eq!(reads.exists_recent(SQL, "@a:x"), Some(true));

        // So does its age.
        insert("@b:x");
        assert_eq!(reads.exists_recent(SQL, "@b:x"), Some(false));
        reads.snapshot_age = Duration::ZERO;
        assert_eq!(reads.exists_recent(SQL, "@b:x"), Some(true));
        // And an old one is ended for an idle server.
        reads.end_old_snapshots();
        assert!(reads.snapshots[0].lock().unwrap().is_none());
    }
}
