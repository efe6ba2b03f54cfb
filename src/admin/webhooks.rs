//! `GET /admin/v1/stores/{slug}/webhooks?limit=`: the store's recent webhook deliveries.

use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::auth::AdminStore;
use super::settings::rfc3339;
use crate::app::AppState;
use crate::error::{ApiError, Result};
use crate::extract::Query;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

#[derive(Deserialize)]
pub struct Params {
    limit: Option<u32>,
}

/// Newest first: `{"id","type","received_at","status"}`.
pub async fn recent(
    State(state): State<AppState>,
    AdminStore(store): AdminStore,
    Query(params): Query<Params>,
) -> Result<impl IntoResponse> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "`limit` must be between 1 and {MAX_LIMIT}"
        )));
    }
    let deliveries: Vec<_> = state
        .db
        .recent_deliveries(store.id, limit)
        .await?
        .into_iter()
        .map(|d| {
            json!({
                "id": d.id, "type": d.event_type,
                "received_at": rfc3339(d.received_at_ms), "status": d.status,
            })
        })
        .collect();
    Ok(axum::Json(json!({"data": deliveries})))
}
