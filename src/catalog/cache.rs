//! The read path: memory (moka), then the SQL cache tables, then Biz — and the one
//! invalidation entry point that webhooks and the admin purge call.
//!
//! Three hazards shape this file:
//! - **Stampedes.** Concurrent misses on a key join one fill. The fill runs in its own task,
//!   so a client that disconnects never cancels it or stalls the key for the others.
//! - **Invalidation races.** A fill reads the generation of its `(store, resource)` *before*
//!   it reads SQL or asks Biz. Memory entries carry that generation and stop being served the
//!   moment an invalidation bumps it; the SQL write is conditional on the database's own
//!   generation, checked in the write's transaction. So a fill that began before an
//!   invalidation is never served after it, from memory or from SQL.
//! - **Biz outages.** A copy within TTL + stale window is served as STALE; after a failed
//!   refresh the next readers get that copy at once instead of waiting on Biz again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use moka::Expiry;

use super::entry::{Entry, EntryKind, ResourceSlot, item_body, list_body};
use super::feed::FeedState;
use crate::biz::{AvailabilityQuery, BizClient, BizError, StillWanted};
use crate::clock::SharedClock;
use crate::config::CacheConfig;
use crate::db::{CachedItem, Db, DbError};
use crate::domain::{CacheKey, Resource, Resources, Scope};

/// After a failed refresh, how long readers get the stale copy without a new Biz call.
const RETRY_BACKOFF_MS: i64 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit = 0,
    Miss = 1,
    Stale = 2,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Stale => "STALE",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Lookup {
    pub entry: Arc<Entry>,
    pub status: CacheStatus,
}

/// Nothing can be served: Biz failed and no copy is young enough.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// The store a read is for: its id and the Biz business behind it.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub store_id: i64,
    pub business_id: Arc<str>,
}

type FillResult = Result<Lookup, Unavailable>;

struct Pending {
    fill_id: u64,
    generation: u64,
    /// When it began (monotonic, see `FeedState`).
    started: u64,
    /// How many readers wait for it (`Reading`): a fill still queued for a Biz call when the
    /// last one has left is abandoned (`still_wanted`).
    readers: Arc<AtomicUsize>,
    result: Shared<BoxFuture<'static, FillResult>>,
}

struct EntryLifetime;

impl Expiry<CacheKey, Arc<Entry>> for EntryLifetime {
    fn expire_after_create(
        &self,
        _: &CacheKey,
        entry: &Arc<Entry>,
        _: Instant,
    ) -> Option<Duration> {
        let left = entry.usable_until_ms - crate::clock::unix_ms_now();
        Some(Duration::from_millis(left.max(1) as u64))
    }
    fn expire_after_update(
        &self,
        key: &CacheKey,
        entry: &Arc<Entry>,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, entry, now)
    }
}

struct Inner {
    memory: moka::future::Cache<CacheKey, Arc<Entry>>,
    slots: Mutex<HashMap<(i64, Resource), Arc<ResourceSlot>>>,
    pending: Mutex<HashMap<CacheKey, Pending>>,
    next_fill_id: AtomicU64,
    instance_id: i64,
    /// This instance's place in the invalidation feed and its memory lease (`feed.rs`).
    feed: FeedState,
    coalesced: metrics::Counter,
    /// `mango_cache_requests_total` by resource (registry index) and status, resolved once:
    /// labels come from the declared set, never from request input.
    requests: Vec<[metrics::Counter; 3]>,
    resources: Resources,
    db: Db,
    /// The feed tailer's own handle (`Database::feed_lane`).
    feed_db: Db,
    biz: BizClient,
    clock: SharedClock,
    config: CacheConfig,
}

#[derive(Clone)]
pub struct CatalogCache {
    inner: Arc<Inner>,
}

