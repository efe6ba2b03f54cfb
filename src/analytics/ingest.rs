//! `POST /api/v1/analytics/events`: validate the whole batch, then store it with its visitor
//! and session in one transaction. Each request is written on its own (no cross-request
//! batching): a storefront already batches up to 100 events per request.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::event::parse_batch;
use super::visitor::{ClientAddr, day_of, visitor_hash};
use crate::app::AppState;
use crate::db::VisitorEvents;
use crate::error::Result;
use crate::extract::Json;
use crate::openapi::Problem;
use crate::tenant::CurrentStore;

/// A session ends after this long without events.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);

/// One event or an array of at most 100: `{name, url?, referrer?, props?}`.
#[utoipa::path(post, path = "/api/v1/analytics/events", operation_id = "postAnalyticsEvents", tag = "analytics",
    params(crate::catalog::StoreHeaders),
    request_body(content = serde_json::Value, description = "`{\"name\":\"page_view\",\"url\":\"/services\"}` or an array of up to 100"),
    responses(
        (status = 202, description = "`{\"data\": {\"accepted\": N}}`", body = serde_json::Value),
        (status = 400, description = "invalid_request: malformed, over a cap, or a bad name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "store_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "reserved_event_name: booking_* names are recorded by the server", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited: see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn events(
    State(state): State<AppState>,
    CurrentStore(store): CurrentStore,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<impl IntoResponse> {
    let now_ms = state.clock.now_ms();
    let store_id = store.tenant.store_id;
    state.rate_limits.check(store_id, addr, now_ms)?;
    let events = parse_batch(body)?;
    let accepted = events.len();
    take_daily_quota(&state, store_id, accepted, now_ms).await?;
    let salt = state
        .salts
        .for_day(&state.db, day_of(now_ms), now_ms)
        .await?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .map_or(&[][..], |v| v.as_bytes());
    let batch = VisitorEvents {
        store_id,
        visitor_hash: visitor_hash(&salt, store_id, addr, user_agent),
        now_ms,
        session_idle_ms: SESSION_IDLE.as_millis() as i64,
        new_session_id: hex::encode(rand::random::<[u8; 16]>()),
        events,
    };
    let session = state.db.record_visitor_events(batch).await?;
    metrics::counter!("mango_analytics_events_total").increment(accepted as u64);
    if session.is_new {
        metrics::counter!("mango_analytics_sessions_total").increment(1);
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"data": {"accepted": accepted}})),
    ))
}

/// The store's daily allowance of events (`MANGO_ANALYTICS_DAILY_QUOTA`), shared by every
/// instance through the database: a batch that would pass it is refused whole, with
/// `Retry-After` up to the next UTC day.
async fn take_daily_quota(
    state: &AppState,
    store_id: i64,
    events: usize,
    now_ms: i64,
) -> Result<()> {
    let quota = state.config.analytics_daily_quota;
    let day = day_of(now_ms);
    let quota = i64::try_from(quota).unwrap_or(i64::MAX);
    if state
        .db
        .take_daily_events(store_id, day, events as i64, quota)
        .await?
    {
        return Ok(());
    }
    metrics::counter!("mango_analytics_quota_refusals_total").increment(1);
    let next_day_ms = (day + 1) * 86_400_000;
    let retry_after = ((next_day_ms - now_ms) as u64).div_ceil(1000).max(1);
    Err(crate::error::ApiError::RateLimited {
        retry_after,
        detail: format!(
            "this store has recorded its {quota} analytics events for today (UTC); \
             events are accepted again tomorrow"
        ),
    })
}
