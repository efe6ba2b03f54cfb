//! Booking (see CONTRACT.md). Routes are added in this module's issue.

use crate::app::ApiRouter;

pub fn routes() -> ApiRouter {
    ApiRouter::new()
}
