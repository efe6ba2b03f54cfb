//! `POST /admin/v1/stores/{slug}/api-keys`: a new store API key, shown once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::auth::{AdminStore, new_api_key};
use super::settings::StoreView;
use crate::app::AppState;
use crate::error::{ApiError, Result};

/// Replaces the stored hash, so the old key stops working with the very next request (keys
/// are looked up by hash on every request; nothing caches them). The answer has the shape of
/// the create answer: `{"data": store, "api_key": "msk_…"}`.
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
