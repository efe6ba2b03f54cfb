//! `POST /admin/v1/stores/{slug}/api-keys`: a new store API key, shown once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::auth::{AdminStoreCaller, Caller, new_api_key};
use super::settings::StoreView;
use crate::app::AppState;
use crate::error::{ApiError, Result};
use crate::openapi::Problem;

/// A new API key, shown once; the old one stops working at once.
///
/// The rotation replaces the key the caller authenticated with, and only that one: of
/// concurrent rotations one wins and the others answer 409 `conflict` (without this, a leaked
/// key racing the owner's rotation could end up holding the live key). The operator has no
/// store key of their own, so an operator rotation is conditional on the hash read just before
/// it: two operators rotating at once also get one winner, never two keys of which one is dead.
#[utoipa::path(post, path = "/admin/v1/stores/{slug}/api-keys", operation_id = "rotateStoreApiKey", tag = "admin", security(("bearer" = [])),
    params(("slug" = String, Path, description = "The store's slug")),
    responses(
        (status = 201, description = "`{\"data\": store, \"api_key\": \"msk_…\"}`", body = serde_json::Value),
        (status = 401, description = "unauthorized: no or a wrong token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "store_not_found: unknown slug, or another store's key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "conflict: the key was rotated meanwhile (by a concurrent rotation)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rotate(
    State(state): State<AppState>,
    AdminStoreCaller { store, caller }: AdminStoreCaller,
) -> Result<impl IntoResponse> {
    let expected = match caller {
        Caller::Store(_, presented) => presented,
        Caller::Operator => state
            .db
            .api_key_hash(&store.slug)
            .await?
            .ok_or(ApiError::StoreNotFound)?,
    };
    let (api_key, hash) = new_api_key();
    let now_ms = state.clock.now_ms();
    if !state
        .db
        .replace_api_key_hash(&store.slug, &expected, &hash, now_ms)
        .await?
    {
        return Err(ApiError::Conflict(
            "the store's API key was rotated meanwhile; authenticate with the current key".into(),
        ));
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
