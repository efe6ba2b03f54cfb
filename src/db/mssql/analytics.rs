//! T-SQL (SQL Server 2019+ / Babelfish 4.x): `store_analytics.events`, `page_views`,
//! `sessions` and `salts`.
//!
//! A visitor's batch takes a transaction-owned application lock named after the visitor
//! (`sp_getapplock`: a real lock on both servers, unlike table hints), so that two requests of
//! one visitor — on any instance — cannot both start a session; the extension itself is a
//! conditional UPDATE whose row count decides.

use async_trait::async_trait;
use tiberius::ToSql;
use tiberius::error::Error as TdsError;

use super::{Conn, MssqlDb, RowExt};
use crate::db::{
    AnalyticsRepo, AnalyticsSummary, DAY_MS, DbResult, Funnel, NewEvent, RecordedSession,
    VisitorEvents, fill_daily,
};

const EVENTS: &str = "store_analytics.events
    (store_id, name, url, referrer, props, draft_id, visitor_hash, session_id, occurred_at)";

/// Inserts one event inside the caller's transaction, so a state change and the event that
/// reports it commit together (booking drafts use it).
pub(super) async fn insert_event(c: &mut Conn, e: &NewEvent) -> Result<(), TdsError> {
    insert_events(c, std::slice::from_ref(e)).await
}

async fn insert_events(c: &mut Conn, events: &[NewEvent]) -> Result<(), TdsError> {
    let rows: Vec<Vec<&dyn ToSql>> = events
        .iter()
        .map(|e| {
            vec![
                &e.store_id as &dyn ToSql,
                &e.name,
                &e.url,
                &e.referrer,
                &e.props,
                &e.draft_id,
                &e.visitor_hash,
                &e.session_id,
                &e.occurred_at_ms,
            ]
        })
        .collect();
    c.insert_many(EVENTS, &rows).await.map(drop)
}

async fn extend_or_start_session(
    c: &mut Conn,
    b: &VisitorEvents,
    page_views: i64,
) -> Result<RecordedSession, TdsError> {
    let granted = c
        .scalar(
            "DECLARE @result INT;
             EXEC @result = sp_getapplock @Resource = @P1, @LockMode = 'Exclusive',
                  @LockOwner = 'Transaction', @LockTimeout = 10000;
             SELECT CAST(@result AS BIGINT);",
            &[&format!(
                "mango-store:visitor:{}:{}",
                b.store_id, b.visitor_hash
            )],
        )
        .await?;
    if granted < 0 {
        return Err(TdsError::Conversion(
            format!("the visitor lock was not granted ({granted})").into(),
        ));
    }
    let open_since = b.now_ms - b.session_idle_ms;
    let open = c
        .row(
            "SELECT TOP (1) session_id FROM store_analytics.sessions
             WHERE store_id = @P1 AND visitor_hash = @P2 AND last_seen_at >= @P3
             ORDER BY last_seen_at DESC",
            &[&b.store_id, &b.visitor_hash, &open_since],
        )
        .await?;
    let events = b.events.len() as i64;
    if let Some(row) = open {
        let session_id = row.text(0)?;
        let extended = c
            .exec(
                "UPDATE store_analytics.sessions SET
                    last_seen_at    = CASE WHEN last_seen_at > @P4 THEN last_seen_at ELSE @P4 END,
                    event_count     = event_count + @P5,
                    page_view_count = page_view_count + @P6
                 WHERE store_id = @P1 AND visitor_hash = @P2 AND session_id = @P3
                   AND last_seen_at >= @P7",
                &[
                    &b.store_id,
                    &b.visitor_hash,
                    &session_id,
                    &b.now_ms,
                    &events,
                    &page_views,
                    &open_since,
                ],
            )
            .await?;
        if extended == 1 {
            return Ok(RecordedSession {
                session_id,
                is_new: false,
            });
        }
    }
    c.exec(
        "INSERT INTO store_analytics.sessions
            (store_id, visitor_hash, session_id, started_at, last_seen_at, event_count,
             page_view_count)
         VALUES (@P1, @P2, @P3, @P4, @P4, @P5, @P6)",
        &[
            &b.store_id,
            &b.visitor_hash,
            &b.new_session_id,
            &b.now_ms,
            &events,
            &page_views,
        ],
    )
    .await?;
    Ok(RecordedSession {
        session_id: b.new_session_id.clone(),
        is_new: true,
    })
}

