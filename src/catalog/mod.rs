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
use crate::openapi::problems;
use crate::openapi::responses::cached_answers;
use crate::openapi::schemas::PublicStoreAnswer;
use crate::tenant::CurrentStore;

/// How a storefront request names its store: `X-Store-Id`, or else the `Host` header (a
/// custom domain, or `SLUG.MANGO_BASE_DOMAIN`; a port is ignored), which the document cannot
/// list as a parameter.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct StoreHeaders {
    /// The store's slug; wins over `Host`. An unknown store is 404 `store_not_found`.
    #[param(
        rename = "X-Store-Id",
        pattern = "^[a-z0-9][a-z0-9-]{1,62}$",
        example = "demo"
    )]
    x_store_id: Option<String>,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct ConditionalHeaders {
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

problems!(StoreProblems {
    404 "No store matches X-Store-Id or Host" [store_not_found],
});

/// The store's public settings.
#[utoipa::path(get, path = "/api/v1/store", operation_id = "getStore", tag = "storefront",
    params(StoreHeaders),
    responses(
        (status = 200, description = "`slug, name, template, theme, custom_domain`", body = PublicStoreAnswer,
            headers(("Cache-Control" = String, description = "`no-cache`"))),
        StoreProblems,
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
    /// Only these items, in this order, each once (comma-separated, at most 100, no empty
    /// entry); ids not in the list are left out.
    #[param(pattern = "^[^,]+(,[^,]+){0,99}$", example = "svc_1,svc_2")]
    ids: Option<String>,
    /// Page size (1–500); the answer then carries `next_cursor`.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page of the same query (needs `limit`); opaque, and
    /// 400 `invalid_cursor` for any other query's cursor or a garbled one.
    cursor: Option<String>,
}

cached_answers!(
    CatalogListAnswers,
    "CatalogListAnswer",
    "`{\"data\": [...]}`; with `limit`, also `next_cursor`"
);

problems!(CatalogListProblems {
    400 "A bad parameter (named in `detail`), or a cursor this query did not issue" [invalid_request, invalid_cursor],
    404 "An undeclared resource, or no such store" [not_found, store_not_found],
    503 "Biz failed and no copy is young enough" [upstream_unavailable],
});

/// A resource's items
///
/// Every item of a resource, all of Biz's pages joined, in Biz's order; narrowed by
/// `FIELD=VALUE` filters, `ids` and `limit`/`cursor` pages, all answered from the one cached
/// list (a filter or a page never makes its own Biz call).
///
/// Filters: any other query parameter `FIELD=VALUE` (`FIELD` matching `[a-z_][a-z0-9_]{0,63}`,
/// a value of at most 256 bytes) keeps the items whose top-level `FIELD` equals `VALUE` (a
/// string its text; a number, `true` or `false` their JSON text) or, for an array, contains
/// it; several must all hold. `staff?service_ids=svc_1` is the staff who perform `svc_1`.
/// A parameter given twice is 400 `invalid_request`.
#[utoipa::path(get, path = "/api/v1/{resource}", operation_id = "listCatalogItems", tag = "storefront",
    params(("resource" = String, Path, description = "A declared resource: `services`, `products`, `staff` and those the operator declared"), ListQueryParams, StoreHeaders, ConditionalHeaders),
    responses(CatalogListAnswers, CatalogListProblems))]
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

cached_answers!(
    CatalogItemAnswers,
    "CatalogItemAnswer",
    "`{\"data\": {...}}`"
);

problems!(CatalogItemProblems {
    400 "An undecodable path" [invalid_request],
    404 "An undeclared resource, an item Biz does not have (remembered briefly), or no such store" [not_found, store_not_found],
    503 "Biz failed and no copy is young enough" [upstream_unavailable],
});

/// One item, as Biz has it.
#[utoipa::path(get, path = "/api/v1/{resource}/{id}", operation_id = "getCatalogItem", tag = "storefront",
    params(("resource" = String, Path, description = "A declared resource"), ("id" = String, Path, description = "Biz's item id"), StoreHeaders, ConditionalHeaders),
    responses(CatalogItemAnswers, CatalogItemProblems))]
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
