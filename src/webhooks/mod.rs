//! Webhooks from Biz (CONTRACT §6).

pub mod signature;

use crate::app::ApiRouter;

pub fn routes() -> ApiRouter {
    ApiRouter::new()
}
