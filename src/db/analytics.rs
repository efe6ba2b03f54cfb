//! The persistence seam for analytics events, page views, sessions and salts.

use std::collections::BTreeMap;

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

/// The events one storefront request posted: one visitor, one moment, one transaction.
#[derive(Debug, Clone)]
pub struct VisitorEvents {
    pub store_id: i64,
    pub visitor_hash: String,
    pub now_ms: i64,
    /// The visitor's latest session continues if it saw an event at most this long ago;
    /// otherwise a new session starts.
    pub session_idle_ms: i64,
    /// A new session's id, used only if a new session starts.
    pub new_session_id: String,
    pub events: Vec<ClientEvent>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientEvent {
    pub name: String,
    pub url: Option<String>,
    pub referrer: Option<String>,
    /// JSON object text.
    pub props: Option<String>,
    /// `page_view` events are also recorded in `store_analytics.page_views`.
    pub is_page_view: bool,
    /// The URL's path (no query, no fragment), kept with page views.
    pub path: Option<String>,
}

impl ClientEvent {
    /// `(url, referrer)` for the events row: a page view's are stored once, in its page-view
    /// row, not twice.
    pub fn event_url_and_referrer(&self) -> (Option<&str>, Option<&str>) {
        if self.is_page_view {
            (None, None)
        } else {
            (self.url.as_deref(), self.referrer.as_deref())
        }
    }
}

/// The session a batch of visitor events was recorded in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedSession {
    pub session_id: String,
    pub is_new: bool,
}

/// Analytics of one store over `[from_ms, to_ms)`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AnalyticsSummary {
    pub page_views: i64,
    /// Distinct visitor hashes among the events. Hashes change with the daily salt, so a
    /// person seen on two days counts twice (as in Plausible).
    pub visitors: i64,
    /// Sessions that started in the range.
    pub sessions: i64,
    /// Events per name, every name included (page views and `booking_*` too).
    pub events: BTreeMap<String, i64>,
    pub funnel: Funnel,
    /// One entry per UTC day the range touches, zeros included, oldest first.
    pub daily: Vec<DailyFigures>,
}

/// One UTC day of a summary.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DailyFigures {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub page_views: i64,
    /// Distinct visitor hashes among the day's events.
    pub visitors: i64,
    /// Sessions that started that day.
    pub sessions: i64,
}

pub const DAY_MS: i64 = 86_400_000;

/// Days (Unix ms / [`DAY_MS`]) that `[from_ms, to_ms)` touches.
pub fn days_of_range(from_ms: i64, to_ms: i64) -> std::ops::RangeInclusive<i64> {
    let first = from_ms.div_euclid(DAY_MS);
    if to_ms <= from_ms {
        #[allow(clippy::reversed_empty_ranges)]
        return first..=first - 1;
    }
    first..=(to_ms - 1).div_euclid(DAY_MS)
}

/// The `daily` entries of a range from per-day counts (`(day, count)`; absent days are zero).
pub fn fill_daily(
    from_ms: i64,
    to_ms: i64,
    page_views: &[(i64, i64)],
    visitors: &[(i64, i64)],
    sessions: &[(i64, i64)],
) -> Vec<DailyFigures> {
    let of =
        |rows: &[(i64, i64)], day: i64| rows.iter().find(|(d, _)| *d == day).map_or(0, |(_, n)| *n);
    days_of_range(from_ms, to_ms)
        .map(|day| DailyFigures {
            date: date_of_day(day),
            page_views: of(page_views, day),
            visitors: of(visitors, day),
            sessions: of(sessions, day),
        })
        .collect()
}

/// `YYYY-MM-DD` of a day number (Unix ms / [`DAY_MS`]).
pub fn date_of_day(day: i64) -> String {
    // Julian day 2440588 is 1970-01-01.
    time::Date::from_julian_day((2_440_588 + day) as i32)
        .map(|d| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()))
        .unwrap_or_default()
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Funnel {
    /// Page views whose path has a `/services/<something>` segment pair, plus `service_view`
    /// events.
    pub service_views: i64,
    /// Distinct drafts with a `booking_draft_created` event.
    pub drafts_created: i64,
    /// Distinct drafts with a `booking_confirmed` event whose `booking_draft_created` event is
    /// in the range too.
    pub bookings_confirmed: i64,
}

#[async_trait]
pub trait AnalyticsRepo {
    async fn insert_events(&self, events: Vec<NewEvent>) -> DbResult<()>;

    /// Records a visitor's events, their page views, and the session they belong to (extended
    /// or started), all in one transaction.
    async fn record_visitor_events(&self, batch: VisitorEvents) -> DbResult<RecordedSession>;

    /// The salt of a UTC day, created at random on first use. Safe when several instances ask
    /// at once: all of them get the one salt that was stored first.
    async fn daily_salt(&self, day: i64, new_salt: String, now_ms: i64) -> DbResult<String>;

    /// Deletes the salts of days before `day`, at most `limit`; answers how many.
    async fn delete_salts_before(&self, day: i64, limit: u32) -> DbResult<u64>;

    /// Deletes events, page views and sessions (by last activity) older than `before_ms`, at
    /// most `limit` rows of each table; answers how many rows went.
    async fn delete_analytics_before(&self, before_ms: i64, limit: u32) -> DbResult<u64>;

    async fn analytics_summary(
        &self,
        store_id: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> DbResult<AnalyticsSummary>;
}
