//! The persistence seam for the webhook inbox (issue: webhooks).

use async_trait::async_trait;

#[async_trait]
pub trait InboxRepo {}
