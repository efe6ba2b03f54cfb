//! The SQL Server backend: tiberius connections in a bb8 pool (through bb8-tiberius), TLS by
//! rustls.
//!
//! Dialect: one T-SQL that runs on SQL Server 2019+ and on Babelfish for PostgreSQL 4.x. So:
//! no MERGE, no `UPDATE … OUTPUT`, no `CREATE OR ALTER`, no reliance on lock hints; upserts are
//! UPDATE-then-INSERT under a lock that serialises the writers, claims are conditional UPDATEs
//! whose row count decides, batches are `UPDATE TOP (n)` / `DELETE TOP (n)`, times are BIGINT
//! Unix milliseconds and JSON is `NVARCHAR(MAX)` checked by `ISJSON`. Errors are recognised by
//! number where SQL Server gives one and by message where Babelfish folds them into one number.
//!
//! Every operation runs in a spawned task on one pooled connection, so a caller that goes away
//! (a client hanging up) cannot leave a connection in the middle of a transaction; a connection
//! whose state is uncertain (I/O error, timeout, failed rollback) is marked broken and bb8
//! drops it instead of handing it out again.

mod analytics;
mod cache;
mod conn;
mod draft_rows;
mod drafts;
mod feed;
mod inbox;
mod migrate;
mod stores;
mod usage;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use tiberius::error::Error as TdsError;
use tiberius::{AuthMethod, EncryptionLevel};

pub use self::conn::{Client, bind_nulls};
pub(crate) use self::conn::{Conn, Health, Manager, RowExt};
use super::{Database, DbError, DbResult, MssqlEncrypt, MssqlUrl, PoolStats};

/// What a closure run on a pooled connection answers.
pub(crate) type Fut<'c, T> = Pin<Box<dyn Future<Output = Result<T, TdsError>> + Send + 'c>>;

/// One operation may take this long (queueing for a lock included) before its connection is
/// abandoned and the caller gets `Unavailable`.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct MssqlDb {
    /// `None` once closed: the pool's connections close as their holders finish.
    pool: Arc<RwLock<Option<bb8::Pool<Manager>>>>,
    /// One connection for the feed tailer alone ([`Database::feed_lane`]).
    feed: Arc<RwLock<Option<bb8::Pool<Manager>>>>,
    /// `host:port/database`, for messages (never the password).
    target: Arc<str>,
    health: Arc<Health>,
}

fn tds_config(url: &MssqlUrl) -> tiberius::Config {
    let mut config = tiberius::Config::new();
    config.host(&url.host);
    config.port(url.port);
    config.database(&url.database);
    config.application_name("mango-store");
    config.authentication(AuthMethod::sql_server(&url.user, url.password.expose()));
    config.encryption(match url.encrypt {
        MssqlEncrypt::On => EncryptionLevel::Required,
        MssqlEncrypt::LoginOnly => EncryptionLevel::Off,
        MssqlEncrypt::DangerPlaintext => EncryptionLevel::NotSupported,
    });
    if url.trust_cert {
        config.trust_cert();
    }
    config
}

/// `host:port/database`, for messages (never the password).
fn target_of(url: &MssqlUrl) -> Arc<str> {
    format!("{}:{}/{}", url.host, url.port, url.database).into()
}

/// What bb8 reports: failed connects (already logged by [`Health`]) and pooled connections
/// that failed their check.
#[derive(Debug, Clone)]
struct LogSink(Arc<str>);

