//! SQLite: `store_analytics_events` and friends (SQL Server: `store_analytics.*`).

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteDb;
use crate::db::{AnalyticsRepo, DbResult, NewEvent};

#[async_trait]
impl AnalyticsRepo for SqliteDb {
    async fn insert_events(&self, events: Vec<NewEvent>) -> DbResult<()> {
        self.write_tx(move |tx| {
            let mut insert = tx.prepare_cached(
                "INSERT INTO store_analytics_events
                    (store_id, name, url, referrer, props, draft_id, visitor_hash, session_id, occurred_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for e in &events {
                insert.execute(params![
                    e.store_id,
                    e.name,
                    e.url,
                    e.referrer,
                    e.props,
                    e.draft_id,
                    e.visitor_hash,
                    e.session_id,
                    e.occurred_at_ms
                ])?;
            }
            Ok(())
        })
        .await
    }
}

/// Inserts one event inside the caller's transaction, so a state change and the event that
/// reports it commit together (booking drafts use it).
pub(super) fn insert_event(tx: &rusqlite::Connection, e: &NewEvent) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO store_analytics_events
            (store_id, name, url, referrer, props, draft_id, visitor_hash, session_id, occurred_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        e.store_id,
        e.name,
        e.url,
        e.referrer,
        e.props,
        e.draft_id,
        e.visitor_hash,
        e.session_id,
        e.occurred_at_ms
    ])?;
    Ok(())
}
