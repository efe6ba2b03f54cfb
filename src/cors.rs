//! CORS preflights for the storefront API (CONTRACT §14).
//!
//! The headers of ordinary answers are added by the request layer (`context`), once the
//! store is resolved; this module answers `OPTIONS` preflights. They reach it through the
//! router's fallbacks, so no route needs an `OPTIONS` method of its own and every other
//! `OPTIONS` stays a 405 (or a 404 on an unknown path).

use axum::extract::State;
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::context::{STOREFRONT_PREFIX, check_origin};
use crate::error::ApiError;

const ALLOW_METHODS: HeaderValue = HeaderValue::from_static("GET, POST, DELETE");
const ALLOW_HEADERS: HeaderValue = HeaderValue::from_static(
    "content-type, idempotency-key, if-none-match, x-store-id, x-request-id",
);
const MAX_AGE: HeaderValue = HeaderValue::from_static("600");

/// The router's answer to a known path with a method it does not serve.
pub async fn method_not_allowed(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match preflight(&state, &method, &uri, &headers).await {
        Some(answer) => answer,
        None => ApiError::MethodNotAllowed.into_response(),
    }
}

/// The router's answer to an unknown path.
pub async fn not_found(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match preflight(&state, &method, &uri, &headers).await {
        Some(answer) => answer,
        None => ApiError::NotFound("no route matches this path".into()).into_response(),
    }
}

/// `None` when the request is no storefront preflight.
async fn preflight(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Option<Response> {
    if method != Method::OPTIONS
        || !uri.path().starts_with(STOREFRONT_PREFIX)
        || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return None;
    }
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .unwrap_or_default();
    let allowed = match state.tenants.preflight_allows(headers, origin).await {
        Ok(allowed) => allowed,
        Err(err) => return Some(err.into_response()),
    };
    if !allowed {
        return Some(
            ApiError::other(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "this origin may not call this store's API from a browser",
            )
            .into_response(),
        );
    }
    // The request layer adds `Access-Control-Allow-Origin` and `Vary: Origin`.
    check_origin(|_| true);
    Some(
        (
            StatusCode::NO_CONTENT,
            [
                (header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS),
                (header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS),
                (header::ACCESS_CONTROL_MAX_AGE, MAX_AGE),
            ],
        )
            .into_response(),
    )
}
