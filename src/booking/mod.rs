//! Booking (see CONTRACT.md). Routes are added in this module's issue.

use axum::Router;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
