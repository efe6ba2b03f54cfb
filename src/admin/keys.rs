//! `POST /admin/v1/stores/{slug}/api-keys`: a new store API key, shown once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::auth::{AdminStore, new_api_key};
use super::settings::StoreView;
use crate::app::AppState;
use crate::error::{ApiError, Result};
use crate::openapi::Problem;

/// A new API key, shown once; the old one stops working at once.
#[utoipa::path(post, path = "/admin/v1/stores/{slug}/api-keys", tag = "admin", security(("bearer" = [])),
    params(("slug" = String, Path, description = "The store's slug")),
    responses(
        (status = 201, description = "`{\"data\": store, \"api_key\": \"msk_…\"}`", body = serde_json::Value),
        (status = 401, description = "unauthorized: no or a wrong token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "store_not_found: unknown slug, or another store's key", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rotate(
    State(state): State<AppState>,
    AdminStore(store): AdminStore,
) -> Result<impl IntoResponse> {
    let (api_key, hash) = new_api_key();
    let now_ms = state.clock.now_ms();
    if !state
        .db
        .set_api_key_hash(&store.slug, &hash, now_ms)
        .await?
    {
        return Err(ApiError::StoreNotFound);
    }
    let store = state
        .db
        .store_by_slug(&store.slug)
        .await?
        .ok_or(ApiError::StoreNotFound)?;
    tracing::info!(store = %store.slug, "store API key rotated");
    metrics::counter!("mango_admin_api_key_rotations_total").increment(1);
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"data": StoreView::from(store), "api_key": api_key})),
    ))
}
