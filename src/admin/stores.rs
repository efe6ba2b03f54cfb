//! A store and its settings: `POST /admin/v1/stores` (operator), `GET` and `PATCH
//! /admin/v1/stores/{slug}` (operator or the store's own key).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Deserializer};
use serde_json::json;

use super::auth::{AdminStore, Operator, new_api_key};
use super::settings::{
    DEFAULT_TEMPLATE, StoreSlug, StoreView, parse_allowed_origins, parse_business_id,
    parse_custom_domain, parse_name, parse_template, parse_theme,
};
use crate::app::AppState;
use crate::db::{NewStore, StorePatch};
use crate::error::{ApiError, Result};
use crate::extract::Json;
use crate::openapi::problems;
use crate::openapi::schemas::{
    AdminStoreAnswer, CreateStore as CreateStoreSchema, StoreWithKey, UpdateStore,
};

#[derive(Deserialize)]
pub struct CreateStore {
    slug: String,
    name: String,
    biz_business_id: String,
    template: Option<String>,
    theme: Option<serde_json::Value>,
    custom_domain: Option<String>,
    /// CORS origins besides the store's own site (CONTRACT §14); `null` is none.
    allowed_origins: Option<Vec<String>>,
}

problems!(CreateStoreProblems {
    400 "Malformed JSON, a missing field, or a field that does not validate (named in `detail`)" [invalid_request],
    401 "No or a wrong token" [unauthorized],
    403 "A store key on an operator route" [forbidden],
    409 "The slug or the custom domain is taken" [conflict],
    413 "The body is larger than 256 KiB" [payload_too_large],
});

/// Creates a store
///
/// Operator only. The store's API key is in the answer, once (it is stored hashed).
#[utoipa::path(post, path = "/admin/v1/stores", operation_id = "createStore", tag = "admin", security(("bearer" = [])),
    request_body = CreateStoreSchema,
    responses((status = 201, description = "The store and its API key", body = StoreWithKey), CreateStoreProblems))]
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
            .map(|d| parse_custom_domain(d, &state.config.base_domain))
            .transpose()?,
        allowed_origins: parse_allowed_origins(body.allowed_origins.as_deref().unwrap_or(&[]))?,
        api_key_hash,
        now_ms: state.clock.now_ms(),
    };
    let store = state.db.create_store(new).await?;
    // A host that was unknown a moment ago may be this store now.
    state.tenants.clear();
    notify_other_instances(&state, store.id).await;
    tracing::info!(store = %store.slug, "store created");
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"data": StoreView::from(store), "api_key": api_key})),
    ))
}

problems!(
    /// What every `/admin/v1/stores/{slug}` route can answer.
    AdminStoreProblems {
        401 "No or a wrong token" [unauthorized],
        404 "No such store, or another store's key" [store_not_found],
    }
);

/// Reads a store
///
/// The store with every setting.
#[utoipa::path(get, path = "/admin/v1/stores/{slug}", operation_id = "getAdminStore", tag = "admin", security(("bearer" = [])),
    params(("slug" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{1,62}$", description = "The store's slug")),
    responses((status = 200, description = "The store", body = AdminStoreAnswer), AdminStoreProblems))]
pub async fn get(AdminStore(store): AdminStore) -> impl IntoResponse {
    axum::Json(json!({"data": StoreView::from(store)}))
}

/// `Some(None)` for an explicit `null`, `Some(Some(v))` for a value; an absent field stays
/// `None` through `#[serde(default)]`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A partial update. Unknown fields are refused, so a misspelt field is an error rather than
/// a silent no-op. `slug` and `biz_business_id` may be sent (a client echoing what it read)
/// but not changed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchStore {
    slug: Option<String>,
    biz_business_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    template: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    theme: Option<Option<serde_json::Value>>,
    /// `null` clears the custom domain.
    #[serde(default, deserialize_with = "present")]
    custom_domain: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    is_published: Option<Option<bool>>,
    /// `null` or `[]` clears the list.
    #[serde(default, deserialize_with = "present")]
    allowed_origins: Option<Option<Vec<String>>>,
}