#[async_trait]
impl AnalyticsRepo for MssqlDb {
    async fn insert_events(&self, events: Vec<NewEvent>) -> DbResult<()> {
        self.tx(move |c| Box::pin(async move { insert_events(c, &events).await }))
            .await
    }

    async fn record_visitor_events(&self, batch: VisitorEvents) -> DbResult<RecordedSession> {
        self.tx(move |c| {
            Box::pin(async move {
                let b = &batch;
                let page_views = b.events.iter().filter(|e| e.is_page_view).count() as i64;
                let session = extend_or_start_session(c, b, page_views).await?;
                let urls: Vec<_> = b
                    .events
                    .iter()
                    .map(|e| e.event_url_and_referrer())
                    .collect();
                let no_draft = None::<String>;
                let events: Vec<Vec<&dyn ToSql>> = b
                    .events
                    .iter()
                    .zip(&urls)
                    .map(|(e, (url, referrer))| {
                        vec![
                            &b.store_id as &dyn ToSql,
                            &e.name,
                            url,
                            referrer,
                            &e.props,
                            &no_draft,
                            &b.visitor_hash,
                            &session.session_id,
                            &b.now_ms,
                        ]
                    })
                    .collect();
                c.insert_many(EVENTS, &events).await?;
                let page_views: Vec<Vec<&dyn ToSql>> = b
                    .events
                    .iter()
                    .filter(|e| e.is_page_view)
                    .map(|e| {
                        vec![
                            &b.store_id as &dyn ToSql,
                            &b.visitor_hash,
                            &session.session_id,
                            &e.url,
                            &e.path,
                            &e.referrer,
                            &b.now_ms,
                        ]
                    })
                    .collect();
                c.insert_many(
                    "store_analytics.page_views
                        (store_id, visitor_hash, session_id, url, path, referrer, viewed_at)",
                    &page_views,
                )
                .await?;
                Ok(session)
            })
        })
        .await
    }

    async fn daily_salt(&self, day: i64, new_salt: String, now_ms: i64) -> DbResult<String> {
        self.run(move |c| {
            Box::pin(async move {
                // Whoever inserts first wins (no transaction: a duplicate-key error here only
                // means another instance won); everyone reads back the winner.
                let inserted = c
                    .exec(
                        "INSERT INTO store_analytics.salts (day, salt, created_at)
                         SELECT @P1, @P2, @P3
                         WHERE NOT EXISTS (SELECT 1 FROM store_analytics.salts WHERE day = @P1)",
                        &[&day, &new_salt, &now_ms],
                    )
                    .await;
                match inserted {
                    Err(err) if !super::is_duplicate_key(&err) => return Err(err),
                    _ => {}
                }
                c.row(
                    "SELECT salt FROM store_analytics.salts WHERE day = @P1",
                    &[&day],
                )
                .await?
                .ok_or_else(|| TdsError::Conversion("the day's salt is missing".into()))?
                .text(0)
            })
        })
        .await
    }

    async fn delete_salts_before(&self, day: i64, limit: u32) -> DbResult<u64> {
        let limit = i64::from(limit);
        self.run(move |c| {
            Box::pin(async move {
                c.exec(
                    "DELETE TOP (@P2) FROM store_analytics.salts WHERE day < @P1",
                    &[&day, &limit],
                )
                .await
            })
        })
        .await
    }

    async fn delete_analytics_before(&self, before_ms: i64, limit: u32) -> DbResult<u64> {
        let limit = i64::from(limit);
        self.run(move |c| {
            Box::pin(async move {
                let mut total = 0;
                for sql in [
                    "DELETE TOP (@P2) FROM store_analytics.events WHERE occurred_at < @P1",
                    "DELETE TOP (@P2) FROM store_analytics.page_views WHERE viewed_at < @P1",
                    "DELETE TOP (@P2) FROM store_analytics.sessions WHERE last_seen_at < @P1",
                ] {
                    total += c.exec(sql, &[&before_ms, &limit]).await?;
                }
                Ok(total)
            })
        })
        .await
    }

