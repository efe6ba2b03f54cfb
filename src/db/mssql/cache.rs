//! T-SQL (SQL Server 2019+ / Babelfish 4.x): the catalog cache `store_cache.items` (one layout
//! for every declared resource; `store_cache.services`, `.products` and `.staff` are views of
//! it), the list records `store_cache.lists` and the generations (invalidations and their feed:
//! `feed.rs`).
//!
//! Every write to a `(store, resource)` runs in a transaction that first locks the generation
//! row with an UPDATE: a fill sets it to itself `WHERE generation = @expected` (row count 1:
//! still current, and the lock is held until commit), an invalidation sets it to
//! `generation + 1`. Writers of one resource therefore serialise on that row — which is also
//! what makes the UPDATE-then-INSERT upserts below safe without MERGE or lock hints.

use std::collections::HashMap;

use async_trait::async_trait;
use tiberius::ToSql;
use tiberius::error::Error as TdsError;

use super::{Conn, MssqlDb, RowExt};
use crate::db::{
    CacheRepo, CachedItem, CachedList, DbResult, FeedAck, FeedEntry, Generation, Scope,
};
use crate::domain::Resource;

/// `item_id` is NVARCHAR(400): a longer id is never cached (reads miss, writes are skipped).
const MAX_ITEM_ID: usize = 400;

fn cacheable(id: &str) -> bool {
    id.chars().count() <= MAX_ITEM_ID
}

/// The pair's generation. A pair read for the first time gets its row (at 0) first: writers
/// lock that row, and a whole-store invalidation bumps the rows that exist, so no fill may
/// read a generation that has no row.
async fn generation(c: &mut Conn, store_id: i64, resource: Resource) -> Result<i64, TdsError> {
    let sql =
        "SELECT generation FROM store_cache.generations WHERE store_id = @P1 AND resource = @P2";
    if let Some(row) = c.row(sql, &[&store_id, &resource.as_str()]).await? {
        return row.int(0);
    }
    ensure_generation(c, store_id, resource).await?;
    c.scalar(sql, &[&store_id, &resource.as_str()]).await
}

