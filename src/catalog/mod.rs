//! The storefront's catalog read path (CONTRACT §5): `GET /api/v1/store`,
//! `GET /api/v1/{resource}` and `GET /api/v1/{resource}/{id}`, served through [`CatalogCache`].

mod cache;
mod entry;
pub mod feed;
mod resource;

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{self, HeaderName};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

pub use self::cache::{CacheStatus, CatalogCache, Lookup, ResourceStats, Tenant, Unavailable};
pub use self::entry::{Entry, EntryKind, etag_for};
pub use self::resource::{CacheKey, Resource};
use crate::app::{ApiRouter, AppState};
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

/// Longest item id worth asking Biz about; longer ones cannot exist there.
pub const MAX_ID_LEN: usize = 128;

pub fn routes() -> ApiRouter {
    ApiRouter::new()
        .route("/api/v1/store", get(store_settings))
        .route("/api/v1/{resource}", get(list))
        .route("/api/v1/{resource}/{id}", get(item))
}

/// Whether an id can name a Biz item: short, printable, no spaces.
pub fn is_plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

fn resource_or_404(raw: &str) -> Result<Resource> {
    Resource::parse(raw).ok_or_else(|| {
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

/// Every item of a resource, all of Biz's pages joined, in Biz's order.
#[utoipa::path(get, path = "/api/v1/{resource}", operation_id = "listCatalogItems", tag = "storefront",
    params(("resource" = String, Path, description = "`services`, `products` or `staff`"), StoreHeaders, ConditionalHeaders),
    responses(
        (status = 200, description = "`{\"data\": [...]}`; headers `x-cache` (HIT, MISS, STALE), `ETag`, `Cache-Control: public, no-cache`", body = serde_json::Value),
        (status = 304, description = "Not modified (If-None-Match matched the ETag)"),
        (status = 404, description = "not_found (unknown resource) or store_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "upstream_unavailable: Biz failed and no copy is young enough (Retry-After)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Path(resource): Path<String>,
    CurrentStore(store): CurrentStore,
    IfNoneMatch(if_none_match): IfNoneMatch,
) -> Result<Response> {
    let resource = resource_or_404(&resource)?;
    let key = CacheKey::list(store.tenant.store_id, resource);
    respond(state.catalog.get(&store.tenant, key).await, if_none_match)
}

/// One item, as Biz has it.
#[utoipa::path(get, path = "/api/v1/{resource}/{id}", operation_id = "getCatalogItem", tag = "storefront",
    params(("resource" = String, Path, description = "`services`, `products` or `staff`"), ("id" = String, Path, description = "Biz's item id"), StoreHeaders, ConditionalHeaders),
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
    let resource = resource_or_404(&resource)?;
    if !is_plausible_id(&id) {
        return Err(ApiError::NotFound(format!("no {resource} has that id")));
    }
    let key = CacheKey::item(store.tenant.store_id, resource, &id);
    respond(state.catalog.get(&store.tenant, key).await, if_none_match)
}

/// The request's `If-None-Match` alone: extracting the whole `HeaderMap` would copy it.
pub struct IfNoneMatch(Option<HeaderValue>);

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
    let Lookup { entry, status } =
        lookup.map_err(|Unavailable(detail)| ApiError::UpstreamUnavailable {
            status: StatusCode::SERVICE_UNAVAILABLE,
            detail: format!("the catalog cannot be loaded right now ({detail})"),
            retry_after: Some(5),
        })?;
    let x_cache = HeaderValue::from_static(status.as_str());
    if entry.kind == EntryKind::NotFound {
        let mut response =
            ApiError::NotFound("Biz has no item with this id".into()).into_response();
        response.headers_mut().insert(X_CACHE, x_cache);
        return Ok(response);
    }
    let not_modified =
        if_none_match.is_some_and(|v| entry::matches_if_none_match(v.as_bytes(), &entry.etag));
    let mut response = if not_modified {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Body::from(entry.body.clone()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, entry.etag.clone());
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, no-cache"),
    );
    h.insert(X_CACHE, x_cache);
    Ok(response)
}
