//! The store's catalog cache: `POST …/cache/purge` and `GET …/cache` (statistics).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::AdminStore;
use crate::app::AppState;
use crate::catalog::is_plausible_id;
use crate::domain::{Resources, Scope};
use crate::error::{ApiError, Result};
use crate::extract::Json;
use crate::openapi::problems;
use crate::openapi::schemas::{CachePurge, CachePurged, CacheStats};

/// `{}` (everything), `{"resource"}` (one resource) or `{"resource","id"}` (one item and the
/// list holding it).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purge {
    resource: Option<String>,
    id: Option<String>,
}

impl Purge {
    fn scope(self, resources: &Resources) -> Result<Scope> {
        let resource = self
            .resource
            .map(|r| {
                resources.parse(&r).ok_or_else(|| {
                    let names: Vec<&str> = resources.catalog().iter().map(|r| r.as_str()).collect();
                    ApiError::invalid(format!(
                        "`resource` must be a declared resource: {}",
                        names.join(", ")
                    ))
                })
            })
            .transpose()?;
        match (resource, self.id) {
            (None, None) => Ok(Scope::Store),
            (Some(r), None) => Ok(Scope::Resource(r)),
            (Some(r), Some(id)) if is_plausible_id(&id) => Ok(Scope::Item(r, id)),
            (Some(_), Some(_)) => Err(ApiError::invalid(
                "`id` must be 1 to 128 printable characters without spaces",
            )),
            (None, Some(_)) => Err(ApiError::invalid("`id` needs a `resource`")),
        }
    }
}

problems!(PurgeProblems {
    400 "Malformed JSON, an unknown field, an undeclared resource, or an `id` without a `resource`" [invalid_request],
    413 "The body is larger than 256 KiB" [payload_too_large],
    503 "The database is down (memory was purged all the same)" [database_unavailable],
});

/// Purges a store's cache
///
/// Everything (`{}`), a resource (`{"resource"}`), or one item and the list holding it
/// (`{"resource", "id"}`), in memory and in SQL.
#[utoipa::path(post, path = "/admin/v1/stores/{slug}/cache/purge", operation_id = "purgeStoreCache", tag = "admin", security(("bearer" = [])),
    params(("slug" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{1,62}$", description = "The store's slug")),
    request_body = CachePurge,
    responses((status = 200, description = "What was purged", body = CachePurged), super::stores::AdminStoreProblems, PurgeProblems))]
pub async fn purge(
    State(state): State<AppState>,
    AdminStore(store): AdminStore,
    Json(body): Json<Purge>,
) -> Result<impl IntoResponse> {
    let scope = body.scope(state.catalog.resources())?;
    state.catalog.invalidate(store.id, &scope).await?;
    // Purged everywhere before the answer: other instances apply it (or lose their lease).
    state.catalog.await_peers().await;
    let (label, purged) = match &scope {
        Scope::Store => ("store", json!({"scope": "store"})),
        Scope::Resource(r) => ("resource", json!({"scope": "resource", "resource": r})),
        Scope::Item(r, id) => ("item", json!({"scope": "item", "resource": r, "id": id})),
    };
    tracing::info!(store = %store.slug, scope = label, "cache purged by admin");
    metrics::counter!("mango_admin_cache_purges_total", "scope" => label).increment(1);
    Ok(axum::Json(json!({"data": {"purged": purged}})))
}

#[derive(Serialize, Default)]
struct Entries {
    /// Entries in this instance's memory.
    memory: u64,
    /// Rows in the shared SQL cache tables.
    sql: i64,
}

#[derive(Serialize, Default)]
struct ResourceReport {
    entries: Entries,
    hits: u64,
    misses: u64,
    stale: u64,
}

/// A store's cache statistics
///
/// Per resource: entries (this instance's memory, the shared SQL tables), hits, misses,
/// stale serves.
#[utoipa::path(get, path = "/admin/v1/stores/{slug}/cache", operation_id = "getStoreCacheStats", tag = "admin", security(("bearer" = [])),
    params(("slug" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{1,62}$", description = "The store's slug")),
    responses((status = 200, description = "Per resource", body = CacheStats), super::stores::AdminStoreProblems))]
pub async fn stats(
    State(state): State<AppState>,
    AdminStore(store): AdminStore,
) -> Result<impl IntoResponse> {
    let mut report: BTreeMap<&str, ResourceReport> = BTreeMap::new();
    for s in state.catalog.stats(store.id) {
        let r = report.entry(s.resource.as_str()).or_default();
        r.entries.memory = s.memory_entries;
        r.hits = s.hits;
        r.misses = s.misses;
        r.stale = s.stale;
    }
    // Rows of resources no longer declared are not reported.
    for (resource, rows) in state.db.cache_row_counts(store.id).await? {
        if let Some(r) = report.get_mut(resource.as_str()) {
            r.entries.sql = rows;
        }
    }
    Ok(axum::Json(json!({"data": report})))
}
