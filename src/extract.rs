//! Extractors whose rejections are our problem+json, never axum's plain text.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Longest `detail` echoed back from a parser message (they can quote the input).
const MAX_DETAIL: usize = 300;

fn shorten(text: String) -> String {
    if text.len() <= MAX_DETAIL {
        return text;
    }
    let mut end = MAX_DETAIL;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A JSON object body; every JSON body this service takes is an object. An array or a scalar
/// is refused even when `T` could read it: serde's derived structs also read an array
/// positionally, so `[null, null]` was a valid cache purge and store patch.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !has_json_content_type(request.headers()) {
            return Err(ApiError::invalid(MISSING_JSON_CONTENT_TYPE));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::from(JsonRejection::from(e)))?;
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') {
            return Err(ApiError::invalid("the request body must be a JSON object"));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(Self(value))
    }
}

const MISSING_JSON_CONTENT_TYPE: &str =
    "the request body must be JSON with `Content-Type: application/json`";

/// `application/json` or `application/*+json`, any parameters, any case (as axum's `Json`).
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn has_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json_content_type)
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge(crate::app::BODY_LIMIT);
        }
        if is_body_timeout(&rejection) {
            return ApiError::other(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body did not arrive in time; send it again",
            );
        }
        let detail = match &rejection {
            JsonRejection::MissingJsonContentType(_) => MISSING_JSON_CONTENT_TYPE.to_string(),
            other => other.body_text(),
        };
        ApiError::InvalidRequest(shorten(detail))
    }
}

/// Whether the body stopped arriving before `MANGO_BODY_READ_TIMEOUT_SECS`.
fn is_body_timeout(rejection: &JsonRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(err) = source {
        if err.is::<crate::connections::BodyReadTimeout>() {
            return true;
        }
        source = err.source();
    }
    false
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::InvalidRequest(shorten(rejection.body_text()))
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::InvalidRequest(shorten(rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Optional {
        a: Option<String>,
        b: Option<String>,
    }

    async fn read(content_type: &str, body: &'static str) -> Result<Optional, ApiError> {
        let request = Request::builder()
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        Json::<Optional>::from_request(request, &())
            .await
            .map(|j| j.0)
    }

    #[tokio::test]
    async fn only_an_object_is_a_body() {
        assert!(read("application/json", r#" {"a": "x"}"#).await.is_ok());
        assert!(
            read("application/merge-patch+json; charset=utf-8", "{}")
                .await
                .is_ok()
        );
        // serde's derived structs read arrays positionally; a body must be an object.
        for body in ["[null, null]", "null", "1", "\"a\"", ""] {
            let err = read("application/json", body).await.unwrap_err();
            assert_eq!(err.code(), "invalid_request", "{body}");
        }
        let err = read("text/plain", "{}").await.unwrap_err();
        assert!(err.to_string().contains("Content-Type"), "{err}");
    }
}
