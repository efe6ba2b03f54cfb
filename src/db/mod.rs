//! Persistence behind one seam.
//!
//! Handlers see only [`Db`], an `Arc<dyn Database>`; the backend is chosen once at start-up
//! from `MANGO_DATABASE_URL`. Each capability has its own repository trait (stores, cache, …),
//! and every backend implements all of them. Nothing SQLite-specific leaves `db/sqlite/`:
//! times cross the seam as Unix milliseconds, JSON as text, errors as [`DbError`].

mod analytics;
mod drafts;
mod inbox;
pub mod mssql;
pub mod sqlite;
mod url;
mod usage;

use std::sync::Arc;

use async_trait::async_trait;

pub use self::analytics::*;
pub use self::drafts::*;
pub use self::inbox::*;
pub use self::url::{DatabaseUrl, MssqlEncrypt, MssqlUrl};
pub use self::usage::UsageRepo;
use crate::domain::Resource;
pub use crate::domain::Scope;

pub type Db = Arc<dyn Database>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique constraint refused the write; the string says which value clashed.
    #[error("{0}")]
    Conflict(String),
    /// The database cannot be reached or is locked past its timeout: retryable.
    #[error("database unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    #[error("database error: {0:#}")]
    Other(anyhow::Error),
}

pub type DbResult<T> = Result<T, DbError>;

/// Opens the backend named by the URL and applies its migrations.
pub async fn connect(url: &DatabaseUrl) -> anyhow::Result<Db> {
    match url {
        DatabaseUrl::Sqlite {
            path,
            busy_timeout,
            pool_size,
        } => {
            let db = sqlite::SqliteDb::open(path, *busy_timeout, *pool_size).await?;
            db.migrate().await?;
            Ok(Arc::new(db))
        }
        DatabaseUrl::Mssql(url) => {
            let db = mssql::MssqlDb::open(url).await?;
            db.migrate().await?;
            Ok(Arc::new(db))
        }
    }
}

#[async_trait]
pub trait Database:
    StoreRepo + CacheRepo + InboxRepo + DraftRepo + AnalyticsRepo + UsageRepo + Send + Sync + 'static
{
    /// Applies the migrations that have not run yet; safe when several instances start at once.
    async fn migrate(&self) -> anyhow::Result<()>;
    /// Readiness: the database answers and can take writes (used by `/readyz`).
    async fn ping(&self) -> DbResult<()>;
    /// Claims a delivery ([`InboxRepo::claim_delivery`]) and, when it is this caller's to
    /// process (first or unfinished), invalidates `scopes` in SQL for every store of its
    /// business ([`CacheRepo::invalidate_cache`]). The delivery stays `processing`: the caller
    /// retires memory next, then calls [`InboxRepo::finish_delivery`]. An error means the
    /// invalidation may be incomplete (the delivery is then unrecorded or still `processing`,
    /// so Biz's retry redoes it).
    ///
    /// By default in steps (the claim, then every invalidation even if one fails); SQLite
    /// does it all in one write transaction, shared with concurrent deliveries.
    async fn claim_and_invalidate(
        &self,
        delivery: &NewDelivery,
        scopes: &[Scope],
        origin: i64,
        now_ms: i64,
    ) -> DbResult<Claim> {
        let claim = self.claim_delivery(delivery).await?;
        if let Claim::First { store_ids } | Claim::Unfinished { store_ids } = &claim {
            let invalidations = store_ids.iter().flat_map(|store_id| {
                scopes
                    .iter()
                    .map(|scope| self.invalidate_cache(*store_id, scope, origin, now_ms))
            });
            let results = futures::future::join_all(invalidations).await;
            results.into_iter().collect::<DbResult<()>>()?;
        }
        Ok(claim)
    }
    /// Connection pool usage, for `/metrics`.
    fn pool_stats(&self) -> PoolStats;
    /// Closes the pool: in-use connections finish, no new ones are handed out.
    fn close(&self);
    /// The handle the invalidation-feed tailer uses (`catalog::feed`): on SQL Server a
    /// connection of its own, so that requests queueing for the pool cannot starve the lease
    /// that lets this instance serve memory (without it every read goes to the database, which
    /// would lengthen the queue). SQLite's reads are short and its writes already go through
    /// one queue: the same handle.
    fn feed_lane(&self) -> Db;
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub max_size: usize,
    pub size: usize,
    pub in_use: usize,
    pub waiting: usize,
}

