//! Assertions on stored rows, on either backend: SQL is written the SQLite way
//! (`store_booking_drafts`, `?1`) and translated for SQL Server (`sqlserver::to_tsql`).

use super::{SqlValue, TestApp, sqlserver};

impl TestApp {
    /// Every row of a query on the app's database, on either backend. Written the SQLite way
    /// (`store_booking_drafts`, `?1`); translated for SQL Server.
    pub fn sql_rows(&self, sql: &str, params: &[SqlValue]) -> Vec<Vec<SqlValue>> {
        if self.mssql_db.is_some() {
            return sqlserver::query(&self.database_url, sql, params);
        }
        let conn = self.sql();
        let mut statement = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let columns = statement.column_count();
        statement
            .query_map(rusqlite::params_from_iter(params), |row| {
                (0..columns)
                    .map(|i| {
                        Ok(match row.get::<_, rusqlite::types::Value>(i)? {
                            rusqlite::types::Value::Integer(v) => SqlValue::Int(v),
                            rusqlite::types::Value::Text(v) => SqlValue::Text(v),
                            _ => SqlValue::Null,
                        })
                    })
                    .collect()
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// The integer in the first column of the first row (0 when NULL).
    pub fn sql_i64(&self, sql: &str, params: &[SqlValue]) -> i64 {
        match self.sql_rows(sql, params).first().and_then(|r| r.first()) {
            Some(SqlValue::Int(v)) => *v,
            Some(SqlValue::Null) => 0,
            other => panic!("{sql}: expected an integer, got {other:?}"),
        }
    }

    /// The first column of every row, as text (`None` for NULL).
    pub fn sql_texts(&self, sql: &str, params: &[SqlValue]) -> Vec<Option<String>> {
        self.sql_rows(sql, params)
            .into_iter()
            .map(|row| match row.into_iter().next() {
                Some(SqlValue::Text(v)) => Some(v),
                Some(SqlValue::Int(v)) => Some(v.to_string()),
                _ => None,
            })
            .collect()
    }

    /// Runs a statement on the app's database, on either backend; answers the rows affected.
    pub fn sql_exec(&self, sql: &str, params: &[SqlValue]) -> u64 {
        if self.mssql_db.is_some() {
            return sqlserver::execute(&self.database_url, sql, params);
        }
        self.sql()
            .execute(sql, rusqlite::params_from_iter(params))
            .unwrap_or_else(|e| panic!("{sql}: {e}")) as u64
    }
}