    async fn analytics_summary(
        &self,
        store_id: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> DbResult<AnalyticsSummary> {
        self.run(move |c| {
            Box::pin(async move {
                let range: [&dyn ToSql; 3] = [&store_id, &from_ms, &to_ms];
                let page_views = c
                    .scalar(
                        "SELECT COUNT_BIG(*) FROM store_analytics.page_views
                         WHERE store_id = @P1 AND viewed_at >= @P2 AND viewed_at < @P3",
                        &range,
                    )
                    .await?;
                let visitors = c
                    .scalar(
                        "SELECT COUNT_BIG(DISTINCT visitor_hash) FROM store_analytics.events
                         WHERE store_id = @P1 AND occurred_at >= @P2 AND occurred_at < @P3",
                        &range,
                    )
                    .await?;
                let sessions = c
                    .scalar(
                        "SELECT COUNT_BIG(*) FROM store_analytics.sessions
                         WHERE store_id = @P1 AND started_at >= @P2 AND started_at < @P3",
                        &range,
                    )
                    .await?;
                let events = c
                    .rows(
                        "SELECT name, COUNT_BIG(*) FROM store_analytics.events
                         WHERE store_id = @P1 AND occurred_at >= @P2 AND occurred_at < @P3
                         GROUP BY name",
                        &range,
                    )
                    .await?
                    .iter()
                    .map(|r| Ok((r.text(0)?, r.int(1)?)))
                    .collect::<Result<_, TdsError>>()?;
                // A service page is any path with a `/services/` segment followed by something
                // (`/services/svc_1`, `/en/services/haircut`).
                let service_views = c
                    .scalar(
                        "SELECT
                            (SELECT COUNT_BIG(*) FROM store_analytics.page_views
                             WHERE store_id = @P1 AND viewed_at >= @P2 AND viewed_at < @P3
                               AND path LIKE '%/services/_%')
                          + (SELECT COUNT_BIG(*) FROM store_analytics.events
                             WHERE store_id = @P1 AND occurred_at >= @P2 AND occurred_at < @P3
                               AND name = 'service_view')",
                        &range,
                    )
                    .await?;
                let drafts_created = c
                    .scalar(
                        "SELECT COUNT_BIG(DISTINCT draft_id) FROM store_analytics.events
                         WHERE store_id = @P1 AND occurred_at >= @P2 AND occurred_at < @P3
                           AND name = 'booking_draft_created' AND draft_id IS NOT NULL",
                        &range,
                    )
                    .await?;
                let bookings_confirmed = c
                    .scalar(
                        "SELECT COUNT_BIG(DISTINCT ev.draft_id) FROM store_analytics.events ev
                         WHERE ev.store_id = @P1 AND ev.occurred_at >= @P2
                           AND ev.occurred_at < @P3
                           AND ev.name = 'booking_confirmed' AND ev.draft_id IS NOT NULL
                           AND EXISTS (
                               SELECT 1 FROM store_analytics.events d
                               WHERE d.store_id = ev.store_id AND d.draft_id = ev.draft_id
                                 AND d.name = 'booking_draft_created'
                                 AND d.occurred_at >= @P2 AND d.occurred_at < @P3)",
                        &range,
                    )
                    .await?;
                // Per UTC day (86 400 000 ms = DAY_MS, written as a literal so that the SELECT
                // and GROUP BY expressions match); BIGINT division of non-negative ms floors.
                debug_assert_eq!(DAY_MS, 86_400_000);
                let mut per_day = Vec::with_capacity(3);
                for sql in [
                    "SELECT viewed_at / 86400000, COUNT_BIG(*) FROM store_analytics.page_views
                     WHERE store_id = @P1 AND viewed_at >= @P2 AND viewed_at < @P3
                     GROUP BY viewed_at / 86400000",
                    "SELECT occurred_at / 86400000, COUNT_BIG(DISTINCT visitor_hash)
                     FROM store_analytics.events
                     WHERE store_id = @P1 AND occurred_at >= @P2 AND occurred_at < @P3
                     GROUP BY occurred_at / 86400000",
                    "SELECT started_at / 86400000, COUNT_BIG(*) FROM store_analytics.sessions
                     WHERE store_id = @P1 AND started_at >= @P2 AND started_at < @P3
                     GROUP BY started_at / 86400000",
                ] {
                    let rows = c
                        .rows(sql, &range)
                        .await?
                        .iter()
                        .map(|r| Ok((r.int(0)?, r.int(1)?)))
                        .collect::<Result<Vec<(i64, i64)>, TdsError>>()?;
                    per_day.push(rows);
                }
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
                    daily: fill_daily(from_ms, to_ms, &per_day[0], &per_day[1], &per_day[2]),
                })
            })
        })
        .await
    }
}
