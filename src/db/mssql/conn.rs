//! One pooled tiberius connection, the bb8 manager that makes them, and row readers that
//! accept the integer widths SQL Server and Babelfish may answer with.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tiberius::error::Error as TdsError;
use tiberius::{ColumnData, Row, ToSql};
use tokio::sync::{Semaphore, watch};

use super::Fut;

/// A tiberius client over a tokio TCP stream.
pub type Client = bb8_tiberius::rt::Client;

/// A connection plus whether it can still be trusted; bb8 drops broken ones on return.
pub struct Conn {
    pub(crate) client: Client,
    pub(crate) broken: bool,
    /// When an operation on it last succeeded: the server answered then.
    pub(crate) answered_at: Instant,
}

/// A connection that answered this recently is handed out without a `SELECT 1` first. The
/// check doubled the round trips of every operation (the feed tailer's polls included), and a
/// connection cut since fails its next operation, which is then answered as any cut is (503,
/// connection dropped). One idle longer (cut by a database restart or an idle timeout while
/// nobody used it) is still checked.
const TRUSTED_FOR: Duration = Duration::from_secs(1);

pub struct Manager {
    inner: bb8_tiberius::ConnectionManager,
    health: Arc<Health>,
}

/// Whether the server takes new connections, shared by every pool of one database.
///
/// A checkout that waits for a connection gives up as soon as an attempt to open one fails
/// ([`Health::refusals`]): while the server is down a request is answered 503 at once instead
/// of queueing for the whole connect timeout. The first refusal after a success is logged as a
/// warning, the rest at debug level, and the first success after refusals at info level: one
/// line when the server goes, one when it is back.
///
/// It also lets only [`LOGINS_AT_ONCE`] connections be opened at a time: after an outage every
/// pool of every instance is empty, and a burst of requests would otherwise open them all at
/// once. A login costs the server far more than a query (on Babelfish each connection is a new
/// PostgreSQL backend whose T-SQL parser warms up on its own: after an outage, 27 new
/// connections kept 2 cores busy for about 4 s), so the pools grow a few connections at a time,
/// each one serving the queue as soon as it is open.
pub(crate) struct Health {
    target: Arc<str>,
    down: AtomicBool,
    refusals: watch::Sender<u64>,
    logins: Semaphore,
}

/// See [`Health`].
const LOGINS_AT_ONCE: usize = 2;

impl Health {
    pub(crate) fn new(target: Arc<str>) -> Arc<Self> {
        Arc::new(Self {
            target,
            down: AtomicBool::new(false),
            refusals: watch::Sender::new(0),
            logins: Semaphore::new(LOGINS_AT_ONCE),
        })
    }

    /// Resolves when an attempt to connect fails after this call (never if none does).
    pub(crate) fn next_refusal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut refusals = self.refusals.subscribe();
        async move {
            if refusals.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    fn record<T>(&self, outcome: &Result<T, bb8_tiberius::Error>) {
        match outcome {
            Ok(_) => {
                if self.down.swap(false, Ordering::AcqRel) {
                    tracing::info!(target_db = %self.target, "SQL Server takes connections again");
                }
            }
            Err(error) => {
                self.refusals.send_modify(|n| *n += 1);
                if self.down.swap(true, Ordering::AcqRel) {
                    tracing::debug!(target_db = %self.target, error = %error, "SQL Server connection failed");
                } else {
                    tracing::warn!(target_db = %self.target, error = %error, "SQL Server connection failed");
                }
            }
        }
    }
}

impl Manager {
    pub(crate) fn new(config: tiberius::Config, health: Arc<Health>) -> Self {
        Self {
            inner: bb8_tiberius::ConnectionManager::new(config),
            health,
        }
    }

