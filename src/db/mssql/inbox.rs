//! T-SQL (SQL Server 2019+ / Babelfish 4.x): the webhook inbox `store_webhooks.inbox`
//! (issue: webhooks).

use async_trait::async_trait;

use super::{MssqlDb, RowExt};
use crate::db::{DbResult, Delivery, InboxRepo};

#[async_trait]
impl InboxRepo for MssqlDb {
    async fn recent_deliveries(&self, store_id: i64, limit: u32) -> DbResult<Vec<Delivery>> {
        let limit = i64::from(limit);
        self.run(move |c| {
            Box::pin(async move {
                // `webhook_id` (binary collation) breaks ties so that deliveries within one
                // millisecond list stably, in the same order as on SQLite.
                c.rows(
                    "SELECT TOP (@P2) webhook_id, event_type, received_at, status
                     FROM store_webhooks.inbox
                     WHERE store_id = @P1
                     ORDER BY received_at DESC, webhook_id DESC",
                    &[&store_id, &limit],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(Delivery {
                        id: r.text(0)?,
                        event_type: r.opt_text(1)?.unwrap_or_default(),
                        received_at_ms: r.opt_int(2)?.unwrap_or(0),
                        status: r.opt_text(3)?.unwrap_or_default(),
                    })
                })
                .collect()
            })
        })
        .await
    }
}
