//! SQLite: `store_analytics_daily_usage`.

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteDb;
use crate::db::{DbResult, UsageRepo};

#[async_trait]
impl UsageRepo for SqliteDb {
    async fn take_daily_events(
        &self,
        store_id: i64,
        day: i64,
        events: i64,
        quota: i64,
    ) -> DbResult<bool> {
        self.write_tx(move |tx| {
            tx.prepare_cached(
                "INSERT INTO store_analytics_daily_usage (store_id, day, events)
                 VALUES (?1, ?2, 0) ON CONFLICT DO NOTHING",
            )?
            .execute(params![store_id, day])?;
            let taken = tx
                .prepare_cached(
                    "UPDATE store_analytics_daily_usage SET events = events + ?3
                     WHERE store_id = ?1 AND day = ?2 AND events + ?3 <= ?4",
                )?
                .execute(params![store_id, day, events, quota])?;
            Ok(taken == 1)
        })
        .await
    }

    async fn purge_daily_usage(&self, before_day: i64, limit: u32) -> DbResult<u64> {
        self.write_tx(move |tx| {
            let n = tx.execute(
                "DELETE FROM store_analytics_daily_usage
                 WHERE rowid IN (SELECT rowid FROM store_analytics_daily_usage
                                 WHERE day < ?1 LIMIT ?2)",
                params![before_day, limit],
            )?;
            Ok(n as u64)
        })
        .await
    }
}
