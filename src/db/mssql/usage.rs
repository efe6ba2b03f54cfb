//! T-SQL (SQL Server 2019+ / Babelfish 4.x): `store_analytics.daily_usage`.

use async_trait::async_trait;
use tiberius::error::Error as TdsError;

use super::{Conn, MssqlDb};
use crate::db::{DbError, DbResult, UsageRepo};

/// The day's row is created if missing (INSERT … WHERE NOT EXISTS; a concurrent twin that wins
/// the primary key makes ours a duplicate-key error, and the caller tries again), then the
/// conditional UPDATE's row count decides.
async fn take(
    c: &mut Conn,
    store_id: i64,
    day: i64,
    events: i64,
    quota: i64,
) -> Result<bool, TdsError> {
    c.exec(
        "INSERT INTO store_analytics.daily_usage (store_id, day, events)
         SELECT @P1, @P2, 0
         WHERE NOT EXISTS (SELECT 1 FROM store_analytics.daily_usage
                           WHERE store_id = @P1 AND day = @P2)",
        &[&store_id, &day],
    )
    .await?;
    let taken = c
        .exec(
            "UPDATE store_analytics.daily_usage SET events = events + @P3
             WHERE store_id = @P1 AND day = @P2 AND events + @P3 <= @P4",
            &[&store_id, &day, &events, &quota],
        )
        .await?;
    Ok(taken == 1)
}

#[async_trait]
impl UsageRepo for MssqlDb {
    async fn take_daily_events(
        &self,
        store_id: i64,
        day: i64,
        events: i64,
        quota: i64,
    ) -> DbResult<bool> {
        let mut last = None;
        for _ in 0..3 {
            match self
                .tx(move |c| Box::pin(async move { take(c, store_id, day, events, quota).await }))
                .await
            {
                Err(DbError::Conflict(msg)) => last = Some(DbError::Conflict(msg)),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| DbError::Other(anyhow::anyhow!("the usage row kept racing"))))
    }

    async fn purge_daily_usage(&self, before_day: i64, limit: u32) -> DbResult<u64> {
        let limit = i64::from(limit);
        self.run(move |c| {
            Box::pin(async move {
                c.exec(
                    "DELETE TOP (@P1) FROM store_analytics.daily_usage WHERE day < @P2",
                    &[&limit, &before_day],
                )
                .await
            })
        })
        .await
    }
}
