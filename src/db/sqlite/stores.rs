//! SQLite: `store_config_store_settings` (SQL Server: `store_config.store_settings`).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::SqliteDb;
use crate::db::{
    DbResult, NewStore, StorePatch, StoreRecord, StoreRepo, origins_from_json, origins_to_json,
};

const COLUMNS: &str = "id, slug, name, biz_business_id, template, theme, custom_domain, \
                       is_published, created_at, updated_at, allowed_origins";

fn record(row: &Row<'_>) -> rusqlite::Result<StoreRecord> {
    Ok(StoreRecord {
        id: row.get(0)?,
        slug: row.get(1)?,
        name: row.get(2)?,
        biz_business_id: row.get(3)?,
        template: row.get(4)?,
        theme: row.get(5)?,
        custom_domain: row.get(6)?,
        is_published: row.get(7)?,
        created_at_ms: row.get(8)?,
        updated_at_ms: row.get(9)?,
        allowed_origins: origins_from_json(&row.get::<_, String>(10)?),
    })
}

impl SqliteDb {
    async fn store_where(
        &self,
        condition: &'static str,
        value: String,
    ) -> DbResult<Option<StoreRecord>> {
        self.call(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM store_config_store_settings WHERE {condition}"
            ))?
            .query_row([value], record)
            .optional()
        })
        .await
    }
}

#[async_trait]
impl StoreRepo for SqliteDb {
    async fn create_store(&self, new: NewStore) -> DbResult<StoreRecord> {
        self.call(move |c| {
            c.query_row(
                &format!(
                    "INSERT INTO store_config_store_settings
                        (slug, name, biz_business_id, template, theme, custom_domain,
                         is_published, api_key_hash, created_at, updated_at, allowed_origins)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?8, ?9)
                     RETURNING {COLUMNS}"
                ),
                params![
                    new.slug,
                    new.name,
                    new.biz_business_id,
                    new.template,
                    new.theme,
                    new.custom_domain,
                    new.api_key_hash,
                    new.now_ms,
                    origins_to_json(&new.allowed_origins)
                ],
                record,
            )
        })
        .await
    }

    async fn store_by_slug(&self, slug: &str) -> DbResult<Option<StoreRecord>> {
        self.store_where("slug = ?1", slug.to_string()).await
    }

    async fn store_by_domain(&self, domain: &str) -> DbResult<Option<StoreRecord>> {
        self.store_where("custom_domain = ?1", domain.to_string())
            .await
    }

    async fn store_by_api_key_hash(&self, hash: &str) -> DbResult<Option<StoreRecord>> {
        self.store_where("api_key_hash = ?1", hash.to_string())
            .await
    }

    async fn stores_by_business(&self, biz_business_id: &str) -> DbResult<Vec<StoreRecord>> {
        let business = biz_business_id.to_string();
        self.call(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM store_config_store_settings WHERE biz_business_id = ?1"
            ))?
            .query_map([business], record)?
            .collect()
        })
        .await
    }

    async fn update_store(
        &self,
        slug: &str,
        patch: StorePatch,
        now_ms: i64,
    ) -> DbResult<Option<StoreRecord>> {
        let slug = slug.to_string();
        self.call(move |c| {
            // COALESCE keeps a field whose patch value is NULL; custom_domain needs a flag of
            // its own because NULL is also a value it can be set to.
            let (set_domain, domain) = match patch.custom_domain {
                Some(d) => (true, d),
                None => (false, None),
            };
            c.query_row(
                &format!(
                    "UPDATE store_config_store_settings SET
                        name          = COALESCE(?2, name),
                        template      = COALESCE(?3, template),
                        theme         = COALESCE(?4, theme),
                        custom_domain = CASE WHEN ?5 THEN ?6 ELSE custom_domain END,
                        is_published  = COALESCE(?7, is_published),
                        updated_at    = ?8,
                        allowed_origins = COALESCE(?9, allowed_origins)
                     WHERE slug = ?1
                     RETURNING {COLUMNS}"
                ),
                params![
                    slug,
                    patch.name,
                    patch.template,
                    patch.theme,
                    set_domain,
                    domain,
                    patch.is_published,
                    now_ms,
                    patch.allowed_origins.as_deref().map(origins_to_json)
                ],
                record,
            )
            .optional()
        })
        .await
    }

    async fn set_api_key_hash(&self, slug: &str, hash: &str, now_ms: i64) -> DbResult<bool> {
        let (slug, hash) = (slug.to_string(), hash.to_string());
        self.call(move |c| {
            c.execute(
                "UPDATE store_config_store_settings SET api_key_hash = ?2, updated_at = ?3
                 WHERE slug = ?1",
                params![slug, hash, now_ms],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn store_allowing_origin(&self, origin: &str) -> DbResult<bool> {
        // Normalised origins hold no `"`, `%` or `_`, so this LIKE matches one whole array
        // element. A scan, but only for preflights on a shared host, which browsers cache.
        let pattern = format!("%\"{origin}\"%");
        self.call(move |c| {
            c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM store_config_store_settings
                                WHERE allowed_origins LIKE ?1)",
            )?
            .query_row([pattern], |r| r.get(0))
        })
        .await
    }

    async fn notify_store_changed(&self, store_id: i64, now_ms: i64) -> DbResult<()> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO store_config_changes (store_id, created_at) VALUES (?1, ?2)",
                params![store_id, now_ms],
            )
            .map(|_| ())
        })
        .await
    }

    async fn latest_store_change(&self) -> DbResult<i64> {
        self.call(|c| {
            c.query_row(
                "SELECT COALESCE(MAX(id), 0) FROM store_config_changes",
                [],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn api_key_hash(&self, slug: &str) -> DbResult<Option<String>> {
        let slug = slug.to_string();
        self.call(move |c| {
            c.query_row(
                "SELECT api_key_hash FROM store_config_store_settings WHERE slug = ?1",
                params![slug],
                |row| row.get(0),
            )
            .optional()
        })
        .await
    }

    async fn store_changes_since(&self, after_id: i64, limit: u32) -> DbResult<Vec<(i64, i64)>> {
        self.call(move |c| {
            c.prepare_cached(
                "SELECT id, store_id FROM store_config_changes WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?
            .query_map(params![after_id, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
        })
        .await
    }

    async fn prune_store_changes(&self, before_ms: i64, limit: u32) -> DbResult<u64> {
        self.call(move |c| {
            c.execute(
                "DELETE FROM store_config_changes WHERE id IN
                    (SELECT id FROM store_config_changes WHERE created_at < ?1 ORDER BY id LIMIT ?2)",
                params![before_ms, limit],
            )
            .map(|n| n as u64)
        })
        .await
    }

    async fn replace_api_key_hash(
        &self,
        slug: &str,
        expected: &str,
        hash: &str,
        now_ms: i64,
    ) -> DbResult<bool> {
        let (slug, expected, hash) = (slug.to_string(), expected.to_string(), hash.to_string());
        self.call(move |c| {
            c.execute(
                "UPDATE store_config_store_settings SET api_key_hash = ?3, updated_at = ?4
                 WHERE slug = ?1 AND api_key_hash = ?2",
                params![slug, expected, hash, now_ms],
            )
            .map(|n| n == 1)
        })
        .await
    }
}
