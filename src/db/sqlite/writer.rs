//! The one writer of this process, with group commit.
//!
//! SQLite takes one writer at a time, and what a small write costs is mostly its transaction:
//! taking the write lock and appending the commit to the WAL. So every write transaction of
//! this process is a job on one queue, served by one thread that owns its own connection: it
//! takes every job waiting (up to [`MAX_BATCH`]), runs them in one `BEGIN IMMEDIATE … COMMIT`,
//! and only then answers each. Under load, concurrent webhooks, fills and drafts share a
//! commit; alone, a job is its own batch and waits for nobody.
//!
//! What a caller sees is unchanged: its work is atomic (each job runs inside a `SAVEPOINT`, so
//! a job that fails is rolled back alone and the others still commit), runs after every job
//! queued before it (one thread, in order), and is durable before it is answered (the answer
//! waits for the batch's `COMMIT`; a commit that fails fails every job of the batch, none of
//! which then took effect). A job that panics is answered with an error and rolled back; the
//! writer carries on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::anyhow;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::{configure, map_error};
use crate::db::{DbError, DbResult};

/// The most jobs one transaction takes: enough to amortise a commit over a burst of webhooks,
/// few enough that the write lock is never held for long (a job is a handful of statements).
const MAX_BATCH: usize = 128;

/// One write transaction's work and where its answer goes.
trait Job: Send {
    /// Runs the work inside the batch's transaction; answers whether it succeeded.
    fn run(&mut self, tx: &Transaction<'_>) -> bool;
    /// Sends the answer: the work's own error if it failed, else `batch_failed` if the batch
    /// did not commit, else its value.
    fn answer(self: Box<Self>, batch_failed: Option<&DbError>);
}

struct Pending<T, F> {
    work: Option<F>,
    result: Option<DbResult<T>>,
    reply: oneshot::Sender<DbResult<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send,
    T: Send,
{
    fn run(&mut self, tx: &Transaction<'_>) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = match catch_unwind(AssertUnwindSafe(|| work(tx))) {
            Ok(result) => result.map_err(map_error),
            Err(_) => Err(DbError::Other(anyhow!("a SQLite write panicked"))),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, batch_failed: Option<&DbError>) {
        let out = match (self.result, batch_failed) {
            (Some(Err(err)), _) => Err(err),
            (_, Some(err)) => Err(same_kind(err)),
            (Some(Ok(value)), None) => Ok(value),
            (None, None) => Err(DbError::Other(anyhow!("a SQLite write never ran"))),
        };
        // The caller may have gone away (a client that disconnected); the work stands.
        let _ = self.reply.send(out);
    }
}

/// A batch's failure, told to each of its jobs.
fn same_kind(err: &DbError) -> DbError {
    match err {
        DbError::Conflict(what) => DbError::Conflict(what.clone()),
        DbError::Unavailable(e) => DbError::Unavailable(anyhow!("{e:#}")),
        DbError::Other(e) => DbError::Other(anyhow!("{e:#}")),
    }
}

/// The queue's sending end; cloned with [`super::SqliteDb`]. The thread stops when the last
/// clone is dropped.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    closed: Arc<AtomicBool>,
}

impl Writer {
    /// Opens the writer's connection (the file must exist) and starts its thread.
    pub(super) fn start(path: &Path, busy_timeout: Duration) -> anyhow::Result<Self> {
        let mut conn = Connection::open(path)?;
        configure(&mut conn, busy_timeout)?;
        // Every write statement of the process runs here: keep them all prepared (rusqlite's
        // default of 16 would re-prepare in turn under a mixed load).
        conn.set_prepared_statement_cache_capacity(256);
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let closed = Arc::new(AtomicBool::new(false));
        let stop = closed.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || serve(conn, queue, stop))?;
        Ok(Self { jobs, closed })
    }

    /// Runs `work` in a write transaction (shared with whatever else is queued); answers once
    /// it is committed.
    pub(super) async fn run<T, F>(&self, work: F) -> DbResult<T>
    where
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(Pending {
                work: Some(work),
                result: None,
                reply,
            }))
            .map_err(|_| DbError::Unavailable(anyhow!("the SQLite writer has stopped")))?;
        answer
            .await
            .map_err(|_| DbError::Other(anyhow!("the SQLite writer dropped a write")))?
    }

    /// Refuses every write from now on (the pool is closing).
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

fn serve(mut conn: Connection, queue: mpsc::Receiver<Box<dyn Job>>, closed: Arc<AtomicBool>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if closed.load(Ordering::SeqCst) {
            let err = DbError::Unavailable(anyhow!("the SQLite database is closed"));
            batch.into_iter().for_each(|job| job.answer(Some(&err)));
            continue;
        }
        match run_batch(&mut conn, &mut batch) {
            Ok(()) => batch.into_iter().for_each(|job| job.answer(None)),
            Err(err) => {
                let err = map_error(err);
                batch.into_iter().for_each(|job| job.answer(Some(&err)));
            }
        }
    }
}

/// Runs the jobs in one transaction, each inside its own savepoint; an error here (the lock,
/// a savepoint, the commit) is the whole batch's, and dropping the transaction rolls it back.
fn run_batch(conn: &mut Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        tx.execute_batch("SAVEPOINT job")?;
        if job.run(&tx) {
            tx.execute_batch("RELEASE job")?;
        } else {
            tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            .unwrap();
        let writer = Writer::start(&path, Duration::from_secs(5)).unwrap();
        (dir, writer)
    }

    fn insert(k: i64) -> impl FnOnce(&Transaction<'_>) -> rusqlite::Result<usize> + Send {
        move |tx| tx.execute("INSERT INTO t (k) VALUES (?1)", [k])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_jobs_each_commit_and_a_failing_one_fails_alone() {
        let (dir, writer) = writer().await;
        // 1 000 inserts at once, every tenth a duplicate key of an earlier one.
        let jobs = (0..1000i64).map(|i| {
            let writer = writer.clone();
            let key = if i % 10 == 9 { i - 1 } else { i };
            tokio::spawn(async move { (key, writer.run(insert(key)).await) })
        });
        let results = futures::future::join_all(jobs).await;
        let mut ok = 0;
        for result in results {
            match result.unwrap() {
                (_, Ok(1)) => ok += 1,
                (_, Err(DbError::Conflict(_))) => {}
                (key, other) => panic!("{key}: {other:?}"),
            }
        }
        assert_eq!(ok, 900);
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            rows, 900,
            "every answered insert is committed, no failed one"
        );
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_writer_carries_on() {
        let (_dir, writer) = writer().await;
        let panicked = writer
            .run(|tx| -> rusqlite::Result<()> {
                tx.execute("INSERT INTO t (k) VALUES (1)", [])?;
                panic!("a bug")
            })
            .await;
        assert!(matches!(panicked, Err(DbError::Other(_))), "{panicked:?}");
        // Its insert was rolled back with its savepoint.
        assert_eq!(writer.run(insert(1)).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_closed_writer_refuses_writes() {
        let (_dir, writer) = writer().await;
        writer.close();
        let refused = writer.run(insert(1)).await;
        assert!(
            matches!(refused, Err(DbError::Unavailable(_))),
            "{refused:?}"
        );
    }
}
