//! `POST /api/v1/analytics/events`: validate the whole batch, then store it with its visitor
//! and session in one transaction. Each request is written on its own (no cross-request
//! batching): a storefront already batches up to 100 events per request.

use std::time::Duration;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::event::parse_batch;
use super::visitor::{ClientAddr, day_of, visitor_hash};
use crate::app::AppState;
use crate::db::VisitorEvents;
use crate::error::{ApiError, Result};
use crate::openapi::problems;
use crate::openapi::schemas::{AnalyticsAccepted, AnalyticsBatch};
use crate::tenant::{Store, X_STORE_ID};

/// The store of an analytics request: as for every storefront request, else (for
/// `navigator.sendBeacon`, which cannot set headers) `?store=SLUG` when neither `X-Store-Id`
/// nor `Host` names a store (CONTRACT §9).
pub struct BeaconStore(pub Arc<Store>);

#[derive(serde::Deserialize)]
struct StoreParam {
    store: Option<String>,
}

impl FromRequestParts<AppState> for BeaconStore {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let store = match state.tenants.resolve(&parts.headers).await {
            Ok(store) => store,
            Err(ApiError::StoreNotFound) if !parts.headers.contains_key(X_STORE_ID) => {
                let slug = axum::extract::Query::<StoreParam>::try_from_uri(&parts.uri)
                    .ok()
                    .and_then(|q| q.0.store)
                    .ok_or(ApiError::StoreNotFound)?;
                state
                    .tenants
                    .resolve_slug(&slug)
                    .await?
                    .ok_or(ApiError::StoreNotFound)?
            }
            Err(err) => return Err(err),
        };
        crate::context::record_store(&store.slug);
        crate::context::check_origin(|origin| store.allows_origin(origin));
        Ok(Self(store))
    }
}

/// The body as JSON: `Content-Type: application/json`, or `text/plain` with any charset (what
/// `navigator.sendBeacon` sends for a string).
fn beacon_json(headers: &HeaderMap, body: &[u8]) -> Result<Value> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let is_text = content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/plain"));
    if !crate::extract::is_json_content_type(content_type) && !is_text {
        return Err(ApiError::invalid(
            "the request body must be JSON with `Content-Type: application/json` \
             (or `text/plain`, as `navigator.sendBeacon` sends)",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("the body is not valid JSON: {e}")))
}

/// A session ends after this long without events.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);

problems!(EventProblems {
    400 "Malformed JSON, a wrong content type, a bad name, an unknown field or a value over a cap (named in `detail` with the event's index)" [invalid_request],
    404 "No store is named by X-Store-Id, Host or `?store=`" [store_not_found],
    413 "The body is larger than 256 KiB" [payload_too_large],
    422 "A `booking_*` name: those are recorded by the server" [reserved_event_name],
    429 "Too many writes from this client or to this store, or the store's daily quota is used up (Retry-After until the next UTC day)" [rate_limited],
});

/// Records analytics events
///
/// One event or an array of 1 to 100, validated whole (all or nothing). `page_view` events
/// also count as page views; visitors and sessions are derived without cookies.
/// `navigator.sendBeacon` is served too: `Content-Type: text/plain` (any charset) with the
/// same JSON, and the store in `?store=SLUG`.
#[utoipa::path(post, path = "/api/v1/analytics/events", operation_id = "postAnalyticsEvents", tag = "analytics",
    params(crate::catalog::StoreHeaders,
        ("store" = Option<String>, Query, description = "The store's slug, for `navigator.sendBeacon`: used (and 404 `store_not_found` when unknown) only when neither `X-Store-Id` nor `Host` names a store")),
    request_body = AnalyticsBatch,
    responses((status = 202, description = "Recorded", body = AnalyticsAccepted), EventProblems))]
pub async fn events(
    State(state): State<AppState>,
    BeaconStore(store): BeaconStore,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse> {
    let now_ms = state.clock.now_ms();
    let store_id = store.tenant.store_id;
    state.rate_limits.check(store_id, addr, now_ms)?;
    let events = parse_batch(beacon_json(&headers, &body)?)?;
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
