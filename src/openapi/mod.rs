//! `GET /openapi.json`: the OpenAPI 3.1 description, generated from the handlers'
//! `#[utoipa::path]` annotations. `tests/openapi.rs` fails when the router has a route the
//! document lacks, or the other way round.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// An RFC 9457 problem document, the body of every error answer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    /// A URI naming the problem type.
    #[schema(
        rename = "type",
        example = "https://docs.mango.store/problems/not_found"
    )]
    kind: String,
    #[schema(example = "Not Found")]
    title: String,
    #[schema(example = 404)]
    status: u16,
    #[schema(example = "no route matches this path")]
    detail: String,
    /// Stable, machine-readable: `invalid_request`, `not_found`, `store_not_found`, …
    #[schema(example = "not_found")]
    code: String,
}

struct Security;

impl Modify for Security {
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
        description = "Storefront cache and sync layer between Mango Biz and online-store themes."
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
        (name = "storefront", description = "Public catalog and store settings; the store comes from X-Store-Id or Host"),
        (name = "webhooks", description = "Signed deliveries from Biz"),
        (name = "booking", description = "Booking drafts, confirmed exactly once upstream"),
        (name = "analytics", description = "Cookieless event ingest"),
        (name = "admin", description = "Operators and merchants (bearer token)"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// The document as JSON text, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the OpenAPI document serialises")
    })
}

/// The OpenAPI 3.1 description of every route.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "operations",
    responses((status = 200, description = "This document", content_type = "application/json", body = serde_json::Value)))]
pub async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}