    /// Opens one connection (TCP, pre-login, TLS as configured, login).
    pub(crate) async fn open(&self) -> Result<Conn, bb8_tiberius::Error> {
        let client = {
            // Never closed, so acquiring cannot fail.
            let _turn = self.health.logins.acquire().await;
            bb8::ManageConnection::connect(&self.inner).await
        };
        self.health.record(&client);
        Ok(Conn {
            client: client?,
            broken: false,
            answered_at: Instant::now(),
        })
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = bb8_tiberius::Error;

    async fn connect(&self) -> Result<Conn, Self::Error> {
        self.open().await
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), Self::Error> {
        if conn.answered_at.elapsed() < TRUSTED_FOR {
            return Ok(());
        }
        conn.client
            .simple_query("SELECT 1")
            .await?
            .into_results()
            .await?;
        conn.answered_at = Instant::now();
        Ok(())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken
    }
}

fn is_null(data: &ColumnData<'_>) -> bool {
    match data {
        ColumnData::U8(v) => v.is_none(),
        ColumnData::I16(v) => v.is_none(),
        ColumnData::I32(v) => v.is_none(),
        ColumnData::I64(v) => v.is_none(),
        ColumnData::F32(v) => v.is_none(),
        ColumnData::F64(v) => v.is_none(),
        ColumnData::Bit(v) => v.is_none(),
        ColumnData::String(v) => v.is_none(),
        ColumnData::Guid(v) => v.is_none(),
        ColumnData::Binary(v) => v.is_none(),
        ColumnData::Numeric(v) => v.is_none(),
        ColumnData::Xml(v) => v.is_none(),
        ColumnData::DateTime(v) => v.is_none(),
        ColumnData::SmallDateTime(v) => v.is_none(),
        ColumnData::Time(v) => v.is_none(),
        ColumnData::Date(v) => v.is_none(),
        ColumnData::DateTime2(v) => v.is_none(),
        ColumnData::DateTimeOffset(v) => v.is_none(),
    }
}

/// Writes NULL parameters into the SQL as `NULL` and renumbers the others.
///
/// tiberius sends a NULL parameter with the untyped NULLTYPE (0x1F), which SQL Server accepts
/// and Babelfish refuses ("Data type 0x1F is unknown"); a literal NULL means the same to both.
/// Placeholders are `@P<n>`, numbered from 1 in the order of `params`.
pub fn bind_nulls<'p>(sql: &str, params: &[&'p dyn ToSql]) -> (String, Vec<&'p dyn ToSql>) {
    let nulls: Vec<bool> = params.iter().map(|p| is_null(&p.to_sql())).collect();
    if !nulls.contains(&true) {
        return (sql.to_string(), params.to_vec());
    }
    let mut renumbered = vec![0usize; params.len()];
    let mut kept = Vec::with_capacity(params.len());
    for (i, param) in params.iter().enumerate() {
        if !nulls[i] {
            kept.push(*param);
            renumbered[i] = kept.len();
        }
    }
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find("@P") {
        out.push_str(&rest[..at]);
        let digits: String = rest[at + 2..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        match digits.parse::<usize>() {
            Ok(n) if (1..=params.len()).contains(&n) => {
                if nulls[n - 1] {
                    out.push_str("NULL");
                } else {
                    out.push_str(&format!("@P{}", renumbered[n - 1]));
                }
            }
            _ => out.push_str(&rest[at..at + 2 + digits.len()]),
        }
        rest = &rest[at + 2 + digits.len()..];
    }
    out.push_str(rest);
    (out, kept)
}

impl Conn {
    /// Runs one statement; answers the rows it affected.
    pub(crate) async fn exec(&mut self, sql: &str, params: &[&dyn ToSql]) -> Result<u64, TdsError> {
        let (sql, params) = bind_nulls(sql, params);
        Ok(self.client.execute(sql, &params).await?.total())
    }

    /// Inserts `rows` into `table (columns)` with multi-row `INSERT … VALUES`, as few
    /// statements as the server's limits allow (2,100 parameters, 1,000 rows): a batch of 80
    /// events is one round trip, not 80. Every row has one parameter per column.
    pub(crate) async fn insert_many(
        &mut self,
        table_and_columns: &str,
        rows: &[Vec<&dyn ToSql>],
    ) -> Result<u64, TdsError> {
        let Some(width) = rows.first().map(Vec::len).filter(|w| *w > 0) else {
            return Ok(0);
        };
        let per_statement = (2000 / width).clamp(1, 1000);
        let mut inserted = 0;
        for chunk in rows.chunks(per_statement) {
            let tuples: Vec<String> = (0..chunk.len())
                .map(|r| {
                    let params: Vec<String> = (1..=width)
                        .map(|c| format!("@P{}", r * width + c))
                        .collect();
                    format!("({})", params.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO {table_and_columns} VALUES {}",
                tuples.join(", ")
            );
            let params: Vec<&dyn ToSql> = chunk.iter().flatten().copied().collect();
            inserted += self.exec(&sql, &params).await?;
        }
        Ok(inserted)
    }

    /// The rows of the first result set.
    pub(crate) async fn rows(
        &mut self,
        sql: &str,
        params: &[&dyn ToSql],
    ) -> Result<Vec<Row>, TdsError> {
        let (sql, params) = bind_nulls(sql, params);
        self.client
            .query(sql, &params)
            .await?
            .into_first_result()
            .await
    }

    /// The first row of the first result set, if any.
    pub(crate) async fn row(
        &mut self,
        sql: &str,
        params: &[&dyn ToSql],
    ) -> Result<Option<Row>, TdsError> {
        let (sql, params) = bind_nulls(sql, params);
        self.client.query(sql, &params).await?.into_row().await
    }

    /// The first column of the first row, as an integer (0 when there is no row or it is NULL).
    pub(crate) async fn scalar(
        &mut self,
        sql: &str,
        params: &[&dyn ToSql],
    ) -> Result<i64, TdsError> {
        match self.row(sql, params).await? {
            Some(row) => Ok(row.opt_int(0)?.unwrap_or(0)),
            None => Ok(0),
        }
    }

    /// A parameterless batch (transaction control, DDL), its results read and dropped.
    pub(crate) async fn batch(&mut self, sql: &str) -> Result<(), TdsError> {
        self.client.simple_query(sql).await?.into_results().await?;
        Ok(())
    }

    /// Runs `f` in a transaction on this connection: committed on `Ok`, rolled back on `Err`.
    /// With XACT_ABORT on, any error inside already rolled the transaction back on the server;
    /// the explicit rollback covers the rest, and a connection that cannot even roll back is
    /// marked broken so that the pool does not hand it out again.
    pub(crate) async fn transaction<T, F>(&mut self, f: F) -> Result<T, TdsError>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> Fut<'c, T>,
    {
        self.batch("SET XACT_ABORT ON; BEGIN TRANSACTION").await?;
        let outcome = match f(self).await {
            Ok(value) => self.batch("COMMIT TRANSACTION").await.map(|()| value),
            Err(err) => Err(err),
        };
        if outcome.is_err() {
            self.rollback().await;
        }
        outcome
    }

    pub(crate) async fn rollback(&mut self) {
        if self
            .batch("IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION")
            .await
            .is_err()
        {
            self.broken = true;
        }
    }
}

fn conversion(index: usize, wanted: &str, got: &ColumnData<'_>) -> TdsError {
    TdsError::Conversion(format!("column {index}: expected {wanted}, got {got:?}").into())
}

/// Typed reads by column index; integers of any width widen to `i64`.
pub(crate) trait RowExt {
    fn cell(&self, index: usize) -> Result<&ColumnData<'static>, TdsError>;

    fn opt_int(&self, index: usize) -> Result<Option<i64>, TdsError> {
        let cell = self.cell(index)?;
        Ok(match cell {
            ColumnData::I64(v) => *v,
            ColumnData::I32(v) => v.map(i64::from),
            ColumnData::I16(v) => v.map(i64::from),
            ColumnData::U8(v) => v.map(i64::from),
            ColumnData::Bit(v) => v.map(i64::from),
            ColumnData::Numeric(v) if v.is_none_or(|n| n.scale() == 0) => {
                v.map(|n| n.value() as i64)
            }
            other => return Err(conversion(index, "an integer", other)),
        })
    }

    fn int(&self, index: usize) -> Result<i64, TdsError> {
        self.opt_int(index)?
            .ok_or_else(|| TdsError::Conversion(format!("column {index} is NULL").into()))
    }

    fn flag(&self, index: usize) -> Result<bool, TdsError> {
        Ok(self.int(index)? != 0)
    }

    fn opt_text(&self, index: usize) -> Result<Option<String>, TdsError> {
        match self.cell(index)? {
            ColumnData::String(v) => Ok(v.as_deref().map(str::to_owned)),
            other => Err(conversion(index, "text", other)),
        }
    }

    fn text(&self, index: usize) -> Result<String, TdsError> {
        self.opt_text(index)?
            .ok_or_else(|| TdsError::Conversion(format!("column {index} is NULL").into()))
    }
}

impl RowExt for Row {
    fn cell(&self, index: usize) -> Result<&ColumnData<'static>, TdsError> {
        self.cells()
            .nth(index)
            .map(|(_, data)| data)
            .ok_or_else(|| TdsError::Conversion(format!("no column {index}").into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_parameters_become_literals_and_the_rest_are_renumbered() {
        let (a, b, none) = (1i64, "x", None::<String>);
        let (sql, kept) = bind_nulls(
            "VALUES (@P1, @P2, @P3) -- @P1 again: @P1, @P12, @Px",
            &[&a, &none, &b],
        );
        assert_eq!(sql, "VALUES (@P1, NULL, @P2) -- @P1 again: @P1, @P12, @Px");
        assert_eq!(kept.len(), 2);
        let (same, _) = bind_nulls("@P1", &[&a]);
        assert_eq!(same, "@P1");
    }
}
