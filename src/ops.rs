//! Operations endpoints (CONTRACT §11): `/healthz`, `/readyz`, `/metrics`.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::app::{ApiRouter, AppState};
use crate::error::{ApiError, Result};
use crate::openapi::problems;
use crate::openapi::schemas::Health;

/// `/readyz` answers within this, whatever the database does.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub fn routes() -> ApiRouter {
    ApiRouter::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(crate::openapi::openapi_json))
}

/// Liveness
///
/// The process is up. Never touches the database.
#[utoipa::path(get, path = "/healthz", operation_id = "getHealth", tag = "operations",
    responses((status = 200, description = "`{\"data\":{\"status\":\"ok\"}}`", body = Health)))]
pub async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"data": {"status": "ok"}}))
}

problems!(ReadyProblems {
    503 "The database does not answer within 2 seconds" [database_unavailable],
});

/// Readiness
///
/// The database answers and can take writes, within 2 seconds.
#[utoipa::path(get, path = "/readyz", operation_id = "getReadiness", tag = "operations",
    responses((status = 200, description = "`{\"data\":{\"status\":\"ready\"}}`", body = Health), ReadyProblems))]
pub async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse> {
    match tokio::time::timeout(READY_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => Ok(axum::Json(json!({"data": {"status": "ready"}}))),
        Ok(Err(err)) => Err(ApiError::from(err)),
        Err(_) => Err(ApiError::DatabaseUnavailable),
    }
}

/// Prometheus metrics
///
/// Requests, cache, Biz calls, webhooks, drafts, jobs, the database pool.
#[utoipa::path(get, path = "/metrics", operation_id = "getMetrics", tag = "operations",
    responses((status = 200, description = "Prometheus exposition format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let pool = state.db.pool_stats();
    metrics::gauge!("mango_db_pool_connections", "state" => "max").set(pool.max_size as f64);
    metrics::gauge!("mango_db_pool_connections", "state" => "open").set(pool.size as f64);
    metrics::gauge!("mango_db_pool_connections", "state" => "in_use").set(pool.in_use as f64);
    metrics::gauge!("mango_db_pool_waiting").set(pool.waiting as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics_handle().render(),
    )
}
