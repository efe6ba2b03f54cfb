//! The two small web applications the binary embeds (CONTRACT §15): the reference storefront
//! at `/` of a store's host (when `MANGO_STOREFRONT=true`) and the merchant console at
//! `/console/`. Plain HTML, CSS and JavaScript, compiled in with `include_str!` (one binary, no
//! build step), each file served with a strong ETag and headers that forbid inline script,
//! sniffing and framing. The pages talk to the service only through its public and admin APIs.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::ApiError;
use crate::tenant::Store;

const CSP: HeaderValue = HeaderValue::from_static("default-src 'self'");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
const DENY: HeaderValue = HeaderValue::from_static("DENY");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
const NO_REFERRER: HeaderValue = HeaderValue::from_static("same-origin");

const STOREFRONT_HTML: &str = include_str!("storefront/index.html");
const CONSOLE_HTML: &str = include_str!("console/index.html");

/// A static file and its strong ETag.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
    etag: HeaderValue,
}

fn etag_of(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    HeaderValue::try_from(format!("\"{}\"", hex::encode(&digest[..12])))
        .expect("hex is a valid header value")
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    [
        (
            "storefront.css",
            "text/css; charset=utf-8",
            include_str!("storefront/storefront.css"),
        ),
        (
            "storefront.js",
            "text/javascript; charset=utf-8",
            include_str!("storefront/storefront.js"),
        ),
        (
            "console.css",
            "text/css; charset=utf-8",
            include_str!("console/console.css"),
        ),
        (
            "console.js",
            "text/javascript; charset=utf-8",
            include_str!("console/console.js"),
        ),
    ]
    .into_iter()
    .map(|(name, content_type, body)| Asset {
        name,
        content_type,
        body,
        etag: etag_of(body.as_bytes()),
    })
    .collect()
});

/// The pages and their files. Not part of the API (nor of its OpenAPI document).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(storefront))
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(console))
        .route("/_web/{file}", get(asset))
}

/// Answers `body` with its ETag (304 when `If-None-Match` has it) and the page headers.
fn respond(
    request: &HeaderMap,
    content_type: &'static str,
    body: Vec<u8>,
    etag: HeaderValue,
) -> Response {
    let matched = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == etag.to_str().unwrap_or_default() || t.trim() == "*")
        });
    let mut response = if matched {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    headers.insert(header::CACHE_CONTROL, NO_CACHE);
    headers.insert(header::CONTENT_SECURITY_POLICY, CSP);
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    headers.insert(header::X_FRAME_OPTIONS, DENY);
    headers.insert(header::REFERRER_POLICY, NO_REFERRER);
    response
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == file)
        .ok_or_else(|| ApiError::NotFound("no such file".into()))?;
    Ok(respond(
        &headers,
        asset.content_type,
        asset.body.as_bytes().to_vec(),
        asset.etag.clone(),
    ))
}

/// The store a page is for: the one the request names (`Host`, `X-Store-Id`), else
/// `MANGO_STOREFRONT_STORE` (the demo's store at `http://127.0.0.1:8080/`).
async fn page_store(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<std::sync::Arc<Store>>, ApiError> {
    match state.tenants.resolve(headers).await {
        Ok(store) => Ok(Some(store)),
        Err(ApiError::StoreNotFound) => match &state.config.storefront_store {
            Some(slug) => state.tenants.resolve_slug(slug).await,
            None => Ok(None),
        },
        Err(err) => Err(err),
    }
}

/// A page with the store's slug and name filled in (HTML-escaped).
fn render(template: &str, store: Option<&Store>) -> Vec<u8> {
    let (slug, name) = store.map_or(("", "Mango store"), |s| {
        (s.record.slug.as_str(), s.record.name.as_str())
    });
    template
        .replace("{{STORE}}", &escape(slug))
        .replace("{{NAME}}", &escape(name))
        .into_bytes()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const HTML: &str = "text/html; charset=utf-8";

/// `GET /`: the reference storefront of the request's store.
async fn storefront(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !state.config.storefront {
        return Err(ApiError::NotFound("no route matches this path".into()));
    }
    let store = page_store(&state, &headers)
        .await?
        .ok_or(ApiError::StoreNotFound)?;
    crate::context::record_store(&store.slug);
    let body = render(STOREFRONT_HTML, Some(&store));
    let etag = etag_of(&body);
    Ok(respond(&headers, HTML, body, etag))
}

/// `GET /console/`: the merchant console, the store's slug filled in when the host names one.
async fn console(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let store = page_store(&state, &headers).await.unwrap_or(None);
    let body = render(CONSOLE_HTML, store.as_deref());
    let etag = etag_of(&body);
    Ok(respond(&headers, HTML, body, etag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_have_no_inline_script_or_style() {
        for page in [STOREFRONT_HTML, CONSOLE_HTML] {
            assert!(!page.contains("<script>"), "inline script");
            assert!(!page.contains("<style"), "inline style");
            assert!(!page.contains(" style="), "style attribute");
            assert!(!page.contains(" onclick="), "event attribute");
            for attr in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
                assert!(!page.contains(attr), "another host: {attr}");
            }
        }
        for asset in ASSETS.iter() {
            assert!(!asset.body.contains("@import"), "{}", asset.name);
        }
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(
            escape("<b>\"A&B\"</b>"),
            "&lt;b&gt;&quot;A&amp;B&quot;&lt;/b&gt;"
        );
    }
}
