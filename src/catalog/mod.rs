//! The storefront's catalog read path (CONTRACT §5): `GET /api/v1/store`,
//! `GET /api/v1/{resource}` and `GET /api/v1/{resource}/{id}`, served through [`CatalogCache`].

mod cache;
mod entry;
pub mod feed;
mod listing;
pub mod query;

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::header::{self, HeaderName};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

pub use self::cache::{CacheStatus, CatalogCache, Lookup, ResourceStats, Tenant, Unavailable};
pub use self::entry::{Entry, EntryKind, etag_for};
use self::query::ListQuery;
use crate::app::{ApiRouter, AppState};
pub use crate::domain::{CacheKey, MAX_ID_LEN, Resource, is_plausible_id};
use crate::error::{ApiError, Result};
use crate::extract::Path;
use crate::openapi::Problem;
use crate::tenant::CurrentStore;

/// How a storefront request names its store (one of the two is needed; the header wins).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct StoreHeaders {
    /// The store's slug.
    #[param(rename = "X-Store-Id")]
    x_store_id: Option<String>,
    /// A custom domain, or `SLUG.MANGO_BASE_DOMAIN` (a port is ignored).
    #[param(rename = "Host")]
    host: Option<String>,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct ConditionalHeaders {
    /// An ETag from an earlier answer: 304 when it still matches.
    #[param(rename = "If-None-Match")]
    if_none_match: Option<String>,
}

pub fn routes() -> ApiRouter {
    ApiRouter::new()
        .route("/api/v1/store", get(store_settings))
        .route("/api/v1/{resource}", get(list))
        .route("/api/v1/{resource}/{id}", get(item))
}

