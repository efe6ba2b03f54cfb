//! Privacy-friendly analytics (CONTRACT §9): `POST /api/v1/analytics/events` from storefronts.
//! No cookies: visitors and sessions are derived from a daily-salted hash (see [`visitor`]).
//! The admin summary lives in `admin::analytics`; the queries in `db::sqlite::analytics`.

pub mod event;
pub mod ingest;
pub mod url_policy;
pub mod visitor;

use axum::routing::post;

pub use self::visitor::{DailySalts, purge_old_salts};
use crate::app::ApiRouter;

pub fn routes() -> ApiRouter {
    ApiRouter::new().route("/api/v1/analytics/events", post(ingest::events))
}