/// Creates the pair's generation row at 0 unless it exists; a twin that inserts it first
/// (duplicate key) is as good.
pub(super) async fn ensure_generation(
    c: &mut Conn,
    store_id: i64,
    resource: Resource,
) -> Result<(), TdsError> {
    let inserted = c
        .exec(
            "INSERT INTO store_cache.generations (store_id, resource, generation)
             SELECT @P1, @P2, 0
             WHERE NOT EXISTS (SELECT 1 FROM store_cache.generations
                               WHERE store_id = @P1 AND resource = @P2)",
            &[&store_id, &resource.as_str()],
        )
        .await;
    match inserted {
        Err(err) if super::is_duplicate_key(&err) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Locks the generation row if it still holds `expected`; answers whether it did.
async fn lock_if_current(
    c: &mut Conn,
    store_id: i64,
    resource: Resource,
    expected: Generation,
) -> Result<bool, TdsError> {
    let locked = c
        .exec(
            "UPDATE store_cache.generations SET generation = generation
             WHERE store_id = @P1 AND resource = @P2 AND generation = @P3",
            &[&store_id, &resource.as_str(), &expected],
        )
        .await?;
    Ok(locked == 1)
}

/// Inserts a list's rows. `rows` are `(id, payload, position)` with distinct ids.
async fn insert_rows(
    c: &mut Conn,
    store_id: i64,
    resource: Resource,
    rows: &[(String, String, i64)],
    fetched_at_ms: i64,
    expires_at_ms: i64,
) -> Result<(), TdsError> {
    let name = resource.as_str();
    let rows: Vec<Vec<&dyn ToSql>> = rows
        .iter()
        .map(|(id, payload, position)| {
            vec![
                &store_id as &dyn ToSql,
                &name,
                id,
                payload,
                position,
                &fetched_at_ms,
                &expires_at_ms,
            ]
        })
        .collect();
    c.insert_many(
        "store_cache.items
            (store_id, resource, item_id, payload, list_position, fetched_at, expires_at)",
        &rows,
    )
    .await
    .map(drop)
}

#[async_trait]
impl CacheRepo for MssqlDb {
    async fn cache_item(
        &self,
        store_id: i64,
        resource: Resource,
        id: &str,
    ) -> DbResult<(Option<CachedItem>, Generation)> {
        let id = id.to_string();
        self.run(move |c| {
            Box::pin(async move {
                // The generation is read first: one read before the row is never newer than
                // the row, so a fill based on it cannot be stored after a later invalidation.
                let generation = generation(c, store_id, resource).await?;
                if !cacheable(&id) {
                    return Ok((None, generation));
                }
                let sql = "SELECT payload, fetched_at, expires_at FROM store_cache.items
                           WHERE store_id = @P1 AND resource = @P2 AND item_id = @P3";
                let item = match c.row(sql, &[&store_id, &resource.as_str(), &id]).await? {
                    Some(r) => Some(CachedItem {
                        payload: r.text(0)?,
                        fetched_at_ms: r.int(1)?,
                        expires_at_ms: r.int(2)?,
                    }),
                    None => None,
                };
                Ok((item, generation))
            })
        })
        .await
    }

    async fn cache_list(
        &self,
        store_id: i64,
        resource: Resource,
    ) -> DbResult<(Option<CachedList>, Generation)> {
        self.run(move |c| {
            Box::pin(async move {
                let generation = generation(c, store_id, resource).await?;
                let record = c
                    .row(
                        "SELECT item_count, fetched_at, expires_at FROM store_cache.lists
                         WHERE store_id = @P1 AND resource = @P2",
                        &[&store_id, &resource.as_str()],
                    )
                    .await?;
                let Some(record) = record else {
                    return Ok((None, generation));
                };
                let sql = "SELECT payload FROM store_cache.items
                           WHERE store_id = @P1 AND resource = @P2 AND list_position IS NOT NULL
                           ORDER BY list_position";
                let items: Vec<String> = c
                    .rows(sql, &[&store_id, &resource.as_str()])
                    .await?
                    .iter()
                    .map(|r| r.text(0))
                    .collect::<Result<_, _>>()?;
                // A list missing a row is not a complete list: treat it as absent.
                let list = (items.len() as i64 == record.int(0)?).then_some(CachedList {
                    items,
                    fetched_at_ms: record.int(1)?,
                    expires_at_ms: record.int(2)?,
                });
                Ok((list, generation))
            })
        })
        .await
    }

    async fn put_cache_item(
        &self,
        store_id: i64,
        resource: Resource,
        id: &str,
        item: &CachedItem,
        expected: Generation,
    ) -> DbResult<bool> {
        if !cacheable(id) {
            return Ok(false);
        }
        let (id, item) = (id.to_string(), item.clone());
        self.tx(move |c| {
            Box::pin(async move {
                if !lock_if_current(c, store_id, resource, expected).await? {
                    return Ok(false);
                }
                let p: [&dyn ToSql; 6] = [
                    &store_id,
                    &id,
                    &item.payload,
                    &item.fetched_at_ms,
                    &item.expires_at_ms,
                    &resource.as_str(),
                ];
                let update = "UPDATE store_cache.items
                              SET payload = @P3, fetched_at = @P4, expires_at = @P5
                              WHERE store_id = @P1 AND resource = @P6 AND item_id = @P2";
                if c.exec(update, &p).await? == 0 {
                    c.exec(
                        "INSERT INTO store_cache.items (store_id, resource, item_id, payload,
                                                        list_position, fetched_at, expires_at)
                         VALUES (@P1, @P6, @P2, @P3, NULL, @P4, @P5)",
                        &p,
                    )
                    .await?;
                }
                Ok(true)
            })
        })
        .await
    }

    async fn put_cache_list(
        &self,
        store_id: i64,
        resource: Resource,
        items: &[(String, String)],
        fetched_at_ms: i64,
        expires_at_ms: i64,
        expected: Generation,
    ) -> DbResult<bool> {
        // Biz may list one id twice: as in the SQLite upsert, the last occurrence wins (its
        // payload and its position). An id too long to store leaves the list incomplete, so
        // the list is not cached at all.
        if items.iter().any(|(id, _)| !cacheable(id)) {
            return Ok(false);
        }
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (position, (id, _)) in items.iter().enumerate() {
            last.insert(id, position);
        }
        let rows: Vec<(String, String, i64)> = items
            .iter()
            .enumerate()
            .filter(|(position, (id, _))| last[id.as_str()] == *position)
            .map(|(position, (id, payload))| (id.clone(), payload.clone(), position as i64))
            .collect();
        self.tx(move |c| {
            Box::pin(async move {
                if !lock_if_current(c, store_id, resource, expected).await? {
                    return Ok(false);
                }
                // A complete list is a snapshot of the resource: rows it no longer names go.
                c.exec(
                    "DELETE FROM store_cache.items WHERE store_id = @P1 AND resource = @P2",
                    &[&store_id, &resource.as_str()],
                )
                .await?;
                insert_rows(c, store_id, resource, &rows, fetched_at_ms, expires_at_ms).await?;
                let kept = rows.len() as i64;
                let p: [&dyn ToSql; 5] = [
                    &store_id,
                    &resource.as_str(),
                    &kept,
                    &fetched_at_ms,
                    &expires_at_ms,
                ];
                let updated = c
                    .exec(
                        "UPDATE store_cache.lists
                         SET item_count = @P3, fetched_at = @P4, expires_at = @P5
                         WHERE store_id = @P1 AND resource = @P2",
                        &p,
                    )
                    .await?;
                if updated == 0 {
                    c.exec(
                        "INSERT INTO store_cache.lists
                            (store_id, resource, item_count, fetched_at, expires_at)
                         VALUES (@P1, @P2, @P3, @P4, @P5)",
                        &p,
                    )
                    .await?;
                }
                Ok(true)
            })
        })
        .await
    }

    async fn invalidate_cache(
        &self,
        store_id: i64,
        scope: &Scope,
        origin: i64,
        now_ms: i64,
    ) -> DbResult<()> {
        self.invalidate_scope(store_id, scope, origin, now_ms).await
    }

    async fn latest_invalidation(&self) -> DbResult<i64> {
        self.feed_latest().await
    }

    async fn invalidations_since(&self, after_id: i64, limit: u32) -> DbResult<Vec<FeedEntry>> {
        self.feed_since(after_id, limit).await
    }

    async fn prune_invalidations(&self, before_ms: i64, limit: u32) -> DbResult<u64> {
        self.feed_prune(before_ms, limit).await
    }

    async fn ack_feed(&self, ack: &FeedAck) -> DbResult<()> {
        self.feed_ack(ack).await
    }

    async fn feed_acks(&self) -> DbResult<Vec<FeedAck>> {
        self.feed_ack_rows().await
    }

    async fn forget_instances(&self, instance_id: Option<i64>, before_ms: i64) -> DbResult<u64> {
        self.feed_forget(instance_id, before_ms).await
    }

    async fn cache_row_counts(&self, store_id: i64) -> DbResult<Vec<(String, i64)>> {
        self.run(move |c| {
            Box::pin(async move {
                c.rows(
                    "SELECT resource, COUNT_BIG(*) FROM store_cache.items WHERE store_id = @P1
                     GROUP BY resource ORDER BY resource",
                    &[&store_id],
                )
                .await?
                .iter()
                .map(|r| Ok((r.text(0)?, r.int(1)?)))
                .collect()
            })
        })
        .await
    }

    async fn purge_expired_cache(&self, before_ms: i64, limit: u32) -> DbResult<u64> {
        let limit = i64::from(limit);
        self.run(move |c| {
            Box::pin(async move {
                let mut removed = c
                    .exec(
                        "DELETE TOP (@P2) FROM store_cache.items WHERE expires_at < @P1",
                        &[&before_ms, &limit],
                    )
                    .await?;
                removed += c
                    .exec(
                        "DELETE TOP (@P2) FROM store_cache.lists WHERE expires_at < @P1",
                        &[&before_ms, &limit],
                    )
                    .await?;
                Ok(removed)
            })
        })
        .await
    }
}
