//! The embedded backend: one SQLite file in WAL mode behind a deadpool pool.
//!
//! Every read runs on a pooled connection inside `interact`, off the async threads. Write
//! transactions go to the one writer of the process ([`writer`]), which runs whatever is queued
//! in one `BEGIN IMMEDIATE` transaction (group commit): writers of this process queue there
//! instead of colliding on the file lock, and another process on the same file serialises
//! with it on SQLite's write lock instead of failing to upgrade a read lock.

mod analytics;
mod cache;
mod drafts;
mod inbox;
mod stores;
mod usage;
mod writer;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use deadpool_sqlite::{Hook, HookError, Manager, Pool, Runtime};
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use super::{Claim, Database, DbError, DbResult, NewDelivery, PoolStats, Scope};

/// Numbered migrations, applied in order, each once. Never edit one that has landed.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "001_foundation",
        include_str!("../../../migrations/sqlite/001_foundation.sql"),
    ),
    (
        "002_webhooks",
        include_str!("../../../migrations/sqlite/002_webhooks.sql"),
    ),
    (
        "003_booking",
        include_str!("../../../migrations/sqlite/003_booking.sql"),
    ),
    (
        "004_analytics",
        include_str!("../../../migrations/sqlite/004_analytics.sql"),
    ),
    (
        "005_invalidation_feed",
        include_str!("../../../migrations/sqlite/005_invalidation_feed.sql"),
    ),
    (
        "006_declared_resources",
        include_str!("../../../migrations/sqlite/006_declared_resources.sql"),
    ),
    (
        "007_hardening",
        include_str!("../../../migrations/sqlite/007_hardening.sql"),
    ),
    (
        "008_browser",
        include_str!("../../../migrations/sqlite/008_browser.sql"),
    ),
    (
        "009_feed_leases",
        include_str!("../../../migrations/sqlite/009_feed_leases.sql"),
    ),
];

#[derive(Clone)]
pub struct SqliteDb {
    pool: Pool,
    path: std::path::PathBuf,
    /// SQLite has one writer at a time. Writers of this process queue here, in order, instead
    /// of colliding on the file lock, where the loser's busy handler sleeps (1, 2, 5, 10… ms)
    /// and concurrent writes collapse to a few hundred per second; queued writes share a
    /// commit. Other processes on the same file still meet the busy timeout.
    writer: writer::Writer,
}

impl SqliteDb {
    pub async fn open(
        path: &Path,
        busy_timeout: Duration,
        pool_size: usize,
    ) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("cannot create the database directory {}", dir.display())
            })?;
        }
        let manager = Manager::from_config(&deadpool_sqlite::Config::new(path), Runtime::Tokio1);
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(busy_timeout.max(Duration::from_millis(100))))
            .create_timeout(Some(Duration::from_secs(10)))
            .post_create(Hook::async_fn(move |conn, _| {
                Box::pin(async move {
                    conn.interact(move |c| configure(c, busy_timeout))
                        .await
                        .map_err(|e| HookError::message(e.to_string()))?
                        .map_err(HookError::Backend)
                })
            }))
            .build()
            .context("cannot build the SQLite pool")?;
        // The first connection creates the file; the writer opens it after.
        let conn = pool
            .get()
            .await
            .map_err(|e| anyhow!("no SQLite connection: {e}"))
            .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
        conn.interact(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
            .await
            .map_err(|e| anyhow!("SQLite task failed: {e}"))?
            .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
        drop(conn);
        let writer = writer::Writer::start(path, busy_timeout)
            .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
        Ok(Self {
            pool,
            path: path.to_path_buf(),
            writer,
        })
    }

    /// Runs `f` on a pooled connection, off the async threads.
    pub(crate) async fn call<T, F>(&self, f: F) -> DbResult<T>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let conn = self
            .pool
            .get()
            .await
            .map_err(|e| DbError::Unavailable(anyhow!("no SQLite connection: {e}")))?;
        conn.interact(f)
            .await
            .map_err(|e| DbError::Other(anyhow!("SQLite task failed: {e}")))?
            .map_err(map_error)
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction (possibly shared with other writes queued
    /// at the same time, each atomic on its own); answers once committed. `f` returning `Err`
    /// undoes only its own work.
    pub(crate) async fn write_tx<T, F>(&self, f: F) -> DbResult<T>
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer.run(f).await
    }
}

fn configure(conn: &mut Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    conn.busy_timeout(busy_timeout)?;
    // journal_mode answers with a row, so it is queried rather than executed.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
}

/// Locked, busy, unopenable or failing storage is "unavailable" (503, retry later); a unique
/// constraint is a conflict naming the column; anything else is a bug.
fn map_error(err: rusqlite::Error) -> DbError {
    if let rusqlite::Error::SqliteFailure(code, message) = &err {
        match code.code {
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::NotADatabase => return DbError::Unavailable(anyhow!(err)),
            ErrorCode::ConstraintViolation => {
                if let Some(column) = message
                    .as_deref()
                    .and_then(|m| m.strip_prefix("UNIQUE constraint failed: "))
                {
                    let column = column.rsplit('.').next().unwrap_or(column);
                    return DbError::Conflict(format!("{column} is already taken"));
                }
            }
            _ => {}
        }
    }
    DbError::Other(anyhow!(err))
}

fn apply_migrations(conn: &mut Connection) -> rusqlite::Result<Vec<&'static str>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    TEXT    PRIMARY KEY,
             applied_at INTEGER NOT NULL
         )",
    )?;
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS {
        let done: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |r| r.get(0),
        )?;
        if !done {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                rusqlite::params![version, crate::clock::unix_ms_now()],
            )?;
            applied.push(*version);
        }
    }
    tx.commit()?;
    Ok(applied)
}

#[async_trait]
impl Database for SqliteDb {
    async fn migrate(&self) -> anyhow::Result<()> {
        // One transaction holding the write lock: a second instance starting at the same time
        // waits, then finds everything applied.
        let applied = self
            .call(apply_migrations)
            .await
            .context("applying SQLite migrations")?;
        for version in applied {
            tracing::info!(version, "applied migration");
        }
        Ok(())
    }

    async fn ping(&self) -> DbResult<()> {
        // Open connections keep working on a file that was deleted or whose volume went away,
        // so readiness also checks that the file is still where new instances will look.
        if !self.path.exists() {
            return Err(DbError::Unavailable(anyhow!(
                "the SQLite file {} is gone",
                self.path.display()
            )));
        }
        // Taking the write lock proves writes can proceed (not just reads): a file locked
        // by another process past the busy timeout is not ready. An empty write does it,
        // through the writer like every other.
        self.write_tx(|_| Ok(())).await
    }

    async fn claim_and_invalidate(
        &self,
        delivery: &NewDelivery,
        scopes: &[Scope],
        origin: i64,
        now_ms: i64,
    ) -> DbResult<Claim> {
        let (delivery, scopes) = (delivery.clone(), scopes.to_vec());
        self.write_tx(move |tx| inbox::claim_and_invalidate(tx, &delivery, &scopes, origin, now_ms))
            .await
    }

    fn pool_stats(&self) -> PoolStats {
        let status = self.pool.status();
        PoolStats {
            max_size: status.max_size,
            size: status.size,
            in_use: status.size.saturating_sub(status.available),
            waiting: status.waiting,
        }
    }

    fn close(&self) {
        self.writer.close();
        self.pool.close();
    }

    fn feed_lane(&self) -> crate::db::Db {
        std::sync::Arc::new(self.clone())
    }
}
