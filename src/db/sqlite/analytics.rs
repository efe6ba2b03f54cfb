//! SQLite: `store_analytics_events`, `_page_views`, `_sessions` and `_salts`
//! (SQL Server: `store_analytics.*`).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};

use super::SqliteDb;
use crate::db::{
    AnalyticsRepo, AnalyticsSummary, DAY_MS, DbResult, Funnel, NewEvent, RecordedSession,
    VisitorEvents, fill_daily,
};

/// Finds the visitor's session that is still open at `now`, extends it by the batch, or starts
/// a new one. Runs inside the caller's `BEGIN IMMEDIATE` transaction, so two requests of one
/// visitor (on any instance) cannot both start a session. The extension is a conditional
/// UPDATE whose row count decides, which ports to SQL Server as it is.
fn extend_or_start_session(
    tx: &Transaction<'_>,
    b: &VisitorEvents,
    page_views: i64,
) -> rusqlite::Result<RecordedSession> {
    let open_since = b.now_ms - b.session_idle_ms;
    let open: Option<String> = tx
        .prepare_cached(
            "SELECT session_id FROM store_analytics_sessions
             WHERE store_id = ?1 AND visitor_hash = ?2 AND last_seen_at >= ?3
             ORDER BY last_seen_at DESC LIMIT 1",
        )?
        .query_row(params![b.store_id, b.visitor_hash, open_since], |r| {
            r.get(0)
        })
        .optional()?;
    let events = b.events.len() as i64;
    if let Some(session_id) = open {
        let extended = tx
            .prepare_cached(
                "UPDATE store_analytics_sessions SET
                    last_seen_at    = MAX(last_seen_at, ?4),
                    event_count     = event_count + ?5,
                    page_view_count = page_view_count + ?6
                 WHERE store_id = ?1 AND visitor_hash = ?2 AND session_id = ?3
                   AND last_seen_at >= ?7",
            )?
            .execute(params![
                b.store_id,
                b.visitor_hash,
                session_id,
                b.now_ms,
                events,
                page_views,
                open_since
            ])?;
        if extended == 1 {
            return Ok(RecordedSession {
                session_id,
                is_new: false,
            });
        }
    }
    tx.prepare_cached(
        "INSERT INTO store_analytics_sessions
            (store_id, visitor_hash, session_id, started_at, last_seen_at, event_count,
             page_view_count)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
    )?
    .execute(params![
        b.store_id,
        b.visitor_hash,
        b.new_session_id,
        b.now_ms,
        events,
        page_views
    ])?;
    Ok(RecordedSession {
        session_id: b.new_session_id.clone(),
        is_new: true,
    })
}

