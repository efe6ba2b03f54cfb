//! The persistence seam for booking drafts and idempotency keys (issue: booking).

use async_trait::async_trait;

#[async_trait]
pub trait DraftRepo {}
