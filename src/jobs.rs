//! Scheduled maintenance, in one place (tokio-cron-scheduler, 6-field cron with seconds).
//!
//! Every job is idempotent, works in bounded batches, and is safe when several instances run
//! it at once on one database: each is a set of conditional deletes or updates, so a second
//! run finds nothing left to do. Each run is logged and counted.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use tokio_cron_scheduler::{Job, JobScheduler};

use crate::app::AppState;

pub use crate::db::{BATCH, in_batches};

type JobFuture = Pin<Box<dyn Future<Output = anyhow::Result<u64>> + Send>>;

/// `(name, cron, run)`.
type JobSpec = (&'static str, &'static str, fn(AppState) -> JobFuture);

/// Every scheduled job. Add new jobs here.
fn jobs() -> Vec<JobSpec> {
    vec![
        ("purge_expired_cache", "0 */10 * * * *", |s| {
            Box::pin(purge_expired_cache(s))
        }),
        ("prune_invalidation_feed", "0 */15 * * * *", |s| {
            Box::pin(async move { crate::catalog::feed::prune(&s.db, &s.clock).await })
        }),
        ("purge_analytics_salts", "0 7 * * * *", |s| {
            Box::pin(crate::analytics::purge_old_salts(s))
        }),
        ("expire_booking_drafts", "30 * * * * *", |s| {
            Box::pin(crate::booking::expire_booking_drafts(s))
        }),
        ("prune_webhook_inbox", "0 17 * * * *", |s| {
            Box::pin(crate::webhooks::prune_inbox(s))
        }),
        ("prune_store_changes", "0 */15 * * * *", |s| {
            Box::pin(prune_store_changes(s))
        }),
        ("purge_old_analytics", "0 23 3 * * *", |s| {
            Box::pin(purge_old_analytics(s))
        }),
        ("purge_daily_usage", "0 27 * * * *", |s| {
            Box::pin(purge_daily_usage(s))
        }),
    ]
}

/// Starts the scheduler with every job; the caller shuts it down on exit.
pub async fn start(state: AppState) -> anyhow::Result<JobScheduler> {
    let scheduler = JobScheduler::new().await?;
    for (name, cron, run) in jobs() {
        let state = state.clone();
        scheduler
            .add(Job::new_async(cron, move |_, _| {
                let state = state.clone();
                Box::pin(async move { run_logged(name, run(state)).await })
            })?)
            .await?;
    }
    scheduler.start().await?;
    Ok(scheduler)
}

/// Runs one job now, logging and counting it like a scheduled run (also used by tests).
pub async fn run_logged(name: &'static str, job: impl Future<Output = anyhow::Result<u64>>) {
    let started = Instant::now();
    let outcome = match job.await {
        Ok(rows) => {
            tracing::info!(
                job = name,
                rows,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "job ran"
            );
            "ok"
        }
        Err(err) => {
            tracing::warn!(job = name, error = %format!("{err:#}"), "job failed");
            "error"
        }
    };
    metrics::counter!("mango_job_runs_total", "job" => name, "outcome" => outcome).increment(1);
    metrics::histogram!("mango_job_duration_seconds", "job" => name)
        .record(started.elapsed().as_secs_f64());
}

/// Store-settings changes older than an hour: every live instance has read them long ago.
pub async fn prune_store_changes(state: AppState) -> anyhow::Result<u64> {
    let cutoff = state.clock.now_ms() - 3_600_000;
    in_batches(|| state.db.prune_store_changes(cutoff, BATCH)).await
}

/// Analytics events, page views and sessions older than `MANGO_ANALYTICS_RETENTION_DAYS`.
pub async fn purge_old_analytics(state: AppState) -> anyhow::Result<u64> {
    let keep_ms = i64::from(state.config.analytics_retention_days) * 86_400_000;
    let cutoff = state.clock.now_ms() - keep_ms;
    in_batches(|| state.db.delete_analytics_before(cutoff, BATCH)).await
}

/// Cache rows past their stale window can never be served again.
pub async fn purge_expired_cache(state: AppState) -> anyhow::Result<u64> {
    let cutoff = state.clock.now_ms() - state.config.cache.stale.as_millis() as i64;
    in_batches(|| state.db.purge_expired_cache(cutoff, BATCH)).await
}

/// Usage counters of the analytics quota: yesterday's is kept (instances' clocks differ).
pub async fn purge_daily_usage(state: AppState) -> anyhow::Result<u64> {
    let before_day = crate::analytics::visitor::day_of(state.clock.now_ms()) - 1;
    in_batches(|| state.db.purge_daily_usage(before_day, BATCH)).await
}
