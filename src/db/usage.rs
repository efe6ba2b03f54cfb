//! Per-store daily usage: the analytics quota (issue 17). One row per store and UTC day; a
//! conditional UPDATE whose row count decides takes a batch from the day's allowance, so the
//! quota holds across every instance sharing the database.

use async_trait::async_trait;

use super::DbResult;

#[async_trait]
pub trait UsageRepo {
    /// Counts `events` against the store's allowance for `day` (Unix ms / 86 400 000) if the
    /// day's total stays within `quota`; answers whether it did (all or nothing).
    async fn take_daily_events(
        &self,
        store_id: i64,
        day: i64,
        events: i64,
        quota: i64,
    ) -> DbResult<bool>;
    /// Deletes usage rows of days before `before_day`, at most `limit`.
    async fn purge_daily_usage(&self, before_day: i64, limit: u32) -> DbResult<u64>;
}
