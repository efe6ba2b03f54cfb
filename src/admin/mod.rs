//! The admin API (CONTRACT §10) for operators and merchants. Every `/{slug}` route goes
//! through [`auth::AdminStore`]: 401 without a valid token, 404 `store_not_found` for an
//! unknown store or another store's key.

pub mod analytics;
pub mod auth;
pub mod cache;
pub mod keys;
pub mod settings;
pub mod stores;
pub mod webhooks;

use axum::routing::{get, post};

use crate::app::ApiRouter;

pub fn routes() -> ApiRouter {
    ApiRouter::new()
        .route("/admin/v1/stores", post(stores::create))
        .route(
            "/admin/v1/stores/{slug}",
            get(stores::get).patch(stores::update),
        )
        .route("/admin/v1/stores/{slug}/api-keys", post(keys::rotate))
        .route("/admin/v1/stores/{slug}/cache/purge", post(cache::purge))
        .route("/admin/v1/stores/{slug}/cache", get(cache::stats))
        .route("/admin/v1/stores/{slug}/webhooks", get(webhooks::recent))
        .route("/admin/v1/stores/{slug}/analytics", get(analytics::summary))
}
