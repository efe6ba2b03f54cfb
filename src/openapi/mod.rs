//! `GET /openapi.json`: the OpenAPI 3.1 description of every route.
//!
//! The operations come from the handlers' `#[utoipa::path]` annotations, their error answers
//! from a [`responses::problems!`] list beside each handler, the bodies from [`schemas`];
//! [`finish`] then adds what holds for every operation (`x-request-id`, the `default`
//! problem), the links between operations, the CORS preflights and the declared resources.
//! `tests/openapi.rs` fails when the router has a route the document lacks, or the other way
//! round, and validates the document against the OpenAPI 3.1 schema; Schemathesis holds the
//! service to it in CI (`.ci/schemathesis`).

mod finish;
pub mod responses;
pub mod schemas;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

pub use self::responses::Problem;
pub(crate) use self::responses::problems;
use crate::app::AppState;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mango-store",
        description = "Storefront cache and sync layer between Mango Biz and online-store themes. \
            Every answer carries `x-request-id`; every error is RFC 9457 `application/problem+json` \
            with a stable `code`, listed per operation. Storefront routes name their store with \
            `X-Store-Id: SLUG`, or with the `Host` header (a custom domain or `SLUG.MANGO_BASE_DOMAIN`); \
            the header wins."
    ),
    paths(
        crate::catalog::store_settings,
        crate::catalog::list,
        crate::catalog::item,
        crate::availability::availability,
        crate::webhooks::receiver::receive,
        crate::booking::handlers::create,
        crate::booking::handlers::get,
        crate::booking::handlers::confirm,
        crate::booking::handlers::cancel,
        crate::analytics::ingest::events,
        crate::admin::stores::create,
        crate::admin::stores::get,
        crate::admin::stores::update,
        crate::admin::keys::rotate,
        crate::admin::cache::purge,
        crate::admin::cache::stats,
        crate::admin::webhooks::recent,
        crate::admin::analytics::summary,
        crate::ops::healthz,
        crate::ops::readyz,
        crate::ops::metrics,
        openapi_json,
    ),
    components(schemas(Problem)),
    modifiers(&Security),
    tags(
        (name = "storefront", description = "Public catalog, list queries and store settings (CONTRACT §5, §12)"),
        (name = "availability", description = "A service's free times (CONTRACT §13)"),
        (name = "booking", description = "Booking drafts, confirmed exactly once upstream (CONTRACT §8)"),
        (name = "analytics", description = "Cookieless event ingest (CONTRACT §9)"),
        (name = "cors", description = "Browser preflights of the storefront API (CONTRACT §14)"),
        (name = "webhooks", description = "Signed deliveries from Biz (CONTRACT §6)"),
        (name = "admin", description = "Operators and merchants, with a bearer token (CONTRACT §10)"),
        (name = "operations", description = "Health, readiness, metrics, this document (CONTRACT §11)"),
    )
)]
pub struct ApiDoc;

/// The document for a service whose declared catalog resources are `resources`.
pub fn document(resources: &[&str]) -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    finish::finish(&mut doc, resources);
    doc
}

/// The document as JSON text, built once per set of declared resources.
fn document_text(resources: &[&str]) -> Arc<str> {
    static BUILT: Mutex<Option<HashMap<String, Arc<str>>>> = Mutex::new(None);
    let key = resources.join(",");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    built
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_insert_with(|| Arc::from(document(resources).to_string()))
        .clone()
}

/// The OpenAPI 3.1 description of every route.
#[utoipa::path(get, path = "/openapi.json", operation_id = "getOpenApiDocument", tag = "operations",
    summary = "This document",
    responses((status = 200, description = "This document", content_type = "application/json", body = serde_json::Value)))]
pub async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    let names: Vec<&str> = state
        .catalog
        .resources()
        .catalog()
        .iter()
        .map(|r| r.as_str())
        .collect();
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_text(&names).to_string(),
    )
}
