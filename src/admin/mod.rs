//! The admin API (CONTRACT §10) for operators and merchants.

pub mod auth;
pub mod settings;
pub mod stores;

use axum::routing::post;

use crate::app::ApiRouter;

pub fn routes() -> ApiRouter {
    ApiRouter::new().route("/admin/v1/stores", post(stores::create))
}
