//! `POST /admin/v1/stores/{slug}/api-keys`: a new store API key, shown once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::auth::{AdminStoreCaller, Caller, new_api_key};
use super::settings::StoreView;
use crate::app::AppState;
use crate::error::{ApiError, Result};
use crate::openapi::problems;
use crate::openapi::schemas::StoreWithKey;

problems!(RotateProblems {
    409 "The key was rotated meanwhile by a concurrent rotation" [conflict],
});

/// Rotates a store's API key
///
/// A new key, shown once; the old one stops working at once.
///
/// The rotation replaces the key the caller authenticated with, and only that one: of
/// concurrent rotations one wins and the others answer 409 `conflict` (without this, a leaked
/// key racing the owner's rotation could end up holding the live key). The operator has no
/// store key of their own, so an operator rotation is conditional on the hash read just before
/// it: two operators rotating at once also get one winner, never two keys of which one is dead.
#[utoipa::path(post, path = "/admin/v1/stores/{slug}/api-keys", operation_id = "rotateStoreApiKey", tag = "admin", security(("bearer" = [])),
    params(("slug" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{1,62}$", description = "The store's slug")),
    responses((status = 201, description = "The store and its new API key", body = StoreWithKey),
        super::stores::AdminStoreProblems, RotateProblems))]
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
