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
use crate::openapi::problems;
use crate::openapi::schemas::WebhookDeliveries;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

#[derive(Deserialize)]
pub struct Params {
    limit: Option<u32>,
}

problems!(RecentProblems {
    400 "A `limit` outside 1 to 200" [invalid_request],
});

/// A store's recent webhook deliveries
///
/// Newest first.
#[utoipa::path(get, path = "/admin/v1/stores/{slug}/webhooks", operation_id = "listStoreWebhooks", tag = "admin", security(("bearer" = [])),
    params(("slug" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{1,62}$", description = "The store's slug"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "How many (default 50)")),
    responses((status = 200, description = "The deliveries", body = WebhookDeliveries), super::stores::AdminStoreProblems, RecentProblems))]
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