impl bb8::ErrorSink<bb8_tiberius::Error> for LogSink {
    fn sink(&self, error: bb8_tiberius::Error) {
        tracing::debug!(target_db = %self.0, error = %error, "SQL Server connection dropped");
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<bb8_tiberius::Error>> {
        Box::new(self.clone())
    }
}

impl MssqlDb {
    /// Connects once by hand (so that a start-up failure reports its real cause, which bb8's
    /// retries would turn into "timed out"), then builds the pool around that connection.
    pub async fn open(url: &MssqlUrl) -> anyhow::Result<Self> {
        let target = target_of(url);
        let describe = || {
            format!(
                "MANGO_DATABASE_URL: cannot connect to SQL Server at {}:{} (database {}, user {})",
                url.host, url.port, url.database, url.user
            )
        };
        let health = Health::new(target.clone());
        let manager = Manager::new(tds_config(url), health.clone());
        let first = tokio::time::timeout(url.connect_timeout, manager.open())
            .await
            .map_err(|_| anyhow!("no answer within {:?}", url.connect_timeout))
            .with_context(describe)?
            .map_err(|e| anyhow!("{e}"))
            .with_context(describe)?;
        let build = |size: u32| {
            bb8::Pool::builder()
                .max_size(size)
                .connection_timeout(url.connect_timeout)
                // No retries with backoff (up to half the connect timeout between attempts):
                // a checkout that finds no connection makes one attempt, and gives up when it
                // fails, so the first request after an outage connects at once.
                .retry_connection(false)
                .idle_timeout(Some(Duration::from_secs(600)))
                .max_lifetime(Some(Duration::from_secs(1800)))
                .error_sink(Box::new(LogSink(target.clone())))
                .build_unchecked(Manager::new(tds_config(url), health.clone()))
        };
        let pool = build(url.pool_size);
        let feed = build(1);
        let _ = pool.add(first);
        Ok(Self {
            pool: Arc::new(RwLock::new(Some(pool))),
            feed: Arc::new(RwLock::new(Some(feed))),
            target,
            health,
        })
    }

    fn pool(&self) -> Option<bb8::Pool<Manager>> {
        self.pool.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs `f` on a pooled connection in a task of its own, bounded by [`OPERATION_TIMEOUT`].
    pub(crate) async fn run<T, F>(&self, f: F) -> DbResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> Fut<'c, T> + Send + 'static,
    {
        self.run_within(OPERATION_TIMEOUT, f).await
    }

    pub(crate) async fn run_within<T, F>(&self, limit: Duration, f: F) -> DbResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> Fut<'c, T> + Send + 'static,
    {
        let Some(pool) = self.pool() else {
            return Err(DbError::Unavailable(anyhow!(
                "the SQL Server pool is closed"
            )));
        };
        let target = self.target.clone();
        let refused = self.health.next_refusal();
        let task = tokio::spawn(async move {
            let mut conn = tokio::select! {
                biased;
                got = pool.get_owned() => got.map_err(|e| match e {
                    bb8::RunError::User(e) => DbError::Unavailable(anyhow!("{target}: {e}")),
                    bb8::RunError::TimedOut => DbError::Unavailable(anyhow!(
                        "{target}: no SQL Server connection within the connect timeout"
                    )),
                })?,
                () = refused => {
                    return Err(DbError::Unavailable(anyhow!(
                        "{target}: SQL Server refuses connections"
                    )));
                }
            };
            match tokio::time::timeout(limit, f(&mut conn)).await {
                Ok(Ok(value)) => {
                    conn.answered_at = std::time::Instant::now();
                    Ok(value)
                }
                Ok(Err(err)) => {
                    if is_connection_error(&err) {
                        conn.broken = true;
                    }
                    Err(map_error(err))
                }
                Err(_) => {
                    conn.broken = true;
                    Err(DbError::Unavailable(anyhow!(
                        "{target}: SQL Server did not answer within {limit:?}"
                    )))
                }
            }
        });
        task.await
            .map_err(|e| DbError::Other(anyhow!("SQL Server task failed: {e}")))?
    }

    /// Runs `f` inside `SET XACT_ABORT ON; BEGIN TRANSACTION`, committed when `f` returns `Ok`
    /// and rolled back otherwise.
    pub(crate) async fn tx<T, F>(&self, f: F) -> DbResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> Fut<'c, T> + Send + 'static,
    {
        self.run(move |c| Box::pin(async move { c.transaction(f).await }))
            .await
    }
}

/// One unpooled connection to the URL's database (for tools and tests; the service uses the
/// pool).
pub async fn client(url: &MssqlUrl) -> anyhow::Result<Client> {
    let manager = Manager::new(tds_config(url), Health::new(target_of(url)));
    let conn = tokio::time::timeout(url.connect_timeout, manager.open())
        .await
        .map_err(|_| {
            anyhow!(
                "no answer from {}:{} within {:?}",
                url.host,
                url.port,
                url.connect_timeout
            )
        })?
        .map_err(|e| anyhow!("cannot connect to {}:{}: {e}", url.host, url.port))?;
    Ok(conn.client)
}

/// Errors after which the connection cannot be trusted to be in step with the server.
fn is_connection_error(err: &TdsError) -> bool {
    matches!(
        err,
        TdsError::Io { .. } | TdsError::Protocol(_) | TdsError::Tls(_) | TdsError::Routing { .. }
    )
}

/// Message fragments of a unique-key violation, on SQL Server and on Babelfish.
const DUPLICATE_KEY: &[&str] = &[
    "duplicate key",
    "violation of primary key",
    "violation of unique key",
    "unique constraint",
];

/// Column names a conflict can be about, most specific first (constraints and indexes are
/// named after their column, and Babelfish keeps the name as a prefix).
const UNIQUE_COLUMNS: &[&str] = &[
    "custom_domain",
    "api_key_hash",
    "idempotency_key",
    "webhook_id",
    "slug",
];

pub(crate) fn is_duplicate_key(err: &TdsError) -> bool {
    match err {
        TdsError::Server(e) => {
            let message = e.message().to_ascii_lowercase();
            matches!(e.code(), 2627 | 2601) || DUPLICATE_KEY.iter().any(|m| message.contains(m))
        }
        _ => false,
    }
}

/// Unreachable, locked-out or timed-out storage is `Unavailable` (503, retry later); a
/// unique-key violation is a `Conflict` naming the column, worded as the SQLite backend does;
/// anything else is a bug.
pub(crate) fn map_error(err: TdsError) -> DbError {
    if is_connection_error(&err) {
        return DbError::Unavailable(anyhow!(err));
    }
    if is_duplicate_key(&err) {
        let message = err.to_string().to_ascii_lowercase();
        let column = UNIQUE_COLUMNS
            .iter()
            .find(|c| message.contains(*c))
            .copied()
            .unwrap_or("the value");
        return DbError::Conflict(format!("{column} is already taken"));
    }
    if let TdsError::Server(e) = &err {
        let message = e.message().to_ascii_lowercase();
        // Deadlock victim, lock timeout, database or login unavailable, Azure throttling.
        let transient = matches!(
            e.code(),
            1205 | 1222 | 4060 | 18456 | 40197 | 40501 | 40613 | 49918 | 49919 | 49920
        ) || [
            "deadlock",
            "lock timeout",
            "could not serialize",
            "terminating connection",
        ]
        .iter()
        .any(|m| message.contains(m));
        if transient {
            return DbError::Unavailable(anyhow!(err));
        }
    }
    DbError::Other(anyhow!(err))
}

#[async_trait]
impl Database for MssqlDb {
    async fn migrate(&self) -> anyhow::Result<()> {
        let applied = migrate::apply(self)
            .await
            .with_context(|| format!("applying SQL Server migrations on {}", self.target))?;
        for version in applied {
            tracing::info!(version, "applied migration");
        }
        Ok(())
    }

