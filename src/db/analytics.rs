//! The persistence seam for analytics events, page views, sessions and salts.

use async_trait::async_trait;

use super::DbResult;

/// One analytics event as stored in `store_analytics.events`. Construct with
/// `..Default::default()` so that fields added later do not break callers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewEvent {
    pub store_id: i64,
    pub name: String,
    pub url: Option<String>,
    pub referrer: Option<String>,
    /// JSON object text.
    pub props: Option<String>,
    /// The booking draft the event belongs to (server-recorded `booking_*` events).
    pub draft_id: Option<String>,
    pub visitor_hash: Option<String>,
    pub session_id: Option<String>,
    pub occurred_at_ms: i64,
}

#[async_trait]
pub trait AnalyticsRepo {
    async fn insert_events(&self, events: Vec<NewEvent>) -> DbResult<()>;
}
