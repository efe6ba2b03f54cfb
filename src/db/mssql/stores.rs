//! T-SQL (SQL Server 2019+ / Babelfish 4.x): `store_config.store_settings`.
//!
//! A store is created with its three `store_cache.generations` rows in one transaction, so that
//! cache writers only ever UPDATE a generation row (no insert race to lose).

use async_trait::async_trait;
use tiberius::Row;

use super::{Conn, MssqlDb, RowExt};
use crate::db::{
    DbResult, NewStore, StorePatch, StoreRecord, StoreRepo, origins_from_json, origins_to_json,
};

const COLUMNS: &str = "id, slug, name, biz_business_id, template, theme, custom_domain, \
                       is_published, created_at, updated_at, allowed_origins";

fn record(row: &Row) -> Result<StoreRecord, tiberius::error::Error> {
    Ok(StoreRecord {
        id: row.int(0)?,
        slug: row.text(1)?,
        name: row.text(2)?,
        biz_business_id: row.text(3)?,
        template: row.text(4)?,
        theme: row.text(5)?,
        custom_domain: row.opt_text(6)?,
        is_published: row.flag(7)?,
        created_at_ms: row.int(8)?,
        updated_at_ms: row.int(9)?,
        allowed_origins: origins_from_json(&row.text(10)?),
    })
}

async fn select_by_slug(
    c: &mut Conn,
    slug: &str,
) -> Result<Option<StoreRecord>, tiberius::error::Error> {
    c.row(
        &format!("SELECT {COLUMNS} FROM store_config.store_settings WHERE slug = @P1"),
        &[&slug],
    )
    .await?
    .as_ref()
    .map(record)
    .transpose()
}

impl MssqlDb {
    async fn store_where(
        &self,
        condition: &'static str,
        value: String,
    ) -> DbResult<Option<StoreRecord>> {
        self.run(move |c| {
            Box::pin(async move {
                let sql =
                    format!("SELECT {COLUMNS} FROM store_config.store_settings WHERE {condition}");
                c.row(&sql, &[&value])
                    .await?
                    .as_ref()
                    .map(record)
                    .transpose()
            })
        })
        .await
    }
}

#[async_trait]
impl StoreRepo for MssqlDb {
    async fn create_store(&self, new: NewStore) -> DbResult<StoreRecord> {
        self.tx(move |c| {
            Box::pin(async move {
                c.exec(
                    "INSERT INTO store_config.store_settings
                        (slug, name, biz_business_id, template, theme, custom_domain,
                         is_published, api_key_hash, created_at, updated_at, allowed_origins)
                     VALUES (@P1, @P2, @P3, @P4, @P5, @P6, 0, @P7, @P8, @P8, @P9)",
                    &[
                        &new.slug,
                        &new.name,
                        &new.biz_business_id,
                        &new.template,
                        &new.theme,
                        &new.custom_domain,
                        &new.api_key_hash,
                        &new.now_ms,
                        &origins_to_json(&new.allowed_origins),
                    ],
                )
                .await?;
                let store = select_by_slug(c, &new.slug).await?.ok_or_else(|| {
                    tiberius::error::Error::Conversion("the new store is not readable".into())
                })?;
                Ok(store)
            })
        })
        .await
    }

    async fn store_by_slug(&self, slug: &str) -> DbResult<Option<StoreRecord>> {
        self.store_where("slug = @P1", slug.to_string()).await
    }

    async fn store_by_domain(&self, domain: &str) -> DbResult<Option<StoreRecord>> {
        self.store_where("custom_domain = @P1", domain.to_string())
            .await
    }

    async fn store_by_api_key_hash(&self, hash: &str) -> DbResult<Option<StoreRecord>> {
        self.store_where("api_key_hash = @P1", hash.to_string())
            .await
    }