impl CatalogCache {
    pub fn new(
        db: Db,
        biz: BizClient,
        clock: SharedClock,
        config: CacheConfig,
        resources: Resources,
    ) -> Self {
        let memory = moka::future::Cache::builder()
            .max_capacity(config.max_entries)
            .expire_after(EntryLifetime)
            .eviction_listener(|_, _, cause| {
                if cause.was_evicted() {
                    metrics::counter!("mango_cache_evictions_total").increment(1);
                }
            })
            .build();
        Self {
            inner: Arc::new(Inner {
                memory,
                slots: Mutex::default(),
                pending: Mutex::default(),
                next_fill_id: AtomicU64::new(1),
                instance_id: rand::random::<i64>() & i64::MAX,
                feed: FeedState::default(),
                coalesced: metrics::counter!("mango_cache_fills_coalesced_total"),
                requests: resources
                    .all()
                    .iter()
                    .map(|r| {
                        [CacheStatus::Hit, CacheStatus::Miss, CacheStatus::Stale].map(|status| {
                            metrics::counter!("mango_cache_requests_total", "resource" => r.as_str(), "result" => status.as_str())
                        })
                    })
                    .collect(),
                resources,
                feed_db: db.feed_lane(),
                db,
                biz,
                clock,
                config,
            }),
        }
    }

    /// The declared resources this cache serves.
    pub fn resources(&self) -> &Resources {
        &self.inner.resources
    }

    /// How long a fill of `resource` is fresh, and how long past that it may serve as STALE.
    fn lifetimes(&self, resource: Resource) -> (Duration, Duration) {
        let config = &self.inner.config;
        if resource == self.inner.resources.availability() {
            (config.availability_ttl, config.availability_stale)
        } else {
            (resource.ttl().unwrap_or(config.ttl), config.stale)
        }
    }

    fn slot(&self, store_id: i64, resource: Resource) -> Arc<ResourceSlot> {
        let mut slots = self.inner.slots.lock().expect("slots lock");
        slots.entry((store_id, resource)).or_default().clone()
    }

    /// Serves a key: memory, else SQL, else Biz (see the module docs for the rules). Memory
    /// only while this instance's feed lease holds: without it, another instance may have
    /// answered an invalidation this one has not applied yet (`feed.rs`).
    pub async fn get(&self, tenant: &Tenant, key: CacheKey) -> Result<Lookup, Unavailable> {
        let now = self.inner.clock.now_ms();
        let resource = key.resource;
        let mut stale = None;
        let untrusted_since = self.inner.feed.untrusted_since();
        let in_memory = match untrusted_since {
            None => self.inner.memory.get(&key).await,
            Some(_) => None,
        };
        if let Some(entry) = in_memory.filter(|e| e.is_current()) {
            if now < entry.fresh_until_ms {
                return Ok(self.counted(entry, CacheStatus::Hit, resource));
            }
            if entry.kind == EntryKind::Found && now < entry.usable_until_ms {
                if entry.retry_deferred(now) {
                    return Ok(self.counted(entry, CacheStatus::Stale, resource));
                }
                stale = Some(entry);
            }
        }
        let lookup = self.fill(tenant, key, stale, untrusted_since).await?;
        Ok(self.counted(lookup.entry, lookup.status, resource))
    }

    /// A fresh entry from memory, when this instance may serve one: the HIT of [`Self::get`]
    /// alone, for a caller whose checks before a fill need not run again on a HIT.
    pub async fn fresh_hit(&self, key: &CacheKey) -> Option<Lookup> {
        if self.inner.feed.untrusted_since().is_some() {
            return None;
        }
        let entry = self
            .inner
            .memory
            .get(key)
            .await
            .filter(|e| e.is_current())?;
        (self.inner.clock.now_ms() < entry.fresh_until_ms)
            .then(|| self.counted(entry, CacheStatus::Hit, key.resource))
    }

