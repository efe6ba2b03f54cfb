//! SQLite: booking drafts and idempotency keys (issue: booking).

use async_trait::async_trait;

use super::SqliteDb;
use crate::db::DraftRepo;

#[async_trait]
impl DraftRepo for SqliteDb {}
