//! T-SQL (SQL Server 2019+ / Babelfish 4.x): `store_config.store_settings`.
//!
//! A store is created with its three `store_cache.generations` rows in one transaction, so that
//! cache writers only ever UPDATE a generation row (no insert race to lose).

use async_trait::async_trait;
use tiberius::Row;

use super::{Conn, MssqlDb, RowExt};
use crate::catalog::Resource;
use crate::db::{DbResult, NewStore, StorePatch, StoreRecord, StoreRepo};

const COLUMNS: &str = "id, slug, name, biz_business_id, template, theme, custom_domain, \
                       is_published, created_at, updated_at";

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
                         is_published, api_key_hash, created_at, updated_at)
                     VALUES (@P1, @P2, @P3, @P4, @P5, @P6, 0, @P7, @P8, @P8)",
                    &[
                        &new.slug,
                        &new.name,
                        &new.biz_business_id,
                        &new.template,
                        &new.theme,
                        &new.custom_domain,
                        &new.api_key_hash,
                        &new.now_ms,
                    ],
                )
                .await?;
                let store = select_by_slug(c, &new.slug).await?.ok_or_else(|| {
                    tiberius::error::Error::Conversion("the new store is not readable".into())
                })?;
                for resource in Resource::ALL {
                    c.exec(
                        "INSERT INTO store_cache.generations (store_id, resource, generation)
                         VALUES (@P1, @P2, 0)",
                        &[&store.id, &resource.as_str()],
                    )
                    .await?;
                }
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
                let changed = c
                    .exec(
                        "UPDATE store_config.store_settings SET
                            name          = COALESCE(@P2, name),
                            template      = COALESCE(@P3, template),
                            theme         = COALESCE(@P4, theme),
                            custom_domain = CASE WHEN @P5 = 1 THEN @P6 ELSE custom_domain END,
                            is_published  = COALESCE(@P7, is_published),
                            updated_at    = @P8
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
