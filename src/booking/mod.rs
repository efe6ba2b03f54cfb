//! Booking drafts (CONTRACT §8): a storefront client picks a service, a time and optionally a
//! staff member; the store holds the draft for `MANGO_DRAFT_TTL_SECS`, then confirms it with
//! Biz exactly once.
//!
//! - `draft` — the domain: ids, the request and its checks, exact instants, the client's view.
//! - `handlers` — the routes: create (idempotent per `Idempotency-Key`), read, cancel, confirm.
//! - `confirm` — exactly-once confirmation: database claim, Biz idempotency, in-memory flights.
//! - `expiry` — the maintenance job (expiry, erasure of customer details, key retention).
//!
//! State machine: `draft → confirming → confirmed | failed`, `confirming → draft` when Biz
//! gives no definite answer, `draft → expired | cancelled`. Persistence: `db::DraftRepo`.

mod confirm;
pub mod draft;
mod expiry;
pub mod handlers;

use axum::routing::{get, post};

pub use self::confirm::ConfirmFlights;
pub use self::expiry::expire_booking_drafts;
use crate::app::ApiRouter;

const ROUTE_DRAFT: &str = "/api/v1/booking/draft";
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// A create's `Idempotency-Key` answers the same draft for this long.
pub const IDEMPOTENCY_KEY_TTL_MS: i64 = DAY_MS;
/// Customer details of a draft are erased this long after it ended.
pub const ERASE_AFTER_MS: i64 = DAY_MS;

pub fn routes() -> ApiRouter {
    ApiRouter::new()
        .route(ROUTE_DRAFT, post(handlers::create))
        .route(
            "/api/v1/booking/draft/{id}",
            get(handlers::get).delete(handlers::cancel),
        )
        .route(
            "/api/v1/booking/draft/{id}/confirm",
            post(handlers::confirm),
        )
}
