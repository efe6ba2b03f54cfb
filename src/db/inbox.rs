//! The persistence seam for the webhook inbox (SQL Server: `store_webhooks.inbox`).
//!
//! Biz retries a delivery until it gets a 2xx, so the inbox remembers every accepted one by
//! its `webhook-id`. Inserting that row *is* the claim (a primary-key conflict means "seen
//! before"), which makes the dedupe hold across restarts and across instances sharing one
//! database. A delivery is recorded as `processing` and marked `processed` only after its
//! invalidation succeeded: if the process dies in between, Biz's retry finds the row still
//! `processing` and does the (idempotent) work again instead of answering "duplicate".

use async_trait::async_trait;

use super::DbResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Recorded; its invalidation has not been confirmed yet.
    Processing,
    Processed,
    /// No store has the delivery's business.
    Ignored,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Processed => "processed",
            Self::Ignored => "ignored",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "processing" => Some(Self::Processing),
            "processed" => Some(Self::Processed),
            "ignored" => Some(Self::Ignored),
            _ => None,
        }
    }
}

/// A verified, parsed delivery about to be recorded.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub webhook_id: String,
    /// `{resource}.{event}`.
    pub event_type: String,
    pub business_id: String,
    pub item_id: String,
    pub occurred_at_ms: i64,
    pub received_at_ms: i64,
    /// Record it as `ignored` even when stores have the business (a resource this instance
    /// does not declare): Biz stops retrying, and the stores' delivery list shows it.
    pub ignore: bool,
}

/// What the claim found, and so what the receiver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First delivery of this id, now recorded as `processing`: invalidate these stores, then
    /// [`InboxRepo::finish_delivery`].
    First { store_ids: Vec<i64> },
    /// Recorded before but never finished (a crash, a database failure, or the same delivery
    /// in flight right now): do the work again. Invalidation is idempotent.
    Unfinished { store_ids: Vec<i64> },
    /// No store has the business, or the delivery was to be ignored; recorded as `ignored`.
    Ignored,
    /// Already processed or ignored: nothing to do.
    Duplicate(DeliveryStatus),
}

/// One inbox row as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub event_type: String,
    pub received_at_ms: i64,
    pub status: DeliveryStatus,
}

#[async_trait]
pub trait InboxRepo {
    /// Records the delivery or finds it recorded, and looks up the stores of its business, in
    /// one transaction.
    async fn claim_delivery(&self, delivery: &NewDelivery) -> DbResult<Claim>;
    /// Marks a `processing` delivery `processed`.
    async fn finish_delivery(&self, webhook_id: &str, processed_at_ms: i64) -> DbResult<()>;
    /// The store's most recent deliveries (those for its business), newest first.
    async fn recent_deliveries(&self, store_id: i64, limit: u32) -> DbResult<Vec<Delivery>>;
    /// Deletes at most `limit` deliveries received before `before_ms`; answers how many.
    async fn prune_inbox(&self, before_ms: i64, limit: u32) -> DbResult<u64>;
}
