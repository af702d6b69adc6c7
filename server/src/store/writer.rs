//! Durable writes that share their commit (group commit).
//!
//! A write is answered only once it is on disk: on SQLite that is a WAL `fsync`
//! per commit (`synchronous = FULL`), which costs far more than the statements
//! it makes durable. So on SQLite every write is a *job* handed to one writer
//! task: it takes every job waiting at that moment, runs them in one
//! transaction — each inside its own savepoint, so a job that fails undoes only
//! its own changes — commits once, and only then answers all of them. Under load
//! a batch grows to the number of requests waiting, and the `fsync` is shared;
//! alone, a job is a batch of one and waits for nobody. One writer also means
//! writers never queue on SQLite's lock inside the process.
//!
//! PostgreSQL groups the WAL flushes of concurrent commits itself, and its
//! connections write in parallel, so there each job is a transaction of its own
//! on a pooled connection. The job code is the same for both.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use futures_util::FutureExt;
use sqlx::{AnyConnection, AnyPool, Executor};
use tokio::sync::{mpsc, oneshot};

use super::{Result, StoreError};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A batch holds at most this many jobs, so one commit's answers are not held
/// back indefinitely behind a queue that keeps refilling.
const MAX_BATCH: usize = 256;

/// What a job left after it ran: whether its changes stay, and how to answer
/// its caller once the batch's commit has succeeded or failed.
struct Ran {
    kept: bool,
    answer: Box<dyn FnOnce(std::result::Result<(), String>) + Send>,
}

struct Job {
    /// The job is one statement: SQLite undoes a failed statement by itself
    /// and keeps the transaction, so it needs no savepoint of its own.
    one_statement: bool,
    run: RunJob,
}

type RunJob = Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Ran> + Send>;

/// The SQLite writer: the sending side of its queue.
pub struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Starts the writer task on the current runtime; it ends when the last
    /// `Writer` handle is dropped. `on_batch` hears the size of every batch
    /// (the metrics).
    pub fn start(pool: AnyPool, on_batch: fn(usize)) -> Writer {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, queue, on_batch));
        Writer { jobs }
    }

    /// Runs `job` in the next batch; returns its result after the commit.
    /// `one_statement`: the job runs exactly one statement.
    pub async fn write<T, F>(&self, one_statement: bool, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let run: RunJob = Box::new(move |conn| {
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
            .send(Job { one_statement, run })
            .map_err(|_| StoreError::Commit("the writer has stopped".into()))?;
        answered
            .await
            .map_err(|_| StoreError::Commit("its write batch failed before it ran".into()))?
    }
}

async fn run(pool: AnyPool, mut queue: mpsc::UnboundedReceiver<Job>, on_batch: fn(usize)) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let size = batch.len();
        on_batch(size);
        let (commit, answers) = match pool.acquire().await {
            Ok(mut conn) => run_batch(&mut conn, std::mem::take(&mut batch)).await,
            // Dropping the jobs drops their answer channels: their callers
            // hear that the write did not happen.
            Err(e) => (Err(format!("no database connection: {e}")), {
                batch.clear();
                Vec::new()
            }),
        };
        if let Err(e) = &commit {
            tracing::error!(error = %e, size, "a write batch failed");
        }
        for answer in answers {
            answer(commit.clone());
        }
    }
}

type Answer = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

/// Runs one batch in one transaction; the commit's outcome and every job's
/// answer, to be given after it.
///
/// Every statement is a hand-off to sqlx's SQLite thread, and the batch is one
/// serial chain of them, so the savepoint bookkeeping rides along with the
/// statements next to it: one-statement jobs run first without savepoints,
/// and each savepoint's end is sent together with the next one's start.
async fn run_batch(
    conn: &mut AnyConnection,
    batch: Vec<Job>,
) -> (std::result::Result<(), String>, Vec<Answer>) {
    let mut answers = Vec::with_capacity(batch.len());
    if let Err(e) = conn.execute("BEGIN IMMEDIATE").await {
        // The jobs have not run; dropping them tells their callers.
        return (Err(format!("cannot begin: {e}")), answers);
    }
    let (single, multiple): (Vec<Job>, Vec<Job>) =
        batch.into_iter().partition(|job| job.one_statement);
    for job in single {
        answers.push((job.run)(conn).await.answer);
    }
    // How the previous savepoint ends: nothing open, kept, or undone.
    let mut open = Savepoint::None;
    let mut failed = None;
    for job in multiple {
        if failed.is_some() {
            // After a broken savepoint nothing more runs; dropping the job
            // drops its answer channel, which its caller reads as a failure.
            continue;
        }
        if let Err(e) = conn.execute(open.then_start()).await {
            failed = Some(e.to_string());
            continue;
        }
        let ran = (job.run)(conn).await;
        open = if ran.kept {
            Savepoint::Kept
        } else {
            Savepoint::Undone
        };
        answers.push(ran.answer);
    }
    let commit = match failed {
        Some(e) => Err(e),
        None => conn
            .execute(open.then_commit())
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
    };
    if commit.is_err() {
        // Whatever state the transaction is in, nothing of it stays.
        let _ = conn.execute("ROLLBACK").await;
    }
    (commit, answers)
}

/// The savepoint of the job that ran last, if any, and how it ends.
#[derive(Clone, Copy)]
enum Savepoint {
    None,
    Kept,
    Undone,
}

impl Savepoint {
    /// Ends this savepoint and opens the next job's.
    fn then_start(self) -> &'static str {
        match self {
            Savepoint::None => "SAVEPOINT job",
            Savepoint::Kept => "RELEASE job; SAVEPOINT job",
            Savepoint::Undone => "ROLLBACK TO job; RELEASE job; SAVEPOINT job",
        }
    }

    /// Ends this savepoint and commits the batch.
    fn then_commit(self) -> &'static str {
        match self {
            Savepoint::None => "COMMIT",
            Savepoint::Kept => "RELEASE job; COMMIT",
            Savepoint::Undone => "ROLLBACK TO job; RELEASE job; COMMIT",
        }
    }
}

/// PostgreSQL: the job in a transaction of its own.
pub async fn write_alone<T, F>(pool: &AnyPool, job: F) -> Result<T>
where
    F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T>>,
{
    let mut tx = pool.begin().await?;
    let value = job(&mut tx).await?;
    tx.commit().await?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::Writer;
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
    async fn writes_waiting_together_share_one_commit_and_fail_alone() {
        let (mut store, _dir) = scratch_store().await;
        store.writer = Some(Arc::new(Writer::start(store.pool.clone(), |_| {
            BATCHES.fetch_add(1, Ordering::Relaxed);
        })));
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
                                    sqlx::query("INSERT INTO registration_tokens (token, created_ms) VALUES ('half', 0)")
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
        assert_eq!(BATCHES.load(Ordering::Relaxed), 1, "one batch, one commit");
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
