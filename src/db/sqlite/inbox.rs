//! SQLite: `store_webhooks_inbox` (SQL Server: `store_webhooks.inbox`).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};

use super::SqliteDb;
use super::cache::invalidate_scope;
use crate::db::{Claim, DbResult, Delivery, DeliveryStatus, InboxRepo, NewDelivery, Scope};

fn status(raw: String) -> rusqlite::Result<DeliveryStatus> {
    DeliveryStatus::parse(&raw).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown inbox status {raw:?}").into(),
        )
    })
}

fn claim(tx: &Transaction<'_>, d: &NewDelivery) -> rusqlite::Result<Claim> {
    let store_ids: Vec<i64> = tx
        .prepare_cached("SELECT id FROM store_config_store_settings WHERE biz_business_id = ?1")?
        .query_map([&d.business_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let new_status = if store_ids.is_empty() || d.ignore {
        DeliveryStatus::Ignored
    } else {
        DeliveryStatus::Processing
    };
    // The primary key decides who saw the id first (SQL Server: a plain INSERT whose
    // duplicate-key error 2627 means "recorded before").
    let inserted = tx
        .prepare_cached(
            "INSERT INTO store_webhooks_inbox
                (webhook_id, event_type, business_id, item_id, occurred_at, status, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (webhook_id) DO NOTHING",
        )?
        .execute(params![
            d.webhook_id,
            d.event_type,
            d.business_id,
            d.item_id,
            d.occurred_at_ms,
            new_status.as_str(),
            d.received_at_ms
        ])?;
    if inserted == 1 {
        return Ok(match new_status {
            DeliveryStatus::Ignored => Claim::Ignored,
            _ => Claim::First { store_ids },
        });
    }
    // Recorded before: only an unfinished delivery is worth redoing; the conditional update's
    // row count says whether it was one.
    let reclaimed = tx
        .prepare_cached(
            "UPDATE store_webhooks_inbox SET attempts = attempts + 1, status = ?2
             WHERE webhook_id = ?1 AND status = 'processing'",
        )?
        .execute(params![d.webhook_id, new_status.as_str()])?;
    if reclaimed == 1 {
        return Ok(match new_status {
            DeliveryStatus::Ignored => Claim::Ignored,
            _ => Claim::Unfinished { store_ids },
        });
    }
    let recorded: String = tx
        .prepare_cached("SELECT status FROM store_webhooks_inbox WHERE webhook_id = ?1")?
        .query_row([&d.webhook_id], |r| r.get(0))?;
    Ok(Claim::Duplicate(status(recorded)?))
}

/// The claim and, when the delivery is this caller's to process, its invalidations, in the
/// caller's one transaction: concurrent deliveries share the writer's commit (see `writer`).
pub(super) fn claim_and_invalidate(
    tx: &Transaction<'_>,
    d: &NewDelivery,
    scopes: &[Scope],
    origin: i64,
    now_ms: i64,
) -> rusqlite::Result<Claim> {
    let claim = claim(tx, d)?;
    if let Claim::First { store_ids } | Claim::Unfinished { store_ids } = &claim {
        for store_id in store_ids {
            for scope in scopes {
                invalidate_scope(tx, *store_id, scope, origin, now_ms)?;
            }
        }
    }
    Ok(claim)
}

#[async_trait]
impl InboxRepo for SqliteDb {
    async fn claim_delivery(&self, delivery: &NewDelivery) -> DbResult<Claim> {
        let delivery = delivery.clone();
        self.write_tx(move |tx| claim(tx, &delivery)).await
    }

    async fn finish_delivery(&self, webhook_id: &str, processed_at_ms: i64) -> DbResult<()> {
        let webhook_id = webhook_id.to_string();
        self.write_tx(move |c| {
            c.prepare_cached(
                "UPDATE store_webhooks_inbox SET status = 'processed', processed_at = ?2
                 WHERE webhook_id = ?1 AND status = 'processing'",
            )?
            .execute(params![webhook_id, processed_at_ms])
            .map(|_| ())
        })
        .await
    }

    async fn recent_deliveries(&self, store_id: i64, limit: u32) -> DbResult<Vec<Delivery>> {
        self.call(move |c| {
            let business: Option<String> = c
                .prepare_cached(
                    "SELECT biz_business_id FROM store_config_store_settings WHERE id = ?1",
                )?
                .query_row([store_id], |r| r.get(0))
                .optional()?;
            let Some(business) = business else {
                return Ok(Vec::new());
            };
            c.prepare_cached(
                "SELECT webhook_id, event_type, received_at, status FROM store_webhooks_inbox
                 WHERE business_id = ?1
                 ORDER BY received_at DESC, rowid DESC
                 LIMIT ?2",
            )?
            .query_map(params![business, limit], |r| {
                Ok(Delivery {
                    id: r.get(0)?,
                    event_type: r.get(1)?,
                    received_at_ms: r.get(2)?,
                    status: status(r.get(3)?)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn prune_inbox(&self, before_ms: i64, limit: u32) -> DbResult<u64> {
        self.write_tx(move |c| {
            c.prepare_cached(
                "DELETE FROM store_webhooks_inbox WHERE rowid IN
                 (SELECT rowid FROM store_webhooks_inbox WHERE received_at < ?1 LIMIT ?2)",
            )?
            .execute(params![before_ms, limit])
            .map(|n| n as u64)
        })
        .await
    }
}
