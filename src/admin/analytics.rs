//! `GET /admin/v1/stores/{slug}/analytics?from=&to=`: the store's analytics summary.

use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use super::auth::AdminStore;
use super::settings::rfc3339;
use crate::app::AppState;
use crate::error::{ApiError, Result};
use crate::extract::Query;
use crate::openapi::problems;
use crate::openapi::schemas::{AnalyticsSummary, TimeBound};

pub const DEFAULT_SPAN_MS: i64 = 30 * 86_400_000;

/// The longest range a summary covers (its `daily` has one entry per day).
pub const MAX_DAYS: usize = 366;

#[derive(Deserialize)]
pub struct Params {
    from: Option<String>,
    to: Option<String>,
}

/// A bound as written: an instant, or a whole UTC day.
enum Bound {
    Instant(i64),
    Day { start_ms: i64, end_ms: i64 },
}

impl Bound {
    fn start(&self) -> i64 {
        match self {
            Bound::Instant(ms) | Bound::Day { start_ms: ms, .. } => *ms,
        }
    }
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// RFC 3339 (`2026-11-21T10:00:00Z`, any offset) or a UTC date (`2026-11-21`).
fn parse_bound(field: &str, raw: &str) -> Result<Bound> {
    if let Ok(t) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(Bound::Instant(unix_ms(t)));
    }
    let date = Date::parse(raw, format_description!("[year]-[month]-[day]")).map_err(|_| {
        ApiError::invalid(format!(
            "`{field}` must be an RFC 3339 time or a date YYYY-MM-DD"
        ))
    })?;
    let next = date
        .next_day()
        .ok_or_else(|| ApiError::invalid(format!("`{field}` is out of range")))?;
    Ok(Bound::Day {
        start_ms: unix_ms(date.midnight().assume_utc()),
        end_ms: unix_ms(next.midnight().assume_utc()),
    })
}

/// `[from, to)` in Unix ms. A plain date as `to` includes that whole day, so
/// `from=2026-11-01&to=2026-11-30` covers all of November. Defaults: `to` is now, `from` is
/// 30 days before `to`. `from` after `to` (as written) is refused.
pub fn range(params: &Params, now_ms: i64) -> Result<(i64, i64)> {
    let to = match &params.to {
        Some(raw) => parse_bound("to", raw)?,
        None => Bound::Instant(now_ms),
    };
    let end = match to {
        Bound::Instant(ms) => ms,
        Bound::Day { end_ms, .. } => end_ms,
    };
    let from = match &params.from {
        Some(raw) => parse_bound("from", raw)?.start(),
        None => end - DEFAULT_SPAN_MS,
    };
    if from > to.start() {
        return Err(ApiError::invalid("`from` must not be after `to`"));
    }
    if crate::db::days_of_range(from, end).count() > MAX_DAYS {
        return Err(ApiError::invalid(format!(
            "the range may cover at most {MAX_DAYS} days"
        )));
    }
    Ok((from, end))
}

problems!(SummaryProblems {
    400 "A bound that is neither RFC 3339 nor YYYY-MM-DD, `from` after `to`, or more than 366 days" [invalid_request],
});

/// A store's analytics
///
/// Page views, visitors, sessions, events by name, the booking funnel and one `daily` entry
/// per UTC day of `[from, to)` (zeros included, oldest first). A date as `to` includes that
/// day; the range is at most 366 days; the default is the last 30 days.
#[utoipa::path(get, path = "/admin/v1/stores/{slug}/analytics", operation_id = "getStoreAnalytics", tag = "admin", security(("bearer" = [])),
    params(("slug" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{1,62}$", description = "The store's slug"),
        ("from" = Option<TimeBound>, Query, description = "RFC 3339 or YYYY-MM-DD; default 30 days before `to`"),
        ("to" = Option<TimeBound>, Query, description = "RFC 3339 or YYYY-MM-DD (the whole day); default now")),
    responses((status = 200, description = "The summary", body = AnalyticsSummary), super::stores::AdminStoreProblems, SummaryProblems))]
pub async fn summary(
    State(state): State<AppState>,
    AdminStore(store): AdminStore,
    Query(params): Query<Params>,
) -> Result<impl IntoResponse> {
    let (from, to) = range(&params, state.clock.now_ms())?;
    let summary = state.db.analytics_summary(store.id, from, to).await?;
    let mut data = serde_json::to_value(summary).map_err(ApiError::internal)?;
    data["from"] = json!(rfc3339(from));
    data["to"] = json!(rfc3339(to));
    Ok(axum::Json(json!({"data": data})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(from: Option<&str>, to: Option<&str>) -> Params {
        Params {
            from: from.map(str::to_string),
            to: to.map(str::to_string),
        }
    }

    #[test]
    fn dates_cover_whole_days() {
        let (from, to) = range(&params(Some("2026-11-01"), Some("2026-11-30")), 0).unwrap();
        assert_eq!(from, 1_793_491_200_000);
        assert_eq!(to - from, 30 * 86_400_000);
        let (from, to) = range(&params(Some("2026-11-01"), Some("2026-11-01")), 0).unwrap();
        assert_eq!(to - from, 86_400_000);
    }

    #[test]
    fn rfc3339_with_offsets() {
        let (from, to) = range(
            &params(
                Some("2026-11-01T05:00:00+05:00"),
                Some("2026-11-01T00:00:01Z"),
            ),
            0,
        )
        .unwrap();
        assert_eq!(from, 1_793_491_200_000);
        assert_eq!(to, from + 1000);
    }

    #[test]
    fn defaults_and_refusals() {
        let now = 1_800_000_000_000;
        assert_eq!(
            range(&params(None, None), now).unwrap(),
            (now - DEFAULT_SPAN_MS, now)
        );
        let (from, to) = range(&params(None, Some("2026-11-30")), now).unwrap();
        assert_eq!((from, to - from), (1_793_491_200_000, DEFAULT_SPAN_MS));
        assert!(range(&params(Some("2026-11-02"), Some("2026-11-01")), now).is_err());
        assert!(
            range(
                &params(Some("2026-11-01T00:00:01Z"), Some("2026-11-01T00:00:00Z")),
                now
            )
            .is_err()
        );
        assert!(range(&params(Some("yesterday"), None), now).is_err());
        assert!(range(&params(Some("2026-13-01"), None), now).is_err());
    }
}
