//! SQLite: the catalog cache `store_cache_items` (one layout for every declared resource), the
//! list records (`store_cache_lists`) and the generations that make fills invalidation-safe.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteDb;
use crate::db::{
    CacheRepo, CachedItem, CachedList, DbResult, FeedAck, FeedEntry, Generation, Scope,
};
use crate::domain::Resource;

/// The pair's generation; `None` until its row exists (see [`SqliteDb::with_generation`]).
fn generation(
    c: &Connection,
    store_id: i64,
    resource: Resource,
) -> rusqlite::Result<Option<Generation>> {
    c.prepare_cached(
        "SELECT generation FROM store_cache_generations WHERE store_id = ?1 AND resource = ?2",
    )?
    .query_row(params![store_id, resource.as_str()], |r| r.get(0))
    .optional()
}

impl SqliteDb {
    /// Runs the read `f` in one read transaction with the pair's generation, so the rows and
    /// the generation come from the same snapshot. A pair read for the first time gets its
    /// generation row first (then the read is redone): a whole-store invalidation bumps the
    /// rows that exist, and must not miss a fill that read a generation without a row.
    async fn with_generation<T, F>(
        &self,
        store_id: i64,
        resource: Resource,
        f: F,
    ) -> DbResult<(T, Generation)>
    where
        F: Fn(&Connection) -> rusqlite::Result<T> + Clone + Send + 'static,
        T: Send + 'static,
    {
        loop {
            let read = f.clone();
            let (value, generation) = self
                .call(move |c| {
                    let tx = c.transaction()?;
                    let value = read(&tx)?;
                    let generation = generation(&tx, store_id, resource)?;
                    tx.commit()?;
                    Ok((value, generation))
                })
                .await?;
            if let Some(generation) = generation {
                return Ok((value, generation));
            }
            self.write_tx(move |tx| {
                tx.prepare_cached(
                    "INSERT INTO store_cache_generations (store_id, resource, generation)
                     VALUES (?1, ?2, 0) ON CONFLICT (store_id, resource) DO NOTHING",
                )?
                .execute(params![store_id, resource.as_str()])
            })
            .await?;
        }
    }
}

fn invalidate(
    c: &Connection,
    store_id: i64,
    resource: Resource,
    item: Option<&str>,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO store_cache_generations (store_id, resource, generation) VALUES (?1, ?2, 1)
         ON CONFLICT (store_id, resource) DO UPDATE SET generation = generation + 1",
    )?
    .execute(params![store_id, resource.as_str()])?;
    match item {
        Some(id) => c
            .prepare_cached(
                "DELETE FROM store_cache_items WHERE store_id = ?1 AND resource = ?2 AND item_id = ?3",
            )?
            .execute(params![store_id, resource.as_str(), id])?,
        None => c
            .prepare_cached("DELETE FROM store_cache_items WHERE store_id = ?1 AND resource = ?2")?
            .execute(params![store_id, resource.as_str()])?,
    };
    c.prepare_cached("DELETE FROM store_cache_lists WHERE store_id = ?1 AND resource = ?2")?
        .execute(params![store_id, resource.as_str()])?;
    Ok(())
}

/// A whole store: every generation row it has is bumped (a fill always creates its row before
/// it reads, so no fill in flight is missed), and every row and list record goes.
fn invalidate_store(c: &Connection, store_id: i64) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE store_cache_generations SET generation = generation + 1 WHERE store_id = ?1",
    )?
    .execute([store_id])?;
    c.prepare_cached("DELETE FROM store_cache_items WHERE store_id = ?1")?
        .execute([store_id])?;
    c.prepare_cached("DELETE FROM store_cache_lists WHERE store_id = ?1")?
        .execute([store_id])?;
    Ok(())
}

