//! T-SQL (SQL Server 2019+ / Babelfish 4.x): invalidations — the generation bumps and row
//! deletes of `store_cache.*`, and the feed `store_cache.invalidations` the instances tail.
//!
//! Feed ids are taken from the single row of `store_cache.invalidation_head`, incremented under
//! its row lock inside the invalidating transaction, so ids become visible in commit order and a
//! tailer reading `id > last` never skips one that commits late (an IDENTITY would allow it).
//! Lock order everywhere: generation rows, then the head row.

use tiberius::error::Error as TdsError;

use super::cache::ensure_generation;
use super::{Conn, MssqlDb, RowExt};
use crate::db::{DbResult, FeedAck, FeedEntry, Scope};
use crate::domain::Resource;

async fn invalidate(
    c: &mut Conn,
    store_id: i64,
    resource: Resource,
    item: Option<&str>,
) -> Result<(), TdsError> {
    c.exec(
        "UPDATE store_cache.generations SET generation = generation + 1
         WHERE store_id = @P1 AND resource = @P2",
        &[&store_id, &resource.as_str()],
    )
    .await?;
    match item {
        Some(id) => {
            c.exec(
                "DELETE FROM store_cache.items
                 WHERE store_id = @P1 AND resource = @P2 AND item_id = @P3",
                &[&store_id, &resource.as_str(), &id],
            )
            .await?
        }
        None => {
            c.exec(
                "DELETE FROM store_cache.items WHERE store_id = @P1 AND resource = @P2",
                &[&store_id, &resource.as_str()],
            )
            .await?
        }
    };
    c.exec(
        "DELETE FROM store_cache.lists WHERE store_id = @P1 AND resource = @P2",
        &[&store_id, &resource.as_str()],
    )
    .await?;
    Ok(())
}

impl MssqlDb {
    pub(super) async fn invalidate_scope(
        &self,
        store_id: i64,
        scope: &Scope,
        origin: i64,
        now_ms: i64,
    ) -> DbResult<()> {
        let scope = scope.clone();
        // The generation row is created before, outside the transaction: a twin inserting it
        // at the same moment is a duplicate key, harmless on its own but fatal to an open
        // transaction where the server aborts on any error (Babelfish, XACT_ABORT ON).
        if let Scope::Item(resource, _) | Scope::Resource(resource) = &scope {
            let resource = *resource;
            self.run(move |c| Box::pin(ensure_generation(c, store_id, resource)))
                .await?;
        }
        self.tx(move |c| {
            Box::pin(async move {
                match &scope {
                    Scope::Item(resource, id) => {
                        invalidate(c, store_id, *resource, Some(id)).await?
                    }
                    Scope::Resource(resource) => invalidate(c, store_id, *resource, None).await?,
                    // Every generation row the store has (a fill creates its row before it
                    // reads, so none in flight is missed), every row, every list record.
                    Scope::Store => {
                        c.exec(
                            "UPDATE store_cache.generations SET generation = generation + 1
                             WHERE store_id = @P1;
                             DELETE FROM store_cache.items WHERE store_id = @P1;
                             DELETE FROM store_cache.lists WHERE store_id = @P1",
                            &[&store_id],
                        )
                        .await?;
                    }
                }
                // The head row is locked last (after the generation rows, as every writer
                // orders them) and held until commit: feed ids commit in order.
                let (resource, item) = scope.to_columns();
                c.exec(
                    "UPDATE store_cache.invalidation_head SET last_id = last_id + 1 WHERE id = 1;
                     INSERT INTO store_cache.invalidations
                        (id, origin, store_id, resource, item_id, created_at)
                     SELECT last_id, @P1, @P2, @P3, @P4, @P5
                     FROM store_cache.invalidation_head WHERE id = 1",
                    &[&origin, &store_id, &resource, &item, &now_ms],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    pub(super) async fn feed_latest(&self) -> DbResult<i64> {
        self.run(|c| {
            Box::pin(async move {
                c.scalar(
                    "SELECT COALESCE(MAX(id), 0) FROM store_cache.invalidations",
                    &[],
                )
                .await
            })
        })
        .await
    }

    pub(super) async fn feed_since(&self, after_id: i64, limit: u32) -> DbResult<Vec<FeedEntry>> {
        let limit = i64::from(limit);
        self.run(move |c| {
            Box::pin(async move {
                c.rows(
                    "SELECT TOP (@P2) id, origin, store_id, resource, item_id
                     FROM store_cache.invalidations WHERE id > @P1 ORDER BY id",
                    &[&after_id, &limit],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(FeedEntry {
                        id: r.int(0)?,
                        origin: r.int(1)?,
                        store_id: r.int(2)?,
                        resource: r.opt_text(3)?,
                        item: r.opt_text(4)?,
                    })
                })
                .collect()
            })
        })
        .await
    }

    pub(super) async fn feed_prune(&self, before_ms: i64, limit: u32) -> DbResult<u64> {
        let limit = i64::from(limit);
        self.run(move |c| {
            Box::pin(async move {
                c.exec(
                    "DELETE TOP (@P2) FROM store_cache.invalidations WHERE created_at < @P1",
                    &[&before_ms, &limit],
                )
                .await
            })
        })
        .await
    }

    /// Only the instance itself writes its row, one write at a time: UPDATE, else INSERT.
    pub(super) async fn feed_ack(&self, ack: &FeedAck) -> DbResult<()> {
        let ack = ack.clone();
        self.run(move |c| {
            Box::pin(async move {
                let p: [&dyn tiberius::ToSql; 3] =
                    [&ack.instance_id, &ack.applied_id, &ack.heartbeat_ms];
                let updated = c
                    .exec(
                        "UPDATE store_cache.instances SET applied_id = @P2, heartbeat_at = @P3
                         WHERE instance_id = @P1",
                        &p,
                    )
                    .await?;
                if updated == 0 {
                    c.exec(
                        "INSERT INTO store_cache.instances (instance_id, applied_id, heartbeat_at)
                         VALUES (@P1, @P2, @P3)",
                        &p,
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }

    pub(super) async fn feed_ack_rows(&self) -> DbResult<Vec<FeedAck>> {
        self.run(|c| {
            Box::pin(async move {
                c.rows(
                    "SELECT instance_id, applied_id, heartbeat_at FROM store_cache.instances",
                    &[],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(FeedAck {
                        instance_id: r.int(0)?,
                        applied_id: r.int(1)?,
                        heartbeat_ms: r.int(2)?,
                    })
                })
                .collect()
            })
        })
        .await
    }

    pub(super) async fn feed_forget(
        &self,
        instance_id: Option<i64>,
        before_ms: i64,
    ) -> DbResult<u64> {
        self.run(move |c| {
            Box::pin(async move {
                c.exec(
                    "DELETE FROM store_cache.instances
                     WHERE instance_id = @P1 OR heartbeat_at < @P2",
                    &[&instance_id, &before_ms],
                )
                .await
            })
        })
        .await
    }
}
