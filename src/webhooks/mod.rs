//! Webhooks from Biz (CONTRACT §6).

pub mod signature;

use axum::Router;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