// ---------------------------------------------------------------------------------------------
// Stores (store_config.store_settings)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct StoreRecord {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub biz_business_id: String,
    pub template: String,
    /// JSON object text.
    pub theme: String,
    pub custom_domain: Option<String>,
    pub is_published: bool,
    /// Normalised CORS origins (CONTRACT §14), besides the store's own site.
    pub allowed_origins: Vec<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct NewStore {
    pub slug: String,
    pub name: String,
    pub biz_business_id: String,
    pub template: String,
    pub theme: String,
    pub custom_domain: Option<String>,
    pub allowed_origins: Vec<String>,
    /// SHA-256 hex of the store API key; the key itself is never stored.
    pub api_key_hash: String,
    pub now_ms: i64,
}

/// A partial update; `None` leaves a field as it is. `custom_domain: Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct StorePatch {
    pub name: Option<String>,
    pub template: Option<String>,
    pub theme: Option<String>,
    pub custom_domain: Option<Option<String>>,
    pub is_published: Option<bool>,
    /// `Some(vec![])` clears the list.
    pub allowed_origins: Option<Vec<String>>,
}

#[async_trait]
pub trait StoreRepo {
    /// `DbError::Conflict` when the slug or custom domain is taken.
    async fn create_store(&self, new: NewStore) -> DbResult<StoreRecord>;
    async fn store_by_slug(&self, slug: &str) -> DbResult<Option<StoreRecord>>;
    async fn store_by_domain(&self, domain: &str) -> DbResult<Option<StoreRecord>>;
    async fn store_by_api_key_hash(&self, hash: &str) -> DbResult<Option<StoreRecord>>;
    async fn stores_by_business(&self, biz_business_id: &str) -> DbResult<Vec<StoreRecord>>;
    async fn update_store(
        &self,
        slug: &str,
        patch: StorePatch,
        now_ms: i64,
    ) -> DbResult<Option<StoreRecord>>;
    /// Replaces the store's API key hash; the old key stops working at once.
    async fn set_api_key_hash(&self, slug: &str, hash: &str, now_ms: i64) -> DbResult<bool>;
    /// Whether any store lists this normalised origin in its `allowed_origins`.
    async fn store_allowing_origin(&self, origin: &str) -> DbResult<bool>;
    /// Appends a settings change to the feed the other instances tail (see
    /// `tenant::tail_store_changes`).
    async fn notify_store_changed(&self, store_id: i64, now_ms: i64) -> DbResult<()>;
    /// The newest settings change's id (0 when none): where a starting instance begins tailing.
    async fn latest_store_change(&self) -> DbResult<i64>;
    /// `(id, store_id)` of the settings changes after `after_id`, oldest first, at most `limit`.
    async fn store_changes_since(&self, after_id: i64, limit: u32) -> DbResult<Vec<(i64, i64)>>;
    /// Deletes settings changes recorded before `before_ms`, at most `limit`.
    async fn prune_store_changes(&self, before_ms: i64, limit: u32) -> DbResult<u64>;
    /// The store's current API key hash (`None`: no such store).
    async fn api_key_hash(&self, slug: &str) -> DbResult<Option<String>>;
    /// Replaces the store's API key hash only if it is still `expected` (one conditional
    /// UPDATE whose row count decides): of concurrent rotations from one key, one wins.
    async fn replace_api_key_hash(
        &self,
        slug: &str,
        expected: &str,
        hash: &str,
        now_ms: i64,
    ) -> DbResult<bool>;
}

/// `allowed_origins` as stored: a JSON array of strings.
pub fn origins_to_json(origins: &[String]) -> String {
    serde_json::to_string(origins).unwrap_or_else(|_| "[]".into())
}

/// The inverse of [`origins_to_json`]; anything unreadable is no origins.
pub fn origins_from_json(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Catalog cache (store_cache.items, one layout for every resource)
// ---------------------------------------------------------------------------------------------

/// A cached item as stored: Biz's JSON text, untouched.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedItem {
    pub payload: String,
    pub fetched_at_ms: i64,
    pub expires_at_ms: i64,
}

