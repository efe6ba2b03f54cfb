//! Privacy-friendly analytics (CONTRACT §9): `POST /api/v1/analytics/events` from storefronts.
//! No cookies: visitors and sessions are derived from a daily-salted hash (see [`visitor`]).
//! The admin summary lives in `admin::analytics`; the queries in `db::sqlite::analytics`.

pub mod event;
mod ingest;
pub mod visitor;

use axum::Router;
use axum::routing::post;

pub use self::visitor::{DailySalts, purge_old_salts};
use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/analytics/events", post(ingest::events))
}
