//! The persistence seam for analytics events, page views, sessions and salts (issue: admin and analytics).

use async_trait::async_trait;

#[async_trait]
pub trait AnalyticsRepo {}