/// A complete list, items in Biz's order.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedList {
    pub items: Vec<String>,
    pub fetched_at_ms: i64,
    pub expires_at_ms: i64,
}

/// The generation of a `(store, resource)` pair: bumped by every invalidation of anything in
/// it. A fill records the generation it read before asking Biz and is stored only if the
/// generation is still the same, so a fill that raced an invalidation is never written.
pub type Generation = i64;

/// One invalidation as the other instances see it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    pub id: i64,
    pub origin: i64,
    pub store_id: i64,
    /// The scope's columns (see [`Scope::to_columns`]); the reader maps them back with its
    /// own resource registry.
    pub resource: Option<String>,
    pub item: Option<String>,
}

/// A running instance's acknowledgement of the feed (see `catalog::feed`).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedAck {
    pub instance_id: i64,
    /// The newest feed entry the instance has applied to its memory.
    pub applied_id: i64,
    /// Unix ms, the instance's wall clock: when the feed read behind this ack began.
    pub heartbeat_ms: i64,
}

#[async_trait]
pub trait CacheRepo {
    async fn cache_item(
        &self,
        store_id: i64,
        resource: Resource,
        id: &str,
    ) -> DbResult<(Option<CachedItem>, Generation)>;
    async fn cache_list(
        &self,
        store_id: i64,
        resource: Resource,
    ) -> DbResult<(Option<CachedList>, Generation)>;
    /// Stores the item if the generation is still `expected`; answers whether it did.
    async fn put_cache_item(
        &self,
        store_id: i64,
        resource: Resource,
        id: &str,
        item: &CachedItem,
        expected: Generation,
    ) -> DbResult<bool>;
    /// Replaces the resource's rows with a complete list (items as `(id, payload)`), if the
    /// generation is still `expected`; answers whether it did.
    async fn put_cache_list(
        &self,
        store_id: i64,
        resource: Resource,
        items: &[(String, String)],
        fetched_at_ms: i64,
        expires_at_ms: i64,
        expected: Generation,
    ) -> DbResult<bool>;
    /// Bumps the generation(s), deletes the covered rows and list records, and appends the
    /// invalidation to the feed the other instances tail — all in one transaction. `origin`
    /// names the instance, so it can skip its own entries.
    async fn invalidate_cache(
        &self,
        store_id: i64,
        scope: &Scope,
        origin: i64,
        now_ms: i64,
    ) -> DbResult<()>;
    /// The newest feed entry's id (0 when empty): where a starting instance begins tailing.
    async fn latest_invalidation(&self) -> DbResult<i64>;
    /// Feed entries after `after_id`, oldest first, at most `limit`.
    async fn invalidations_since(&self, after_id: i64, limit: u32) -> DbResult<Vec<FeedEntry>>;
    /// Deletes feed entries created before `before_ms`, at most `limit`.
    async fn prune_invalidations(&self, before_ms: i64, limit: u32) -> DbResult<u64>;
    /// Records the instance's acknowledgement (upsert of its row).
    async fn ack_feed(&self, ack: &FeedAck) -> DbResult<()>;
    /// Every instance's acknowledgement.
    async fn feed_acks(&self) -> DbResult<Vec<FeedAck>>;
    /// Deletes the acknowledgement row of `instance_id` (a stopping instance) and those of
    /// instances silent since `before_ms` (killed ones).
    async fn forget_instances(&self, instance_id: Option<i64>, before_ms: i64) -> DbResult<u64>;
    /// Rows per resource name for the store (admin statistics); resources without rows are
    /// left out.
    async fn cache_row_counts(&self, store_id: i64) -> DbResult<Vec<(String, i64)>>;
    /// Deletes rows that expired before `before_ms` (past the stale window), at most `limit`.
    async fn purge_expired_cache(&self, before_ms: i64, limit: u32) -> DbResult<u64>;
}

/// Rows touched by one batch of a maintenance job; a job loops until a batch comes back short.
pub const BATCH: u32 = 500;

/// Repeats `batch` until it touches fewer than [`BATCH`] rows; answers the total.
pub async fn in_batches<F, Fut>(mut batch: F) -> anyhow::Result<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = DbResult<u64>>,
{
    let mut total = 0;
    loop {
        let n = batch().await?;
        total += n;
        if n < u64::from(BATCH) {
            return Ok(total);
        }
    }
}
