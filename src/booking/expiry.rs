//! The booking maintenance job: abandoned claims released, lapsed drafts expired, customer
//! details erased a day after a draft ended, idempotency keys forgotten after a day, and ended
//! drafts deleted after `MANGO_DRAFT_RETENTION_DAYS`. Each step
//! is a conditional, batched UPDATE or DELETE, so reruns and concurrent runs find nothing left.

use super::confirm::claim_rules;
use super::draft::UNRESOLVED_GRACE_MS;
use super::{ERASE_AFTER_MS, IDEMPOTENCY_KEY_TTL_MS};
use crate::app::AppState;
use crate::db::{BATCH, in_batches};

pub async fn expire_booking_drafts(state: AppState) -> anyhow::Result<u64> {
    let db = &state.db;
    let rules = claim_rules(&state);
    let now = rules.now_ms;
    // Released first, so that a claim abandoned long ago can expire in the same run.
    let released = in_batches(|| db.release_stale_claims(rules.stale_before_ms, BATCH)).await?;
    let expired = in_batches(|| db.expire_drafts(now, UNRESOLVED_GRACE_MS, BATCH)).await?;
    let erased = in_batches(|| db.erase_ended_drafts(now - ERASE_AFTER_MS, now, BATCH)).await?;
    let keys =
        in_batches(|| db.purge_idempotency_keys(now - IDEMPOTENCY_KEY_TTL_MS, BATCH)).await?;
    let retention_ms = state.config.draft_retention.as_millis() as i64;
    let deleted = in_batches(|| db.delete_ended_drafts(now - retention_ms, BATCH)).await?;
    for (to, n) in [
        ("released", released),
        ("expired", expired),
        ("erased", erased),
        ("deleted", deleted),
    ] {
        metrics::counter!("mango_booking_draft_transitions_total", "to" => to).increment(n);
    }
    if released > 0 {
        tracing::warn!(released, "released booking claims abandoned mid-confirm");
    }
    tracing::debug!(expired, erased, keys, deleted, "booking maintenance");
    Ok(released + expired + erased + keys + deleted)
}
