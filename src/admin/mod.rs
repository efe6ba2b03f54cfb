//! The admin API (CONTRACT §10) for operators and merchants.

pub mod auth;
pub mod settings;
mod stores;

use axum::Router;
use axum::routing::post;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/v1/stores", post(stores::create))
}
