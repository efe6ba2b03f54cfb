//! SQLite: the webhook inbox (issue: webhooks).

use async_trait::async_trait;

use super::SqliteDb;
use crate::db::InboxRepo;

#[async_trait]
impl InboxRepo for SqliteDb {}
