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
use crate::openapi::Problem;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

#[derive(Deserialize)]
pub struct Params {
    limit: Option<u32>,
}

/// Recent webhook deliveries for the store, newest first.
#[utoipa::path(get, path = "/admin/v1/stores/{slug}/webhooks", operation_id = "listStoreWebhooks", tag = "admin", security(("bearer" = [])),
    params(("slug" = String, Path, description = "The store's slug"), ("limit" = Option<u32>, Query, description = "1 to 200, default 50")),
    responses(
        (status = 200, description = "`{\"data\": [{id, type, received_at, status}]}`", body = serde_json::Value),
        (status = 400, description = "invalid_request: a bad limit", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "unauthorized: no or a wrong token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "store_not_found: unknown slug, or another store's key", body = Problem, content_type = "application/problem+json"),
    ))]
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
                "received_at": rfc3339(d.received_at_ms), "status": d.status.as_str(),
            })
        })
        .collect();
    Ok(axum::Json(json!({"data": deliveries})))
}
