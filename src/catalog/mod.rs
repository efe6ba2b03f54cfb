//! The storefront's catalog read path (CONTRACT §5): `GET /api/v1/store`,
//! `GET /api/v1/{resource}` and `GET /api/v1/{resource}/{id}`, served through [`CatalogCache`].

mod cache;
mod entry;
mod resource;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

pub use self::cache::{CacheStatus, CatalogCache, Lookup, ResourceStats, Tenant, Unavailable};
pub use self::entry::{Entry, EntryKind, etag_for};
pub use self::resource::{CacheKey, Resource};
use crate::app::AppState;
use crate::error::{ApiError, Result};
use crate::extract::Path;
use crate::tenant::CurrentStore;

/// Longest item id worth asking Biz about; longer ones cannot exist there.
pub const MAX_ID_LEN: usize = 128;

pub fn routes() -> Router<AppState> {
    Router::new()
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

async fn store_settings(CurrentStore(store): CurrentStore) -> Response {
    let r = &store.record;
    let theme: serde_json::Value = serde_json::from_str(&r.theme).unwrap_or_else(|_| json!({}));
    let body = json!({"data": {
        "slug": r.slug, "name": r.name, "template": r.template,
        "theme": theme, "custom_domain": r.custom_domain,
    }});
    ([(header::CACHE_CONTROL, "no-cache")], axum::Json(body)).into_response()
}

async fn list(
    State(state): State<AppState>,
    Path(resource): Path<String>,
    CurrentStore(store): CurrentStore,
    headers: HeaderMap,
) -> Result<Response> {
    let resource = resource_or_404(&resource)?;
    let key = CacheKey::list(store.tenant.store_id, resource);
    respond(state.catalog.get(&store.tenant, key).await, &headers)
}

async fn item(
    State(state): State<AppState>,
    Path((resource, id)): Path<(String, String)>,
    CurrentStore(store): CurrentStore,
    headers: HeaderMap,
) -> Result<Response> {
    let resource = resource_or_404(&resource)?;
    if !is_plausible_id(&id) {
        return Err(ApiError::NotFound(format!("no {resource} has that id")));
    }
    let key = CacheKey::item(store.tenant.store_id, resource, &id);
    respond(state.catalog.get(&store.tenant, key).await, &headers)
}

/// Turns a lookup into the answer: 200 with the cached bytes, 304 when the client's
/// `If-None-Match` matches, 404 for a remembered Biz 404, 503 when nothing can be served.
fn respond(lookup: Result<Lookup, Unavailable>, headers: &HeaderMap) -> Result<Response> {
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
        response.headers_mut().insert("x-cache", x_cache);
        return Ok(response);
    }
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| entry::matches_if_none_match(v.as_bytes(), &entry.etag));
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
    h.insert("x-cache", x_cache);
    Ok(response)
}
