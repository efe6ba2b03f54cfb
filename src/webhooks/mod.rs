//! Webhooks from Biz (CONTRACT §6): `POST /webhooks/{resource}/{event}`.
//!
//! `signature` verifies Standard Webhooks signatures, `event` parses what a delivery says,
//! `receiver` is the route (verify → parse → record in the inbox → invalidate → answer). The
//! inbox itself is `db::InboxRepo`; it is pruned here by a scheduled job.

pub mod event;
pub mod receiver;
pub mod signature;

use std::time::Duration;

use axum::routing::post;

use crate::app::{ApiRouter, AppState};
use crate::db::{BATCH, in_batches};

/// How long a delivery is remembered. Biz retries for about three days; a retry that arrives
/// after its row was pruned would be processed again, which only costs a cache refill.
pub const INBOX_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

pub fn routes() -> ApiRouter {
    ApiRouter::new().route("/webhooks/{resource}/{event}", post(receiver::receive))
}

/// Scheduled: forgets deliveries older than [`INBOX_RETENTION`].
pub async fn prune_inbox(state: AppState) -> anyhow::Result<u64> {
    let cutoff = state.clock.now_ms() - INBOX_RETENTION.as_millis() as i64;
    in_batches(|| state.db.prune_inbox(cutoff, BATCH)).await
}
