//! One pooled tiberius connection, the bb8 manager that makes them, and row readers that
//! accept the integer widths SQL Server and Babelfish may answer with.

use tiberius::error::Error as TdsError;
use tiberius::{ColumnData, Row, ToSql};

use super::Fut;

/// A tiberius client over a tokio TCP stream.
pub type Client = bb8_tiberius::rt::Client;

/// A connection plus whether it can still be trusted; bb8 drops broken ones on return.
pub struct Conn {
    pub(crate) client: Client,
    pub(crate) broken: bool,
}

pub struct Manager {
    inner: bb8_tiberius::ConnectionManager,
}

impl Manager {
    pub(crate) fn new(config: tiberius::Config) -> Self {
        Self {
            inner: bb8_tiberius::ConnectionManager::new(config),
        }
    }

    /// Opens one connection (TCP, pre-login, TLS as configured, login).
    pub(crate) async fn open(&self) -> Result<Conn, bb8_tiberius::Error> {
        let client = bb8::ManageConnection::connect(&self.inner).await?;
        Ok(Conn {
            client,
            broken: false,
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
        conn.client
            .simple_query("SELECT 1")
            .await?
            .into_results()
            .await?;
        Ok(())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken
    }
}

impl Conn {
    /// Runs one statement; answers the rows it affected.
    pub(crate) async fn exec(&mut self, sql: &str, params: &[&dyn ToSql]) -> Result<u64, TdsError> {
        Ok(self.client.execute(sql, params).await?.total())
    }

    /// The rows of the first result set.
    pub(crate) async fn rows(
        &mut self,
        sql: &str,
        params: &[&dyn ToSql],
    ) -> Result<Vec<Row>, TdsError> {
        self.client
            .query(sql, params)
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
        self.client.query(sql, params).await?.into_row().await
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
