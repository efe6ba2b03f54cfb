//! SQLite: the webhook inbox `store_webhooks_inbox` (issue: webhooks).

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteDb;
use crate::db::{DbResult, Delivery, InboxRepo};

#[async_trait]
impl InboxRepo for SqliteDb {
    async fn recent_deliveries(&self, store_id: i64, limit: u32) -> DbResult<Vec<Delivery>> {
        self.call(move |c| {
            // `webhook_id` breaks ties so that deliveries within one millisecond list stably.
            c.prepare_cached(
                "SELECT webhook_id, event_type, received_at, status
                 FROM store_webhooks_inbox
                 WHERE store_id = ?1
                 ORDER BY received_at DESC, webhook_id DESC
                 LIMIT ?2",
            )?
            .query_map(params![store_id, limit], |r| {
                Ok(Delivery {
                    id: r.get(0)?,
                    event_type: r.get(1)?,
                    received_at_ms: r.get(2)?,
                    status: r.get(3)?,
                })
            })?
            .collect()
        })
        .await
    }
}
