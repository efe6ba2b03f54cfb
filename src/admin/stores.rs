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

#[derive(Deserialize)]
pub struct CreateStore {
    slug: String,
    name: String,
    biz_business_id: String,
    template: Option<String>,
    theme: Option<serde_json::Value>,
    custom_domain: Option<String>,
}

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