fn count(tx: &rusqlite::Connection, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<i64> {
    tx.prepare_cached(sql)?.query_row(p, |r| r.get(0))
}

#[async_trait]
impl AnalyticsRepo for SqliteDb {
    async fn insert_events(&self, events: Vec<NewEvent>) -> DbResult<()> {
        self.write_tx(move |tx| events.iter().try_for_each(|e| insert_event(tx, e)))
            .await
    }

    async fn record_visitor_events(&self, batch: VisitorEvents) -> DbResult<RecordedSession> {
        self.write_tx(move |tx| {
            let page_views = batch.events.iter().filter(|e| e.is_page_view).count() as i64;
            let session = extend_or_start_session(tx, &batch, page_views)?;
            let mut event = tx.prepare_cached(
                "INSERT INTO store_analytics_events
                    (store_id, name, url, referrer, props, visitor_hash, session_id, occurred_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut page_view = tx.prepare_cached(
                "INSERT INTO store_analytics_page_views
                    (store_id, visitor_hash, session_id, url, path, referrer, viewed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for e in &batch.events {
                let (url, referrer) = e.event_url_and_referrer();
                event.execute(params![
                    batch.store_id,
                    e.name,
                    url,
                    referrer,
                    e.props,
                    batch.visitor_hash,
                    session.session_id,
                    batch.now_ms
                ])?;
                if e.is_page_view {
                    page_view.execute(params![
                        batch.store_id,
                        batch.visitor_hash,
                        session.session_id,
                        e.url,
                        e.path,
                        e.referrer,
                        batch.now_ms
                    ])?;
                }
            }
            Ok(session)
        })
        .await
    }

    async fn daily_salt(&self, day: i64, new_salt: String, now_ms: i64) -> DbResult<String> {
        self.write_tx(move |tx| {
            // Whoever inserts first wins; everyone reads back the winner.
            tx.prepare_cached(
                "INSERT OR IGNORE INTO store_analytics_salts (day, salt, created_at)
                 VALUES (?1, ?2, ?3)",
            )?
            .execute(params![day, new_salt, now_ms])?;
            tx.prepare_cached("SELECT salt FROM store_analytics_salts WHERE day = ?1")?
                .query_row([day], |r| r.get(0))
        })
        .await
    }

    async fn delete_salts_before(&self, day: i64, limit: u32) -> DbResult<u64> {
        self.call(move |c| {
            c.prepare_cached(
                "DELETE FROM store_analytics_salts WHERE day IN
                    (SELECT day FROM store_analytics_salts WHERE day < ?1 ORDER BY day LIMIT ?2)",
            )?
            .execute(params![day, limit])
            .map(|n| n as u64)
        })
        .await
    }

    async fn delete_analytics_before(&self, before_ms: i64, limit: u32) -> DbResult<u64> {
        self.write_tx(move |tx| {
            let mut total = 0;
            for sql in [
                "DELETE FROM store_analytics_events WHERE id IN
                    (SELECT id FROM store_analytics_events WHERE occurred_at < ?1 LIMIT ?2)",
                "DELETE FROM store_analytics_page_views WHERE id IN
                    (SELECT id FROM store_analytics_page_views WHERE viewed_at < ?1 LIMIT ?2)",
                "DELETE FROM store_analytics_sessions WHERE rowid IN
                    (SELECT rowid FROM store_analytics_sessions WHERE last_seen_at < ?1 LIMIT ?2)",
            ] {
                total += tx.prepare_cached(sql)?.execute(params![before_ms, limit])? as u64;
            }
            Ok(total)
        })
        .await
    }

    async fn analytics_summary(
        &self,
        store_id: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> DbResult<AnalyticsSummary> {
        self.call(move |c| {
            // One read transaction, so every figure describes the same moment.
            let tx = c.transaction()?;
            let range = params![store_id, from_ms, to_ms];
            let page_views = count(
                &tx,
                "SELECT COUNT(*) FROM store_analytics_page_views
                 WHERE store_id = ?1 AND viewed_at >= ?2 AND viewed_at < ?3",
                range,
            )?;
            let visitors = count(
                &tx,
                "SELECT COUNT(DISTINCT visitor_hash) FROM store_analytics_events
                 WHERE store_id = ?1 AND occurred_at >= ?2 AND occurred_at < ?3",
                range,
            )?;
            let sessions = count(
                &tx,
                "SELECT COUNT(*) FROM store_analytics_sessions
                 WHERE store_id = ?1 AND started_at >= ?2 AND started_at < ?3",
                range,
            )?;
            let events = tx
                .prepare_cached(
                    "SELECT name, COUNT(*) FROM store_analytics_events
                     WHERE store_id = ?1 AND occurred_at >= ?2 AND occurred_at < ?3
                     GROUP BY name",
                )?
                .query_map(range, |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            // A service page is any path with a `/services/` segment followed by something
            // (`/services/svc_1`, `/en/services/haircut`); LIKE is the portable spelling.
            let service_views = count(
                &tx,
                "SELECT
                    (SELECT COUNT(*) FROM store_analytics_page_views
                     WHERE store_id = ?1 AND viewed_at >= ?2 AND viewed_at < ?3
                       AND path LIKE '%/services/_%')
                  + (SELECT COUNT(*) FROM store_analytics_events
                     WHERE store_id = ?1 AND occurred_at >= ?2 AND occurred_at < ?3
                       AND name = 'service_view')",
                range,
            )?;
            let drafts_created = count(
                &tx,
                "SELECT COUNT(DISTINCT draft_id) FROM store_analytics_events
                 WHERE store_id = ?1 AND occurred_at >= ?2 AND occurred_at < ?3
                   AND name = 'booking_draft_created' AND draft_id IS NOT NULL",
                range,
            )?;
            let bookings_confirmed = count(
                &tx,
                "SELECT COUNT(DISTINCT c.draft_id) FROM store_analytics_events c
                 WHERE c.store_id = ?1 AND c.occurred_at >= ?2 AND c.occurred_at < ?3
                   AND c.name = 'booking_confirmed' AND c.draft_id IS NOT NULL
                   AND EXISTS (
                       SELECT 1 FROM store_analytics_events d
                       WHERE d.store_id = c.store_id AND d.draft_id = c.draft_id
                         AND d.name = 'booking_draft_created'
                         AND d.occurred_at >= ?2 AND d.occurred_at < ?3)",
                range,
            )?;
            // Per UTC day; integer division of non-negative Unix ms floors.
            let per_day = |sql: &str| -> rusqlite::Result<Vec<(i64, i64)>> {
                tx.prepare_cached(sql)?
                    .query_map(params![store_id, from_ms, to_ms, DAY_MS], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect()
            };
            let daily_page_views = per_day(
                "SELECT viewed_at / ?4, COUNT(*) FROM store_analytics_page_views
                 WHERE store_id = ?1 AND viewed_at >= ?2 AND viewed_at < ?3
                 GROUP BY viewed_at / ?4",
            )?;
            let daily_visitors = per_day(
                "SELECT occurred_at / ?4, COUNT(DISTINCT visitor_hash) FROM store_analytics_events
                 WHERE store_id = ?1 AND occurred_at >= ?2 AND occurred_at < ?3
                 GROUP BY occurred_at / ?4",
            )?;
            let daily_sessions = per_day(
                "SELECT started_at / ?4, COUNT(*) FROM store_analytics_sessions
                 WHERE store_id = ?1 AND started_at >= ?2 AND started_at < ?3
                 GROUP BY started_at / ?4",
            )?;
            Ok(AnalyticsSummary {
                page_views,
                visitors,
                sessions,
                events,
                funnel: Funnel {
                    service_views,
                    drafts_created,
                    bookings_confirmed,
                },
                daily: fill_daily(
                    from_ms,
                    to_ms,
                    &daily_page_views,
                    &daily_visitors,
                    &daily_sessions,
                ),
            })
        })
        .await
    }
}

/// Inserts one event inside the caller's transaction, so a state change and the event that
/// reports it commit together (booking drafts use it).
pub(super) fn insert_event(tx: &rusqlite::Connection, e: &NewEvent) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO store_analytics_events
            (store_id, name, url, referrer, props, draft_id, visitor_hash, session_id, occurred_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        e.store_id,
        e.name,
        e.url,
        e.referrer,
        e.props,
        e.draft_id,
        e.visitor_hash,
        e.session_id,
        e.occurred_at_ms
    ])?;
    Ok(())
}