    async fn ping(&self) -> DbResult<()> {
        // A write proves more than a read: the database is not read-only or out of space for
        // its log, and no lock on the heartbeat row is stuck.
        self.run(|c| {
            Box::pin(async move {
                c.exec(
                    "UPDATE dbo.mango_heartbeat SET beat = beat + 1 WHERE id = 1",
                    &[],
                )
                .await
                .map(drop)
            })
        })
        .await
    }

    fn pool_stats(&self) -> PoolStats {
        let Some(pool) = self.pool() else {
            return PoolStats::default();
        };
        let state = pool.state();
        PoolStats {
            max_size: pool.config().max_size as usize,
            size: state.connections as usize,
            in_use: state.connections.saturating_sub(state.idle_connections) as usize,
            waiting: state.statistics.pending_gets() as usize,
        }
    }

    fn close(&self) {
        for pool in [&self.pool, &self.feed] {
            pool.write().unwrap_or_else(|e| e.into_inner()).take();
        }
    }

    fn feed_lane(&self) -> crate::db::Db {
        Arc::new(Self {
            pool: self.feed.clone(),
            feed: self.feed.clone(),
            target: self.target.clone(),
            health: self.health.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_levels_follow_the_url() {
        let url = |q: &str| match crate::db::DatabaseUrl::parse(&format!(
            "mssql://u:secret@h:1433/d?{q}"
        ))
        .unwrap()
        {
            crate::db::DatabaseUrl::Mssql(m) => m,
            _ => unreachable!(),
        };
        let level = |q: &str| format!("{:?}", tds_config(&url(q)));
        assert!(level("encrypt=true").contains("Required"));
        assert!(level("encrypt=false").contains("encryption: Off"));
        assert!(level("encrypt=danger_plaintext").contains("NotSupported"));
        assert!(level("trust_cert=true").contains("TrustAll"));
        assert!(!level("encrypt=true").contains("secret"));
    }
}
