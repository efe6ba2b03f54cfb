//! SQLite: analytics events, page views, sessions and salts (issue: admin and analytics).

use async_trait::async_trait;

use super::SqliteDb;
use crate::db::AnalyticsRepo;

#[async_trait]
impl AnalyticsRepo for SqliteDb {}
