//! `POST /admin/v1/stores` (operator).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Operator, new_api_key};
use super::settings::{
    DEFAULT_TEMPLATE, StoreSlug, StoreView, parse_business_id, parse_custom_domain, parse_name,
    parse_template, parse_theme,
};
use crate::app::AppState;
use crate::db::NewStore;
use crate::error::Result;
use crate::extract::Json;
use crate::openapi::Problem;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateStore {
    slug: String,
    name: String,
    biz_business_id: String,
    template: Option<String>,
    theme: Option<serde_json::Value>,
    custom_domain: Option<String>,
}

/// Creates a store (operator only); its API key is in the answer, once.
#[utoipa::path(post, path = "/admin/v1/stores", tag = "admin", security(("bearer" = [])),
    request_body = CreateStore,
    responses(
        (status = 201, description = "`{\"data\": store, \"api_key\": \"msk_…\"}`", body = serde_json::Value),
        (status = 400, description = "invalid_request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: a store key on an operator route", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "conflict: slug or custom domain taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    _: Operator,
    Json(body): Json<CreateStore>,
) -> Result<impl IntoResponse> {
    let (api_key, api_key_hash) = new_api_key();
    let new = NewStore {
        slug: StoreSlug::parse(&body.slug)?.0,
        name: parse_name(&body.name)?,
        biz_business_id: parse_business_id(&body.biz_business_id)?,
        template: parse_template(body.template.as_deref().unwrap_or(DEFAULT_TEMPLATE))?,
        theme: parse_theme(body.theme.as_ref().unwrap_or(&json!({})))?,
        custom_domain: body
            .custom_domain
            .as_deref()
            .map(parse_custom_domain)
            .transpose()?,
        api_key_hash,
        now_ms: state.clock.now_ms(),
    };
    let store = state.db.create_store(new).await?;
    // A host that was unknown a moment ago may be this store now.
    state.tenants.clear();
    tracing::info!(store = %store.slug, "store created");
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"data": StoreView::from(store), "api_key": api_key})),
    ))
}
