//! The one error type every handler returns, rendered as RFC 9457 problem+json.
//!
//! `code` is the stable, machine-readable part of an answer (CONTRACT §4); `detail` is for
//! people. Internal causes are logged here, once, and never shown to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::db::DbError;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    NotFound(String),
    #[error("no store matches this request")]
    StoreNotFound,
    #[error("the method is not allowed on this route")]
    MethodNotAllowed,
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("{0}")]
    Conflict(String),
    /// 422 with a route-specific code (`service_not_found`, `reserved_event_name`, …).
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    /// Any other 4xx with its own stable code (`already_confirmed`, `draft_expired`, …).
    #[error("{detail}")]
    Other {
        status: StatusCode,
        code: &'static str,
        detail: String,
    },
    /// Biz could not answer; `retry_after` seconds is sent as `Retry-After`. `detail` is what
    /// went wrong upstream (Biz's status or text, a hint about our Biz credentials): it goes
    /// to the log only. The client is told what it can do (see [`upstream_guidance`]).
    #[error("{detail}")]
    UpstreamUnavailable {
        status: StatusCode,
        detail: String,
        retry_after: Option<u64>,
    },
    #[error("the database is unavailable")]
    DatabaseUnavailable,
    /// 429 `rate_limited`, with `Retry-After` seconds.
    #[error("{detail}")]
    RateLimited { retry_after: u64, detail: String },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::InvalidRequest(detail.into())
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Unprocessable {
            code,
            detail: detail.into(),
        }
    }

    pub fn other(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self::Other {
            status,
            code,
            detail: detail.into(),
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound(_) | Self::StoreNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Other { status, .. } | Self::UpstreamUnavailable { status, .. } => *status,
            Self::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::NotFound(_) => "not_found",
            Self::StoreNotFound => "store_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::Conflict(_) => "conflict",
            Self::Unprocessable { code, .. } | Self::Other { code, .. } => code,
            Self::UpstreamUnavailable { .. } => "upstream_unavailable",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::RateLimited { .. } => "rate_limited",
            Self::Internal(_) => "internal_error",
        }
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Conflict(what) => Self::Conflict(what),
            DbError::Unavailable(cause) => {
                tracing::warn!(error = %format!("{cause:#}"), "database unavailable");
                Self::DatabaseUnavailable
            }
            DbError::Other(cause) => Self::Internal(cause),
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
}

/// Renders a problem document. Also used by the middleware that rewrites the framework's own
/// error answers, so there is exactly one shape of error on the wire.
pub fn problem_response(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = Problem {
        kind: format!("https://docs.mango.store/problems/{code}"),
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
        code,
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = (status, bytes).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

/// What a client can do about an upstream failure (CONTRACT §4: no internal messages).
fn upstream_guidance(status: StatusCode) -> &'static str {
    if status == StatusCode::BAD_GATEWAY {
        "Biz, the back office behind this store, did not give a usable answer; nothing was \
         changed, so the same request can be retried safely"
    } else {
        "Biz, the back office behind this store, cannot be reached right now and no saved \
         copy can stand in; try again after the Retry-After delay"
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            Self::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "internal error");
                "an internal error occurred; it has been logged".to_string()
            }
            Self::UpstreamUnavailable { status, detail, .. } => {
                tracing::warn!(status = status.as_u16(), cause = %detail, "answered: upstream unavailable");
                upstream_guidance(*status).to_string()
            }
            other => other.to_string(),
        };
        let mut response = problem_response(status, self.code(), &detail);
        let retry_after = match &self {
            Self::UpstreamUnavailable { retry_after, .. } => *retry_after,
            Self::DatabaseUnavailable => Some(5),
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