/// A field that may be left out but not set to `null`.
fn not_null<T>(field: &str, value: Option<Option<T>>) -> Result<Option<T>> {
    match value {
        Some(None) => Err(ApiError::invalid(format!("`{field}` cannot be null"))),
        Some(Some(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}

fn immutable(field: &str, sent: Option<String>, current: &str) -> Result<()> {
    match sent {
        Some(v) if v != current => Err(ApiError::invalid(format!(
            "`{field}` is immutable and cannot be changed (it is {current:?})"
        ))),
        _ => Ok(()),
    }
}

problems!(UpdateStoreProblems {
    400 "Malformed JSON, an unknown, null or immutable field, or a field that does not validate" [invalid_request],
    409 "The custom domain belongs to another store" [conflict],
    413 "The body is larger than 256 KiB" [payload_too_large],
});

/// Changes a store's settings
///
/// Send only what changes: `name, template, theme, custom_domain, allowed_origins,
/// is_published`. `custom_domain: null` clears the domain, `allowed_origins: null` or `[]` the
/// list; unknown fields are refused. `slug` and `biz_business_id` are immutable: they may be
/// sent unchanged (a client echoing what it read), any other value is 400.
#[utoipa::path(patch, path = "/admin/v1/stores/{slug}", operation_id = "updateStore", tag = "admin", security(("bearer" = [])),
    params(("slug" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{1,62}$", description = "The store's slug")),
    request_body = UpdateStore,
    responses((status = 200, description = "The store as changed", body = AdminStoreAnswer), AdminStoreProblems, UpdateStoreProblems))]
pub async fn update(
    State(state): State<AppState>,
    AdminStore(store): AdminStore,
    Json(body): Json<PatchStore>,
) -> Result<impl IntoResponse> {
    immutable("slug", body.slug, &store.slug)?;
    immutable(
        "biz_business_id",
        body.biz_business_id,
        &store.biz_business_id,
    )?;
    let base_domain = &state.config.base_domain;
    let patch = StorePatch {
        name: not_null("name", body.name)?
            .map(|n| parse_name(&n))
            .transpose()?,
        template: not_null("template", body.template)?
            .map(|t| parse_template(&t))
            .transpose()?,
        theme: not_null("theme", body.theme)?
            .map(|t| parse_theme(&t))
            .transpose()?,
        custom_domain: body
            .custom_domain
            .map(|d| d.map(|d| parse_custom_domain(&d, base_domain)).transpose())
            .transpose()?,
        is_published: not_null("is_published", body.is_published)?,
        allowed_origins: body
            .allowed_origins
            .map(|o| parse_allowed_origins(o.as_deref().unwrap_or(&[])))
            .transpose()?,
    };
    let changed = changed_fields(&patch);
    if changed.is_empty() {
        return Ok(axum::Json(json!({"data": StoreView::from(store)})));
    }
    let updated = state
        .db
        .update_store(&store.slug, patch, state.clock.now_ms())
        .await?
        .ok_or(ApiError::StoreNotFound)?;
    // At once, so that a new custom domain resolves on the very next storefront request; the
    // other instances hear of it through the settings feed within a second.
    state.tenants.clear();
    notify_other_instances(&state, updated.id).await;
    tracing::info!(store = %updated.slug, fields = %changed.join(","), "store settings changed");
    Ok(axum::Json(json!({"data": StoreView::from(updated)})))
}

/// Names of the fields a patch sets (for the log line; never the values).
fn changed_fields(p: &StorePatch) -> Vec<&'static str> {
    [
        ("name", p.name.is_some()),
        ("template", p.template.is_some()),
        ("theme", p.theme.is_some()),
        ("custom_domain", p.custom_domain.is_some()),
        ("is_published", p.is_published.is_some()),
        ("allowed_origins", p.allowed_origins.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

/// Tells the other instances that this store's settings changed. Best effort: if it fails,
/// they still see the change when their cached lookup expires (10 s).
async fn notify_other_instances(state: &AppState, store_id: i64) {
    if let Err(err) = state
        .db
        .notify_store_changed(store_id, state.clock.now_ms())
        .await
    {
        tracing::warn!(error = %err, "could not announce a settings change to other instances");
    }
}
