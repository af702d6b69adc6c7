//! Point reads on SQLite without leaving the calling thread.
//!
//! sqlx's SQLite driver runs every connection on a thread of its own, so each
//! query is two thread hand-offs; for a one-row index lookup those cost several
//! times the lookup itself (`/register/available` ran at 27% of a bare server). A
//! read-only rusqlite connection answers the same SQL in microseconds on the
//! caller's thread. WAL mode lets these readers run beside the writer and see
//! every committed write. Any error falls back to the sqlx path (`None`).

use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::users::User;

pub struct SqliteReads {
    path: String,
    idle: Mutex<Vec<Connection>>,
}

/// Idle connections kept; more readers than this open and close their own.
const MAX_IDLE: usize = 8;

impl SqliteReads {
    pub fn new(path: String) -> Self {
        SqliteReads {
            path: path.split('?').next().unwrap_or(&path).to_string(),
            idle: Mutex::new(Vec::new()),
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
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .ok()?;
                // A reader waits briefly for a checkpoint, then gives way to sqlx.
                c.busy_timeout(std::time::Duration::from_millis(50)).ok()?;
                c
            }
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