    fn counted(&self, entry: Arc<Entry>, status: CacheStatus, resource: Resource) -> Lookup {
        let counter = match status {
            CacheStatus::Hit => &entry.slot().hits,
            CacheStatus::Miss => &entry.slot().misses,
            CacheStatus::Stale => &entry.slot().stale,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.inner.requests[resource.index()][status as usize].increment(1);
        Lookup { entry, status }
    }

    /// Joins the fill in flight for this key and generation, or starts one in its own task.
    /// `untrusted_since`: the read began without a memory lease, when; it then joins only a
    /// fill that began after it (an older one may predate an invalidation not yet applied).
    async fn fill(
        &self,
        tenant: &Tenant,
        key: CacheKey,
        stale: Option<Arc<Entry>>,
        untrusted_since: Option<u64>,
    ) -> FillResult {
        let slot = self.slot(key.store_id, key.resource);
        let generation = slot.generation();
        let (result, _reading) = {
            let mut pending = self.inner.pending.lock().expect("pending lock");
            match pending.get(&key) {
                // A fill begun under an older generation may carry pre-invalidation data:
                // new readers never join it.
                Some(p)
                    if p.generation == generation
                        && untrusted_since.is_none_or(|since| p.started >= since) =>
                {
                    self.inner.coalesced.increment(1);
                    (p.result.clone(), Reading::join(&p.readers))
                }
                _ => {
                    let fill_id = self.inner.next_fill_id.fetch_add(1, Ordering::Relaxed);
                    let readers = Arc::new(AtomicUsize::new(0));
                    let reading = Reading::join(&readers);
                    let still_wanted: StillWanted = {
                        let (this, key, readers) = (self.clone(), key.clone(), readers.clone());
                        Arc::new(move || this.still_wanted(&key, fill_id, &readers))
                    };
                    let this = self.clone();
                    let (tenant, task_key) = (tenant.clone(), key.clone());
                    let task = tokio::spawn(async move {
                        // Clears the pending fill however the task ends: were a fill to panic,
                        // its key must not answer the panic's 503 until the next invalidation.
                        let done = FillDone {
                            cache: this.clone(),
                            key: task_key.clone(),
                            fill_id,
                        };
                        let result = this
                            .run_fill(&tenant, &done.key, slot, generation, stale, still_wanted)
                            .await;
                        drop(done);
                        result
                    });
                    let result = async move {
                        task.await
                            .unwrap_or_else(|_| Err(Unavailable("the cache fill failed".into())))
                    }
                    .boxed()
                    .shared();
                    pending.insert(
                        key,
                        Pending {
                            fill_id,
                            generation,
                            started: self.inner.feed.now(),
                            readers,
                            result: result.clone(),
                        },
                    );
                    (result, reading)
                }
            }
        };
        result.await
    }

    /// Whether a reader still waits for this fill; if not, it leaves `pending` (under the lock
    /// readers join by), so a reader who comes next starts a fill of its own.
    fn still_wanted(&self, key: &CacheKey, fill_id: u64, readers: &AtomicUsize) -> bool {
        // Every queued fill asks every 20 ms: while readers wait, without the shared lock.
        if readers.load(Ordering::Acquire) > 0 {
            return true;
        }
        let mut pending = self.inner.pending.lock().expect("pending lock");
        if readers.load(Ordering::Acquire) > 0 {
            return true;
        }
        forget_fill(&mut pending, key, fill_id);
        false
    }

    fn finish(&self, key: &CacheKey, fill_id: u64) {
        forget_fill(
            &mut self.inner.pending.lock().expect("pending lock"),
            key,
            fill_id,
        );
    }

    async fn run_fill(
        &self,
        tenant: &Tenant,
        key: &CacheKey,
        slot: Arc<ResourceSlot>,
        generation: u64,
        mut stale: Option<Arc<Entry>>,
        still_wanted: StillWanted,
    ) -> FillResult {
        crate::failpoint::panic_once("fill_panics");
        let inner = &self.inner;
        let now = inner.clock.now_ms();
        let make = |kind, body, fresh_until_ms, usable_until_ms| {
            Arc::new(Entry::new(
                kind,
                body,
                fresh_until_ms,
                usable_until_ms,
                slot.clone(),
                generation,
            ))
        };

        // SQL second. Its generation guards our write of whatever Biz answers. Availability
        // lives in memory only (see the README): no SQL read, so no SQL write either.
        let sql = if !key.resource.is_catalog() {
            Err(DbError::Other(anyhow::anyhow!("kept in memory only")))
        } else if self.sql_in_step(tenant.store_id, key.resource, &slot).await {
            self.read_sql(tenant.store_id, key).await
        } else {
            Err(DbError::Unavailable(anyhow::anyhow!(
                "the SQL cache missed an invalidation"
            )))
        };
        let db_generation = sql.as_ref().ok().map(|(_, g)| *g);
        if let Ok((Some(row), _)) = sql {
            let entry = make(
                EntryKind::Found,
                row.body,
                row.fresh_until_ms,
                row.usable_until_ms,
            );
            if now < row.fresh_until_ms {
                self.remember(key, entry.clone()).await;
                return Ok(Lookup {
                    entry,
                    status: CacheStatus::Hit,
                });
            }
            if now < row.usable_until_ms && stale.is_none() {
                stale = Some(entry);
            }
        }

        // An item a fresh, complete list of its resource does not name does not exist: 404
        // without asking Biz, so random ids cannot spend the shared Biz quota.
        if let Some(id) = &key.id
            && key.resource.is_catalog()
            && self.absent_from_fresh_list(key, id, now).await
        {
            let until = now + inner.config.negative_ttl.as_millis() as i64;
            let entry = make(EntryKind::NotFound, bytes::Bytes::new(), until, until);
            self.remember(key, entry.clone()).await;
            return Ok(Lookup {
                entry,
                status: CacheStatus::Hit,
            });
        }

        let biz = inner.biz.for_readers(still_wanted);
        let (ttl, stale_window) = self.lifetimes(key.resource);
        let fresh_until = now + ttl.as_millis() as i64;
        let usable_until = fresh_until + stale_window.as_millis() as i64;
        let fetched = match &key.id {
            None => biz
                .list(&tenant.business_id, key.resource)
                .await
                .map(|items| {
                    let body = list_body(items.iter().map(|i| i.json.get()));
                    let rows: Vec<(String, String)> = items
                        .into_iter()
                        .map(|i| (i.id, i.json.get().to_string()))
                        .collect();
                    (body, SqlWrite::List(rows))
                }),
            Some(id) if !key.resource.is_catalog() => {
                let query = AvailabilityQuery::from_key(id)
                    .ok_or_else(|| BizError::Unavailable("a malformed availability key".into()));
                match query {
                    Ok(query) => biz
                        .availability(&tenant.business_id, &query)
                        .await
                        .map(|slots| (availability_body(&query, slots.get()), SqlWrite::None)),
                    Err(err) => Err(err),
                }
            }
            Some(id) => biz
                .item(&tenant.business_id, key.resource, id)
                .await
                .map(|json| {
                    (
                        item_body(json.get()),
                        SqlWrite::Item {
                            id: id.to_string(),
                            payload: json.get().to_string(),
                        },
                    )
                }),
        };
        match fetched {
            Ok((body, write)) => {
                if let Some(expected) = db_generation {
                    // Best effort: a database that is down must not fail a read Biz answered.
                    if let Err(err) = self
                        .write_sql(
                            tenant.store_id,
                            key.resource,
                            write,
                            now,
                            fresh_until,
                            expected,
                        )
                        .await
                    {
                        tracing::warn!(error = %err, "could not store a cache fill in SQL");
                    }
                }
                let entry = make(EntryKind::Found, body, fresh_until, usable_until);
                self.remember(key, entry.clone()).await;
                Ok(Lookup {
                    entry,
                    status: CacheStatus::Miss,
                })
            }
            Err(BizError::NotFound) if key.id.is_some() => {
                let until = now + inner.config.negative_ttl.as_millis() as i64;
                let entry = make(EntryKind::NotFound, bytes::Bytes::new(), until, until);
                self.remember(key, entry.clone()).await;
                Ok(Lookup {
                    entry,
                    status: CacheStatus::Miss,
                })
            }
            // Nobody reads the answer, and Biz was not asked: the cache stays as it was (no
            // retry backoff on a stale copy).
            Err(err @ BizError::Abandoned) => Err(Unavailable(err.to_string())),
            Err(err) => match stale {
                Some(entry) => {
                    entry.defer_retry(now + RETRY_BACKOFF_MS);
                    self.remember(key, entry.clone()).await;
                    Ok(Lookup {
                        entry,
                        status: CacheStatus::Stale,
                    })
                }
                None => Err(Unavailable(match err {
                    BizError::NotFound => "Biz does not know this store's business".into(),
                    other => other.to_string(),
                })),
            },
        }
    }

    /// Whether this instance holds the item's whole list, fresh and current, without `id`.
    async fn absent_from_fresh_list(&self, key: &CacheKey, id: &str, now: i64) -> bool {
        let list_key = CacheKey::list(key.store_id, key.resource);
        if self.inner.feed.untrusted_since().is_some() {
            return false;
        }
        let Some(list) = self.inner.memory.get(&list_key).await else {
            return false;
        };
        list.is_current()
            && list.kind == EntryKind::Found
            && now < list.fresh_until_ms
            && list.list_state().contains(&list.body, id) == Some(false)
    }

    /// Puts an entry in memory unless an invalidation has already made it obsolete (storing
    /// it would only push out a newer one).
    async fn remember(&self, key: &CacheKey, entry: Arc<Entry>) {
        if entry.is_current() {
            self.inner.memory.insert(key.clone(), entry).await;
        }
    }

    /// Drops everything `scope` covers, in SQL and in memory, before returning. SQL goes first:
    /// were memory cleared first, a reader could refill it from the SQL row about to be
    /// deleted. Memory is cleared even when SQL fails, and the SQL error is returned.
    /// When SQL fails, its rows may still be read (a locked SQLite file still serves readers):
    /// the slot remembers the miss, so fills neither serve nor overwrite those rows until an
    /// SQL invalidation succeeds again.
    pub async fn invalidate(&self, store_id: i64, scope: &Scope) -> Result<(), DbError> {
        let now = self.inner.clock.now_ms();
        let sql = self
            .inner
            .db
            .invalidate_cache(store_id, scope, self.inner.instance_id, now)
            .await;
        if sql.is_err() {
            for r in self.scope_resources(scope) {
                self.slot(store_id, *r).note_sql_missed();
            }
        }
        self.invalidate_memory(store_id, scope);
        sql
    }

    /// Retires this instance's memory entries covered by `scope` (no SQL): for invalidations
    /// another instance already applied to the shared database.
    pub fn invalidate_memory(&self, store_id: i64, scope: &Scope) {
        for r in self.scope_resources(scope) {
            self.slot(store_id, *r).bump();
        }
    }

    /// Retires every memory entry of this instance (a new place in the feed).
    pub(super) fn invalidate_all_memory(&self) {
        let slots = self.inner.slots.lock().expect("slots lock");
        for slot in slots.values() {
            slot.bump();
        }
    }

    /// The resources an invalidation covers.
    fn scope_resources<'a>(&'a self, scope: &'a Scope) -> &'a [Resource] {
        match scope {
            Scope::Store => self.inner.resources.all(),
            Scope::Resource(r) | Scope::Item(r, _) => std::slice::from_ref(r),
        }
    }

    pub(super) fn feed_state(&self) -> &FeedState {
        &self.inner.feed
    }

    pub(super) fn db(&self) -> &Db {
        &self.inner.db
    }

    pub(super) fn feed_db(&self) -> &Db {
        &self.inner.feed_db
    }

    /// A random id for this process, written with each invalidation it makes.
    pub fn instance_id(&self) -> i64 {
        self.inner.instance_id
    }

    /// Lets moka finish pending evictions (its maintenance is otherwise amortised over reads).
    pub async fn run_pending_tasks(&self) {
        self.inner.memory.run_pending_tasks().await;
    }

    /// Whether the SQL rows of `(store, resource)` can be trusted: true unless an invalidation
    /// failed to reach SQL, in which case it is redone (for the whole resource) first.
    async fn sql_in_step(&self, store_id: i64, resource: Resource, slot: &ResourceSlot) -> bool {
        let Some(mark) = slot.sql_behind() else {
            return true;
        };
        match self
            .inner
            .db
            .invalidate_cache(
                store_id,
                &Scope::Resource(resource),
                self.inner.instance_id,
                self.inner.clock.now_ms(),
            )
            .await
        {
            Ok(()) => {
                slot.sql_repaired(mark);
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, "SQL cache still behind an invalidation; skipping it");
                false
            }
        }
    }