/// One invalidation: the generation bump, the rows, and the feed entry the other instances
/// tail. Run inside the caller's write transaction.
pub(super) fn invalidate_scope(
    c: &Connection,
    store_id: i64,
    scope: &Scope,
    origin: i64,
    now_ms: i64,
) -> rusqlite::Result<()> {
    match scope {
        Scope::Item(resource, id) => invalidate(c, store_id, *resource, Some(id))?,
        Scope::Resource(resource) => invalidate(c, store_id, *resource, None)?,
        Scope::Store => invalidate_store(c, store_id)?,
    }
    let (resource, item) = scope.to_columns();
    c.prepare_cached(
        "INSERT INTO store_cache_invalidations (origin, store_id, resource, item_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![origin, store_id, resource, item, now_ms])?;
    Ok(())
}

#[async_trait]
impl CacheRepo for SqliteDb {
    async fn cache_item(
        &self,
        store_id: i64,
        resource: Resource,
        id: &str,
    ) -> DbResult<(Option<CachedItem>, Generation)> {
        let id = id.to_string();
        self.with_generation(store_id, resource, move |tx| {
            tx.prepare_cached(
                "SELECT payload, fetched_at, expires_at FROM store_cache_items
                 WHERE store_id = ?1 AND resource = ?2 AND item_id = ?3",
            )?
            .query_row(params![store_id, resource.as_str(), id], |r| {
                Ok(CachedItem {
                    payload: r.get(0)?,
                    fetched_at_ms: r.get(1)?,
                    expires_at_ms: r.get(2)?,
                })
            })
            .optional()
        })
        .await
    }

    async fn cache_list(
        &self,
        store_id: i64,
        resource: Resource,
    ) -> DbResult<(Option<CachedList>, Generation)> {
        self.with_generation(store_id, resource, move |tx| {
            let record: Option<(i64, i64, i64)> = tx
                .prepare_cached(
                    "SELECT item_count, fetched_at, expires_at FROM store_cache_lists
                     WHERE store_id = ?1 AND resource = ?2",
                )?
                .query_row(params![store_id, resource.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            Ok(match record {
                None => None,
                Some((count, fetched_at_ms, expires_at_ms)) => {
                    let items: Vec<String> = tx
                        .prepare_cached(
                            "SELECT payload FROM store_cache_items
                             WHERE store_id = ?1 AND resource = ?2 AND list_position IS NOT NULL
                             ORDER BY list_position",
                        )?
                        .query_map(params![store_id, resource.as_str()], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    // A list missing a row is not a complete list: treat it as absent.
                    (items.len() as i64 == count).then_some(CachedList {
                        items,
                        fetched_at_ms,
                        expires_at_ms,
                    })
                }
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
        let (id, item) = (id.to_string(), item.clone());
        self.write_tx(move |tx| {
            if generation(tx, store_id, resource)? != Some(expected) {
                return Ok(false);
            }
            tx.prepare_cached(
                "INSERT INTO store_cache_items
                     (store_id, resource, item_id, payload, list_position, fetched_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6)
                 ON CONFLICT (store_id, resource, item_id) DO UPDATE SET
                     payload = excluded.payload,
                     fetched_at = excluded.fetched_at,
                     expires_at = excluded.expires_at",
            )?
            .execute(params![
                store_id,
                resource.as_str(),
                id,
                item.payload,
                item.fetched_at_ms,
                item.expires_at_ms
            ])?;
            Ok(true)
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
        let items = items.to_vec();
        self.write_tx(move |tx| {
            if generation(tx, store_id, resource)? != Some(expected) {
                return Ok(false);
            }
            // A complete list is a snapshot of the resource: rows it no longer names are gone.
            tx.prepare_cached("DELETE FROM store_cache_items WHERE store_id = ?1 AND resource = ?2")?
                .execute(params![store_id, resource.as_str()])?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO store_cache_items
                     (store_id, resource, item_id, payload, list_position, fetched_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (store_id, resource, item_id) DO UPDATE SET
                     payload = excluded.payload, list_position = excluded.list_position",
            )?;
            for (position, (id, payload)) in items.iter().enumerate() {
                insert.execute(params![
                    store_id,
                    resource.as_str(),
                    id,
                    payload,
                    position as i64,
                    fetched_at_ms,
                    expires_at_ms
                ])?;
            }
            // Biz may list one id twice; the record counts the rows actually kept.
            let kept: i64 = tx.query_row(
                "SELECT COUNT(*) FROM store_cache_items
                 WHERE store_id = ?1 AND resource = ?2 AND list_position IS NOT NULL",
                params![store_id, resource.as_str()],
                |r| r.get(0),
            )?;
            tx.prepare_cached(
                "INSERT INTO store_cache_lists (store_id, resource, item_count, fetched_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (store_id, resource) DO UPDATE SET
                     item_count = excluded.item_count,
                     fetched_at = excluded.fetched_at,
                     expires_at = excluded.expires_at",
            )?
            .execute(params![
                store_id,
                resource.as_str(),
                kept,
                fetched_at_ms,
                expires_at_ms
            ])?;
            Ok(true)
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
        let scope = scope.clone();
        self.write_tx(move |tx| invalidate_scope(tx, store_id, &scope, origin, now_ms))
            .await
    }

    async fn latest_invalidation(&self) -> DbResult<i64> {
        self.call(|c| {
            c.query_row(
                "SELECT COALESCE(MAX(id), 0) FROM store_cache_invalidations",
                [],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn invalidations_since(&self, after_id: i64, limit: u32) -> DbResult<Vec<FeedEntry>> {
        self.call(move |c| {
            c.prepare_cached(
                "SELECT id, origin, store_id, resource, item_id FROM store_cache_invalidations
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?
            .query_map(params![after_id, limit], |r| {
                Ok(FeedEntry {
                    id: r.get(0)?,
                    origin: r.get(1)?,
                    store_id: r.get(2)?,
                    resource: r.get(3)?,
                    item: r.get(4)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn prune_invalidations(&self, before_ms: i64, limit: u32) -> DbResult<u64> {
        self.write_tx(move |tx| {
            tx.execute(
                "DELETE FROM store_cache_invalidations WHERE id IN
                 (SELECT id FROM store_cache_invalidations WHERE created_at < ?1 LIMIT ?2)",
                params![before_ms, limit],
            )
            .map(|n| n as u64)
        })
        .await
    }

    async fn ack_feed(&self, ack: &FeedAck) -> DbResult<()> {
        let ack = ack.clone();
        self.write_tx(move |tx| {
            let updated = tx
                .prepare_cached(
                    "UPDATE store_cache_instances SET applied_id = ?2, heartbeat_at = ?3
                     WHERE instance_id = ?1",
                )?
                .execute(params![ack.instance_id, ack.applied_id, ack.heartbeat_ms])?;
            if updated == 0 {
                tx.prepare_cached(
                    "INSERT INTO store_cache_instances (instance_id, applied_id, heartbeat_at)
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    ack.instance_id,
                    ack.applied_id,
                    ack.heartbeat_ms
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn feed_acks(&self) -> DbResult<Vec<FeedAck>> {
        self.call(|c| {
            c.prepare_cached(
                "SELECT instance_id, applied_id, heartbeat_at FROM store_cache_instances",
            )?
            .query_map([], |r| {
                Ok(FeedAck {
                    instance_id: r.get(0)?,
                    applied_id: r.get(1)?,
                    heartbeat_ms: r.get(2)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn forget_instances(&self, instance_id: Option<i64>, before_ms: i64) -> DbResult<u64> {
        self.write_tx(move |tx| {
            tx.execute(
                "DELETE FROM store_cache_instances WHERE instance_id = ?1 OR heartbeat_at < ?2",
                params![instance_id, before_ms],
            )
            .map(|n| n as u64)
        })
        .await
    }

    async fn cache_row_counts(&self, store_id: i64) -> DbResult<Vec<(String, i64)>> {
        self.call(move |c| {
            c.prepare_cached(
                "SELECT resource, COUNT(*) FROM store_cache_items WHERE store_id = ?1
                 GROUP BY resource ORDER BY resource",
            )?
            .query_map([store_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
        })
        .await
    }

    async fn purge_expired_cache(&self, before_ms: i64, limit: u32) -> DbResult<u64> {
        self.write_tx(move |tx| {
            let mut removed = tx.execute(
                "DELETE FROM store_cache_items WHERE rowid IN
                 (SELECT rowid FROM store_cache_items WHERE expires_at < ?1 LIMIT ?2)",
                params![before_ms, limit],
            )? as u64;
            removed += tx.execute(
                "DELETE FROM store_cache_lists WHERE rowid IN
                 (SELECT rowid FROM store_cache_lists WHERE expires_at < ?1 LIMIT ?2)",
                params![before_ms, limit],
            )? as u64;
            Ok(removed)
        })
        .await
    }
}