fn resource_or_404(state: &AppState, raw: &str) -> Result<Resource> {
    state.catalog.resources().parse(raw).ok_or_else(|| {
        ApiError::NotFound(format!("there is no catalog resource {:?}", truncate(raw)))
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The store's public settings.
#[utoipa::path(get, path = "/api/v1/store", operation_id = "getStore", tag = "storefront",
    params(StoreHeaders),
    responses(
        (status = 200, description = "`{\"data\": {slug, name, template, theme, custom_domain}}`", body = serde_json::Value),
        (status = 404, description = "store_not_found", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn store_settings(CurrentStore(store): CurrentStore) -> Response {
    let r = &store.record;
    let theme: serde_json::Value = serde_json::from_str(&r.theme).unwrap_or_else(|_| json!({}));
    let body = json!({"data": {
        "slug": r.slug, "name": r.name, "template": r.template,
        "theme": theme, "custom_domain": r.custom_domain,
    }});
    ([(header::CACHE_CONTROL, "no-cache")], axum::Json(body)).into_response()
}

/// The reserved list-query parameters (CONTRACT §12); any other `FIELD=VALUE` filters.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ListQueryParams {
    /// Only these items, in this order (comma-separated, at most 100, no empty entry).
    ids: Option<String>,
    /// Page size (1–500); the answer then carries `next_cursor`.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page of the same query (needs `limit`).
    cursor: Option<String>,
}

/// Every item of a resource, all of Biz's pages joined, in Biz's order; narrowed by
/// `FIELD=VALUE` filters (top-level field equality, or membership for arrays), `ids` and
/// `limit`/`cursor` pages, all answered from the one cached list.
#[utoipa::path(get, path = "/api/v1/{resource}", operation_id = "listCatalogItems", tag = "storefront",
    params(("resource" = String, Path, description = "a declared resource: `services`, `products`, `staff` or one the operator declared"), ListQueryParams, StoreHeaders, ConditionalHeaders),
    responses(
        (status = 200, description = "`{\"data\": [...]}` (with `limit`: and `\"next_cursor\"`); headers `x-cache` (HIT, MISS, STALE), `ETag` of the exact bytes, `Cache-Control: public, no-cache`", body = serde_json::Value),
        (status = 304, description = "Not modified (If-None-Match matched the ETag)"),
        (status = 400, description = "invalid_request (naming the parameter) or invalid_cursor", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found (undeclared resource) or store_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "upstream_unavailable: Biz failed and no copy is young enough (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Path(resource): Path<String>,
    CurrentStore(store): CurrentStore,
    IfNoneMatch(if_none_match): IfNoneMatch,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let resource = resource_or_404(&state, &resource)?;
    let store_id = store.tenant.store_id;
    let lookup = state
        .catalog
        .get(&store.tenant, CacheKey::list(store_id, resource))
        .await;
    let Some(raw) = raw.filter(|q| !q.is_empty()) else {
        return respond(lookup, if_none_match);
    };
    let Ok(Lookup { entry, status }) = &lookup else {
        return respond(lookup, if_none_match);
    };
    // A variant answered before is served without parsing the query again.
    let list = entry.list_state();
    let variant = match list.cached(&raw) {
        Some(variant) => variant,
        None => {
            let query = ListQuery::parse(&raw, store_id, resource)?;
            if query.is_whole_list() {
                return respond(lookup, if_none_match);
            }
            list.answer(&entry.body, &raw, &query, store_id, resource)
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a cached list is not JSON")))?
        }
    };
    Ok(answer(&variant.body, &variant.etag, *status, if_none_match))
}

/// One item, as Biz has it.
#[utoipa::path(get, path = "/api/v1/{resource}/{id}", operation_id = "getCatalogItem", tag = "storefront",
    params(("resource" = String, Path, description = "a declared resource"), ("id" = String, Path, description = "Biz's item id"), StoreHeaders, ConditionalHeaders),
    responses(
        (status = 200, description = "`{\"data\": {...}}`; headers `x-cache`, `ETag`, `Cache-Control`", body = serde_json::Value),
        (status = 304, description = "Not modified"),
        (status = 400, description = "invalid_request: an undecodable path", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found (Biz says so, remembered ~30 s) or store_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "upstream_unavailable (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn item(
    State(state): State<AppState>,
    Path((resource, id)): Path<(String, String)>,
    CurrentStore(store): CurrentStore,
    IfNoneMatch(if_none_match): IfNoneMatch,
) -> Result<Response> {
    let resource = resource_or_404(&state, &resource)?;
    if !is_plausible_id(&id) {
        return Err(ApiError::NotFound(format!("no {resource} has that id")));
    }
    let key = CacheKey::item(store.tenant.store_id, resource, &id);
    respond(state.catalog.get(&store.tenant, key).await, if_none_match)
}

/// The request's `If-None-Match` alone: extracting the whole `HeaderMap` would copy it.
pub struct IfNoneMatch(pub Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self(parts.headers.get(header::IF_NONE_MATCH).cloned()))
    }
}

const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Turns a lookup into the answer: 200 with the cached bytes, 304 when the client's
/// `If-None-Match` matches, 404 for a remembered Biz 404, 503 when nothing can be served.
fn respond(
    lookup: Result<Lookup, Unavailable>,
    if_none_match: Option<HeaderValue>,
) -> Result<Response> {
    let Lookup { entry, status } = lookup.map_err(unavailable)?;
    if entry.kind == EntryKind::NotFound {
        let mut response =
            ApiError::NotFound("Biz has no item with this id".into()).into_response();
        response
            .headers_mut()
            .insert(X_CACHE, HeaderValue::from_static(status.as_str()));
        return Ok(response);
    }
    Ok(answer(&entry.body, &entry.etag, status, if_none_match))
}

/// 503 `upstream_unavailable` with `Retry-After`: Biz failed and no copy may stand in.
pub(crate) fn unavailable(Unavailable(detail): Unavailable) -> ApiError {
    ApiError::UpstreamUnavailable {
        status: StatusCode::SERVICE_UNAVAILABLE,
        detail: format!("the catalog cannot be loaded right now ({detail})"),
        retry_after: Some(5),
    }
}

/// 200 with `body`, or 304 when the client's `If-None-Match` matches `etag`; with the
/// catalog's headers either way.
pub(crate) fn answer(
    body: &bytes::Bytes,
    etag: &HeaderValue,
    status: CacheStatus,
    if_none_match: Option<HeaderValue>,
) -> Response {
    let x_cache = HeaderValue::from_static(status.as_str());
    let not_modified =
        if_none_match.is_some_and(|v| entry::matches_if_none_match(v.as_bytes(), etag));
    let mut response = if not_modified {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Body::from(body.clone()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, etag.clone());
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, no-cache"),
    );
    h.insert(X_CACHE, x_cache);
    response
}
