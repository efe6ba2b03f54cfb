//! The persistence seam for the webhook inbox (issue: webhooks).

use async_trait::async_trait;

use super::DbResult;

/// One webhook delivery as the admin API lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Delivery {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub received_at_ms: i64,
    pub status: String,
}

#[async_trait]
pub trait InboxRepo {
    /// The store's most recent deliveries, newest first, at most `limit`.
    async fn recent_deliveries(&self, store_id: i64, limit: u32) -> DbResult<Vec<Delivery>>;
}
