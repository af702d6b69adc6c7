//! Durable writes that share their commit (group commit).
//!
//! A write is answered only once it is on disk: on SQLite that is a WAL `fsync`
//! per commit (`synchronous = FULL`), which costs far more than the statements
//! it makes durable. So on SQLite every write is a *job* handed to one writer
//! thread: it takes every job waiting at that moment, runs them in one
//! transaction — each inside its own savepoint, so a job that fails undoes only
//! its own changes — commits once, and only then answers all of them. Under load
//! a batch grows to the number of requests waiting, and the `fsync` is shared;
//! alone, a job is a batch of one and waits for nobody. One writer also means
//! writers never queue on SQLite's lock inside the process.
//!
//! The writer thread owns a rusqlite connection and runs the jobs on it
//! synchronously: the batch is one serial chain of statements, and through
//! sqlx's SQLite driver each of them would be a hand-off to another thread and
//! back (measured: about 100 µs each under load, which capped a batch at a few
//! thousand writes a second). A job's future is polled once: on this
//! connection every statement is ready at once.
//!
//! PostgreSQL groups the WAL flushes of concurrent commits itself, and its
//! connections write in parallel, so there each job is a transaction of its own
//! on a pooled sqlx connection. The job code is the same for both (`sql`).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::FutureExt;
use sqlx::AnyPool;
use tokio::sync::oneshot;

use super::sql::{self, BoxFuture, Conn};
use super::{Result, StoreError};

/// A batch holds at most this many jobs, so one commit's answers are not held
/// back indefinitely behind a queue that keeps refilling.
const MAX_BATCH: usize = 256;

/// What a job left after it ran: whether its changes stay, and how to answer
/// its caller once the batch's commit has succeeded or failed.
struct Ran {
    kept: bool,
    answer: Answer,
}

type Answer = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

type Job = Box<dyn for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Ran> + Send>;

/// The SQLite writer: the sending side of its queue.
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Opens the writer's connection to the database file and starts its
    /// thread, which ends when the last `Writer` handle is dropped.
    /// `on_batch` hears the size of every batch (the metrics).
    /// `commits` counts the commits (the readers' snapshots renew on it).
    pub fn start(
        path: &str,
        on_batch: fn(usize),
        commits: Arc<AtomicU64>,
    ) -> std::result::Result<Writer, String> {
        // Set up as the pool's connections. (A checkpointer thread of its own,
        // to keep the WAL copy off the writer's path, measured no faster, and
        // racing the writer it never let the WAL start over.)
        let conn = rusqlite::Connection::open(path)
            .and_then(|c| {
                c.execute_batch(super::SQLITE_PRAGMAS)?;
                Ok(c)
            })
            .map_err(|e| format!("database: cannot open {path} for writing: {e}"))?;
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, queue, on_batch, commits))
            .map_err(|e| format!("database: cannot start the writer: {e}"))?;
        Ok(Writer { jobs })
    }

    /// Runs `job` in the next batch; returns its result after the commit.
    pub async fn write<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                // A panicking job must not take the writer (and every later
                // write) with it: it counts as failed, and its caller hears so.
                let result = match AssertUnwindSafe(async move { job(conn).await })
                    .catch_unwind()
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(StoreError::Commit("a write job panicked".into())),
                };
                Ran {
                    kept: result.is_ok(),
                    answer: Box::new(move |commit| {
                        let _ = answer.send(match (result, commit) {
                            (Err(e), _) => Err(e),
                            (Ok(v), Ok(())) => Ok(v),
                            (Ok(_), Err(e)) => Err(StoreError::Commit(e)),
                        });
                    }),
                }
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Commit("the writer has stopped".into()))?;
        answered
            .await
            .map_err(|_| StoreError::Commit("its write batch failed before it ran".into()))?
    }
}

/// After this long without a write, the writer gives its page cache back.
const IDLE: Duration = Duration::from_secs(2);

