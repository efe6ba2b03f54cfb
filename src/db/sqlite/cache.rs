//! SQLite: the catalog cache tables `store_cache_{services,products,staff}`, the list records
//! (`store_cache_lists`) and the generations that make fills invalidation-safe.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteDb;
use crate::catalog::Resource;
use crate::db::{CacheRepo, CachedItem, CachedList, DbResult, FeedEntry, Generation, Scope};

fn table(resource: Resource) -> &'static str {
    match resource {
        Resource::Services => "store_cache_services",
        Resource::Products => "store_cache_products",
        Resource::Staff => "store_cache_staff",
    }
}

fn generation(c: &Connection, store_id: i64, resource: Resource) -> rusqlite::Result<Generation> {
    c.prepare_cached(
        "SELECT generation FROM store_cache_generations WHERE store_id = ?1 AND resource = ?2",
    )?
    .query_row(params![store_id, resource.as_str()], |r| r.get(0))
    .optional()
    .map(|g| g.unwrap_or(0))
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
        Some(id) => c.execute(
            &format!(
                "DELETE FROM {} WHERE store_id = ?1 AND item_id = ?2",
                table(resource)
            ),
            params![store_id, id],
        )?,
        None => c.execute(
            &format!("DELETE FROM {} WHERE store_id = ?1", table(resource)),
            params![store_id],
        )?,
    };
    c.prepare_cached("DELETE FROM store_cache_lists WHERE store_id = ?1 AND resource = ?2")?
        .execute(params![store_id, resource.as_str()])?;
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
        self.call(move |c| {
            // One read transaction: the row and the generation come from the same snapshot.
            let tx = c.transaction()?;
            let item = tx
                .prepare_cached(&format!(
                    "SELECT payload, fetched_at, expires_at FROM {}
                     WHERE store_id = ?1 AND item_id = ?2",
                    table(resource)
                ))?
                .query_row(params![store_id, id], |r| {
                    Ok(CachedItem {
                        payload: r.get(0)?,
                        fetched_at_ms: r.get(1)?,
                        expires_at_ms: r.get(2)?,
                    })
                })
                .optional()?;
            let generation = generation(&tx, store_id, resource)?;
            tx.commit()?;
            Ok((item, generation))
        })
        .await
    }

    async fn cache_list(
        &self,
        store_id: i64,
        resource: Resource,
    ) -> DbResult<(Option<CachedList>, Generation)> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let record: Option<(i64, i64, i64)> = tx
                .prepare_cached(
                    "SELECT item_count, fetched_at, expires_at FROM store_cache_lists
                     WHERE store_id = ?1 AND resource = ?2",
                )?
                .query_row(params![store_id, resource.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            let list = match record {
                None => None,
                Some((count, fetched_at_ms, expires_at_ms)) => {
                    let items: Vec<String> = tx
                        .prepare_cached(&format!(
                            "SELECT payload FROM {} WHERE store_id = ?1 AND list_position IS NOT NULL
                             ORDER BY list_position",
                            table(resource)
                        ))?
                        .query_map([store_id], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    // A list missing a row is not a complete list: treat it as absent.
                    (items.len() as i64 == count).then_some(CachedList {
                        items,
                        fetched_at_ms,
                        expires_at_ms,
                    })
                }
            };
            let generation = generation(&tx, store_id, resource)?;
            tx.commit()?;
            Ok((list, generation))
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
            if generation(tx, store_id, resource)? != expected {
                return Ok(false);
            }
            tx.prepare_cached(&format!(
                "INSERT INTO {} (store_id, item_id, payload, list_position, fetched_at, expires_at)
                 VALUES (?1, ?2, ?3, NULL, ?4, ?5)
                 ON CONFLICT (store_id, item_id) DO UPDATE SET
                     payload = excluded.payload,
                     fetched_at = excluded.fetched_at,
                     expires_at = excluded.expires_at",
                table(resource)
            ))?
            .execute(params![
                store_id,
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
            if generation(tx, store_id, resource)? != expected {
                return Ok(false);
            }
            // A complete list is a snapshot of the resource: rows it no longer names are gone.
            tx.execute(
                &format!("DELETE FROM {} WHERE store_id = ?1", table(resource)),
                [store_id],
            )?;
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO {} (store_id, item_id, payload, list_position, fetched_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (store_id, item_id) DO UPDATE SET
                     payload = excluded.payload, list_position = excluded.list_position",
                table(resource)
            ))?;
            for (position, (id, payload)) in items.iter().enumerate() {
                insert.execute(params![
                    store_id,
                    id,
                    payload,
                    position as i64,
                    fetched_at_ms,
                    expires_at_ms
                ])?;
            }
            // Biz may list one id twice; the record counts the rows actually kept.
            let kept: i64 = tx.query_row(
                &format!(
                    "SELECT COUNT(*) FROM {} WHERE store_id = ?1 AND list_position IS NOT NULL",
                    table(resource)
                ),
                [store_id],
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
        self.write_tx(move |tx| {
            match &scope {
                Scope::Item(resource, id) => invalidate(tx, store_id, *resource, Some(id))?,
                Scope::Resource(resource) => invalidate(tx, store_id, *resource, None)?,
                Scope::Store => Resource::ALL
                    .iter()
                    .try_for_each(|r| invalidate(tx, store_id, *r, None))?,
            }
            let (resource, item) = scope.to_columns();
            tx.prepare_cached(
                "INSERT INTO store_cache_invalidations (origin, store_id, resource, item_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![origin, store_id, resource, item, now_ms])?;
            Ok(())
        })
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
                    scope: Scope::from_columns(
                        r.get::<_, Option<String>>(3)?.as_deref(),
                        r.get(4)?,
                    ),
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

    async fn cache_row_counts(&self, store_id: i64) -> DbResult<Vec<(Resource, i64)>> {
        self.call(move |c| {
            Resource::ALL
                .iter()
                .map(|r| {
                    c.query_row(
                        &format!("SELECT COUNT(*) FROM {} WHERE store_id = ?1", table(*r)),
                        [store_id],
                        |row| Ok((*r, row.get(0)?)),
                    )
                })
                .collect()
        })
        .await
    }

    async fn purge_expired_cache(&self, before_ms: i64, limit: u32) -> DbResult<u64> {
        self.write_tx(move |tx| {
            let mut removed = 0u64;
            for r in Resource::ALL {
                removed += tx.execute(
                    &format!(
                        "DELETE FROM {t} WHERE rowid IN
                         (SELECT rowid FROM {t} WHERE expires_at < ?1 LIMIT ?2)",
                        t = table(r)
                    ),
                    params![before_ms, limit],
                )? as u64;
            }
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