    /// Business ids compare exactly (binary collation), as on SQLite: `biz_A` is not `biz_a`.
    async fn stores_by_business(&self, biz_business_id: &str) -> DbResult<Vec<StoreRecord>> {
        let business = biz_business_id.to_string();
        self.run(move |c| {
            Box::pin(async move {
                c.rows(
                    &format!(
                        "SELECT {COLUMNS} FROM store_config.store_settings
                         WHERE biz_business_id = @P1 COLLATE Latin1_General_BIN2
                         ORDER BY id"
                    ),
                    &[&business],
                )
                .await?
                .iter()
                .map(record)
                .collect()
            })
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
        self.tx(move |c| {
            Box::pin(async move {
                // COALESCE keeps a field whose patch value is NULL; custom_domain needs a flag
                // of its own because NULL is also a value it can be set to.
                let (set_domain, domain) = match patch.custom_domain {
                    Some(d) => (true, d),
                    None => (false, None),
                };
                let origins = patch.allowed_origins.as_deref().map(origins_to_json);
                let changed = c
                    .exec(
                        "UPDATE store_config.store_settings SET
                            name          = COALESCE(@P2, name),
                            template      = COALESCE(@P3, template),
                            theme         = COALESCE(@P4, theme),
                            custom_domain = CASE WHEN @P5 = 1 THEN @P6 ELSE custom_domain END,
                            is_published  = COALESCE(@P7, is_published),
                            updated_at    = @P8,
                            allowed_origins = COALESCE(@P9, allowed_origins)
                         WHERE slug = @P1",
                        &[
                            &slug,
                            &patch.name,
                            &patch.template,
                            &patch.theme,
                            &set_domain,
                            &domain,
                            &patch.is_published,
                            &now_ms,
                            &origins,
                        ],
                    )
                    .await?;
                if changed == 0 {
                    return Ok(None);
                }
                select_by_slug(c, &slug).await
            })
        })
        .await
    }

    async fn set_api_key_hash(&self, slug: &str, hash: &str, now_ms: i64) -> DbResult<bool> {
        let (slug, hash) = (slug.to_string(), hash.to_string());
        self.run(move |c| {
            Box::pin(async move {
                c.exec(
                    "UPDATE store_config.store_settings SET api_key_hash = @P2, updated_at = @P3
                     WHERE slug = @P1",
                    &[&slug, &hash, &now_ms],
                )
                .await
                .map(|n| n == 1)
            })
        })
        .await
    }

    async fn store_allowing_origin(&self, origin: &str) -> DbResult<bool> {
        // Normalised origins hold no `"`, `%`, `_` or `[`, so this LIKE matches one whole array
        // element (OPENJSON would too, but Babelfish's support of it is partial). A scan, but
        // only for preflights on a shared host, which browsers cache.
        let pattern = format!("%\"{origin}\"%");
        self.run(move |c| {
            Box::pin(async move {
                c.scalar(
                    "SELECT COUNT_BIG(*) FROM store_config.store_settings
                     WHERE allowed_origins LIKE @P1",
                    &[&pattern],
                )
                .await
                .map(|n| n > 0)
            })
        })
        .await
    }

    async fn notify_store_changed(&self, store_id: i64, now_ms: i64) -> DbResult<()> {
        self.run(move |c| {
            Box::pin(async move {
                c.exec(
                    "INSERT INTO store_config.changes (store_id, created_at) VALUES (@P1, @P2)",
                    &[&store_id, &now_ms],
                )
                .await
                .map(|_| ())
            })
        })
        .await
    }

    async fn latest_store_change(&self) -> DbResult<i64> {
        self.run(|c| {
            Box::pin(async move {
                c.scalar(
                    "SELECT COALESCE(MAX(id), CAST(0 AS BIGINT)) FROM store_config.changes",
                    &[],
                )
                .await
            })
        })
        .await
    }

    async fn store_changes_since(&self, after_id: i64, limit: u32) -> DbResult<Vec<(i64, i64)>> {
        let limit = i64::from(limit);
        self.run(move |c| {
            Box::pin(async move {
                c.rows(
                    "SELECT TOP (@P2) id, store_id FROM store_config.changes
                     WHERE id > @P1 ORDER BY id",
                    &[&after_id, &limit],
                )
                .await?
                .iter()
                .map(|r| Ok((r.int(0)?, r.int(1)?)))
                .collect()
            })
        })
        .await
    }

    async fn api_key_hash(&self, slug: &str) -> DbResult<Option<String>> {
        let slug = slug.to_string();
        self.run(move |c| {
            Box::pin(async move {
                c.row(
                    "SELECT api_key_hash FROM store_config.store_settings WHERE slug = @P1",
                    &[&slug],
                )
                .await?
                .as_ref()
                .map(|row| row.text(0))
                .transpose()
            })
        })
        .await
    }

    async fn prune_store_changes(&self, before_ms: i64, limit: u32) -> DbResult<u64> {
        let limit = i64::from(limit);
        self.run(move |c| {
            Box::pin(async move {
                c.exec(
                    "DELETE TOP (@P2) FROM store_config.changes WHERE created_at < @P1",
                    &[&before_ms, &limit],
                )
                .await
            })
        })
        .await
    }

    /// The row count of the conditional UPDATE decides (no OUTPUT, no lock hints): SQL Server
    /// takes an update lock on the row, so of two concurrent rotations from one key the
    /// second re-evaluates `api_key_hash = @P2` after the first commits and changes nothing.
    async fn replace_api_key_hash(
        &self,
        slug: &str,
        expected: &str,
        hash: &str,
        now_ms: i64,
    ) -> DbResult<bool> {
        let (slug, expected, hash) = (slug.to_string(), expected.to_string(), hash.to_string());
        self.run(move |c| {
            Box::pin(async move {
                c.exec(
                    "UPDATE store_config.store_settings SET api_key_hash = @P3, updated_at = @P4
                     WHERE slug = @P1 AND api_key_hash = @P2",
                    &[&slug, &expected, &hash, &now_ms],
                )
                .await
                .map(|n| n == 1)
            })
        })
        .await
    }
}