fn run(
    mut conn: rusqlite::Connection,
    queue: mpsc::Receiver<Job>,
    on_batch: fn(usize),
    commits: Arc<AtomicU64>,
) {
    let mut batch = Vec::new();
    let mut shrunk = true;
    loop {
        let first = match queue.recv_timeout(IDLE) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // An idle server need not hold the pages it wrote last.
                if !shrunk {
                    let _ = conn.execute_batch("PRAGMA shrink_memory");
                    shrunk = true;
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        shrunk = false;
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        on_batch(batch.len());
        let size = batch.len();
        let (commit, answers) = run_batch(&mut conn, std::mem::take(&mut batch));
        match &commit {
            // Counted before anyone hears of it.
            Ok(()) => {
                commits.fetch_add(1, Ordering::Release);
            }
            Err(e) => tracing::error!(error = %e, size, "a write batch failed"),
        }
        for answer in answers {
            answer(commit.clone());
        }
    }
}

/// Runs one batch in one transaction; the commit's outcome and every job's
/// answer, to be given after it. A job not answered (its batch could not
/// start, or it waited on something other than the database) is dropped, and
/// its caller hears that the write did not happen.
fn run_batch(
    conn: &mut rusqlite::Connection,
    batch: Vec<Job>,
) -> (std::result::Result<(), String>, Vec<Answer>) {
    let mut answers = Vec::with_capacity(batch.len());
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        return (Err(format!("cannot begin: {e}")), answers);
    }
    let mut failed = None;
    for job in batch {
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            failed = Some(e.to_string());
            break;
        }
        let ran = ready(job(&mut sql::Sqlite(conn)));
        let end = match &ran {
            Some(Ran { kept: true, .. }) => "RELEASE job",
            _ => "ROLLBACK TO job; RELEASE job",
        };
        if let Some(ran) = ran {
            answers.push(ran.answer);
        }
        if let Err(e) = conn.execute_batch(end) {
            failed = Some(e.to_string());
            break;
        }
    }
    let commit = match failed {
        Some(e) => Err(e),
        None => conn.execute_batch("COMMIT").map_err(|e| e.to_string()),
    };
    if commit.is_err() {
        // Whatever state the transaction is in, nothing of it stays.
        let _ = conn.execute_batch("ROLLBACK");
    }
    (commit, answers)
}

/// The output of a future that finishes without waiting, as every job on the
/// writer's connection does; `None` for one that would wait.
pub(super) fn ready<T>(mut future: BoxFuture<'_, T>) -> Option<T> {
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(v) => Some(v),
        Poll::Pending => {
            tracing::error!("a write job waited on something other than the database");
            None
        }
    }
}

/// PostgreSQL: the job in a transaction of its own.
pub async fn write_alone<T, F>(pool: &AnyPool, job: F) -> Result<T>
where
    F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T>>,
{
    let mut tx = pool.begin().await?;
    let value = job(&mut sql::Sqlx(&mut tx)).await?;
    tx.commit().await?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::Writer;
    use crate::store::sql::query;
    use crate::store::{scratch_store, StoreError};

    /// Batches the test's writer ran (a `fn` pointer cannot capture a counter).
    static BATCHES: AtomicUsize = AtomicUsize::new(0);

    async fn tokens(store: &crate::store::Store) -> Vec<String> {
        store
            .registration_tokens()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.token)
            .collect()
    }

    #[tokio::test]
    async fn writes_waiting_together_share_a_commit_and_fail_alone() {
        let (mut store, _dir) = scratch_store().await;
        let path = store.reads.as_ref().expect("SQLite").path().to_owned();
        store.writer = Some(Arc::new(
            Writer::start(
                &path,
                |_| {
                    BATCHES.fetch_add(1, Ordering::Relaxed);
                },
                Arc::default(),
            )
            .unwrap(),
        ));
        // Another process holds SQLite's write lock while the writes arrive,
        // as a command-line process may: the writer waits for it (busy
        // timeout), and whatever queued meanwhile goes in the next batch.
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            holder.execute_batch("COMMIT").unwrap();
        });
        // 48 writes queued at once: every third one takes a name already
        // taken, one writes and then fails, one panics.
        let writes = (0..48).map(|i| {
            let store = store.clone();
            async move {
                match i {
                    10 => {
                        store
                            .write(|c| {
                                Box::pin(async move {
                                    query("INSERT INTO registration_tokens (token, created_ms) VALUES ('half', 0)")
                                        .execute(&mut *c)
                                        .await?;
                                    Err::<(), _>(StoreError::Commit("failed after writing".into()))
                                })
                            })
                            .await
                    }
                    11 => store.write(|_| -> super::BoxFuture<'_, _> { panic!("a bug in a job") }).await,
                    _ => {
                        let name = if i % 3 == 2 { format!("t{}", i - 1) } else { format!("t{i}") };
                        store.create_registration_token(&name, None, None).await
                    }
                }
            }
        });
        let results = futures_util::future::join_all(writes).await;
        release.join().unwrap();
        // The first batch took what had arrived when the writer woke (at least
        // one write); it waited on the lock while the rest queued behind it.
        let batches = BATCHES.load(Ordering::Relaxed);
        assert!((1..=2).contains(&batches), "48 writes, {batches} commits");
        for (i, r) in results.iter().enumerate() {
            match i {
                10 | 11 => assert!(r.is_err(), "{i}: {r:?}"),
                _ if i % 3 == 2 => assert!(matches!(r, Err(StoreError::Conflict)), "{i}: {r:?}"),
                _ => assert!(r.is_ok(), "{i}: {r:?}"),
            }
        }
        let mut expected: Vec<String> = (0..48)
            .filter(|i| i % 3 != 2 && *i != 10 && *i != 11)
            .map(|i| format!("t{i}"))
            .collect();
        expected.sort();
        assert_eq!(tokens(&store).await, expected);
        // The writer outlived the panic.
        store
            .create_registration_token("after", None, None)
            .await
            .unwrap();
        assert!(tokens(&store).await.contains(&"after".to_string()));
    }
}
