//! Several instances, one database: every invalidation is also appended to a feed table in
//! the same transaction, and each instance tails that feed to retire its own memory entries.
//! The SQL cache is shared, so only memory needs this; a poll every 200 ms keeps another
//! instance's memory at most a fraction of a second behind a webhook answered elsewhere.

use std::time::Duration;

use super::CatalogCache;
use crate::clock::SharedClock;
use crate::db::Db;
use crate::domain::Scope;

pub const POLL_EVERY: Duration = Duration::from_millis(200);
/// Feed entries are kept this long (an instance that falls further behind drops its memory).
pub const KEEP_MS: i64 = 60 * 60 * 1000;
const BATCH: u32 = 1000;

/// Tails the feed until the task is dropped. Starts at the newest entry: a new instance has
/// an empty memory, so the history has nothing to retire.
pub async fn tail(db: Db, cache: CatalogCache) {
    let mut last = loop {
        match db.latest_invalidation().await {
            Ok(id) => break id,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the invalidation feed; retrying");
                tokio::time::sleep(POLL_EVERY * 5).await;
            }
        }
    };
    let me = cache.instance_id();
    let mut ticker = tokio::time::interval(POLL_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match db.invalidations_since(last, BATCH).await {
            Ok(entries) => {
                for entry in &entries {
                    if entry.origin != me {
                        let scope = Scope::from_columns(
                            cache.resources(),
                            entry.resource.as_deref(),
                            entry.item.clone(),
                        );
                        cache.invalidate_memory(entry.store_id, &scope);
                        metrics::counter!("mango_cache_feed_invalidations_total").increment(1);
                    }
                    last = entry.id;
                }
            }
            // While the database is down nothing new can be written to it either.
            Err(err) => tracing::debug!(error = %err, "invalidation feed poll failed"),
        }
    }
}

/// Deletes feed entries older than [`KEEP_MS`] (a scheduled job).
pub async fn prune(db: &Db, clock: &SharedClock) -> anyhow::Result<u64> {
    let before = clock.now_ms() - KEEP_MS;
    crate::db::in_batches(|| db.prune_invalidations(before, crate::db::BATCH)).await
}