    /// Per-resource counters and memory entries for one store (admin statistics).
    pub fn stats(&self, store_id: i64) -> Vec<ResourceStats> {
        let mut entries: HashMap<Resource, u64> = HashMap::new();
        for (key, entry) in self.inner.memory.iter() {
            if key.store_id == store_id && entry.is_current() {
                *entries.entry(key.resource).or_default() += 1;
            }
        }
        self.inner
            .resources
            .catalog()
            .iter()
            .map(|r| {
                let slot = self.slot(store_id, *r);
                ResourceStats {
                    resource: *r,
                    memory_entries: entries.get(r).copied().unwrap_or(0),
                    hits: slot.hits.load(Ordering::Relaxed),
                    misses: slot.misses.load(Ordering::Relaxed),
                    stale: slot.stale.load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}

/// Takes fill `fill_id` out of `pending`, unless another fill of the key has replaced it.
fn forget_fill(pending: &mut HashMap<CacheKey, Pending>, key: &CacheKey, fill_id: u64) {
    if pending.get(key).is_some_and(|p| p.fill_id == fill_id) {
        pending.remove(key);
    }
}

/// A reader waiting for a fill, counted in its `Pending::readers` while it waits (a reader
/// whose client left is dropped with its request).
struct Reading(Arc<AtomicUsize>);

impl Reading {
    fn join(readers: &Arc<AtomicUsize>) -> Self {
        readers.fetch_add(1, Ordering::AcqRel);
        Self(readers.clone())
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Ends a fill's pending entry when dropped (see `fill`).
struct FillDone {
    cache: CatalogCache,
    key: CacheKey,
    fill_id: u64,
}

impl Drop for FillDone {
    fn drop(&mut self) {
        self.cache.finish(&self.key, self.fill_id);
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ResourceStats {
    pub resource: Resource,
    pub memory_entries: u64,
    pub hits: u64,
    pub misses: u64,
    pub stale: u64,
}

/// A copy read back from the SQL cache tables.
struct SqlRow {
    body: bytes::Bytes,
    fresh_until_ms: i64,
    usable_until_ms: i64,
}

enum SqlWrite {
    List(Vec<(String, String)>),
    Item {
        id: String,
        payload: String,
    },
    /// Not kept in SQL (availability).
    None,
}

/// `{"data":{service_id, staff_id, date, days, slots}}` around Biz's slots, untouched.
fn availability_body(query: &AvailabilityQuery, slots: &str) -> bytes::Bytes {
    let head = serde_json::json!({
        "service_id": query.service_id,
        "staff_id": query.staff_id,
        "date": query.date,
        "days": query.days,
    })
    .to_string();
    let mut body = Vec::with_capacity(head.len() + slots.len() + 20);
    body.extend_from_slice(b"{\"data\":");
    body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    body.extend_from_slice(b",\"slots\":");
    body.extend_from_slice(slots.as_bytes());
    body.extend_from_slice(b"}}");
    bytes::Bytes::from(body)
}

impl CatalogCache {
    async fn read_sql(
        &self,
        store_id: i64,
        key: &CacheKey,
    ) -> Result<(Option<SqlRow>, i64), DbError> {
        let stale_ms = self.lifetimes(key.resource).1.as_millis() as i64;
        let db = &self.inner.db;
        let result = match &key.id {
            None => db
                .cache_list(store_id, key.resource)
                .await
                .map(|(list, g)| {
                    let row = list.map(|l| SqlRow {
                        body: list_body(l.items.iter().map(String::as_str)),
                        fresh_until_ms: l.expires_at_ms,
                        usable_until_ms: l.expires_at_ms + stale_ms,
                    });
                    (row, g)
                }),
            Some(id) => db
                .cache_item(store_id, key.resource, id)
                .await
                .map(|(item, g)| {
                    let row = item.map(|i| SqlRow {
                        body: item_body(&i.payload),
                        fresh_until_ms: i.expires_at_ms,
                        usable_until_ms: i.expires_at_ms + stale_ms,
                    });
                    (row, g)
                }),
        };
        if let Err(err) = &result {
            tracing::warn!(error = %err, "SQL cache read failed; asking Biz");
        }
        result
    }

    async fn write_sql(
        &self,
        store_id: i64,
        resource: Resource,
        write: SqlWrite,
        fetched_at_ms: i64,
        expires_at_ms: i64,
        expected: i64,
    ) -> Result<bool, DbError> {
        let db = &self.inner.db;
        match write {
            SqlWrite::List(rows) => {
                db.put_cache_list(
                    store_id,
                    resource,
                    &rows,
                    fetched_at_ms,
                    expires_at_ms,
                    expected,
                )
                .await
            }
            SqlWrite::Item { id, payload } => {
                let item = CachedItem {
                    payload,
                    fetched_at_ms,
                    expires_at_ms,
                };
                db.put_cache_item(store_id, resource, &id, &item, expected)
                    .await
            }
            SqlWrite::None => Ok(false),
        }
    }
}
