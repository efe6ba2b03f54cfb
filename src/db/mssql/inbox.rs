//! T-SQL (SQL Server 2019+ / Babelfish 4.x): the webhook inbox `store_webhooks.inbox`.
//!
//! No `INSERT … ON CONFLICT` here: the claim inserts where the id does not exist yet, and a
//! concurrent twin that slips past the check fails on the primary key, which rolls its
//! transaction back (XACT_ABORT); it is then retried and finds the row.

use async_trait::async_trait;
use tiberius::error::Error as TdsError;

use super::{MssqlDb, RowExt};
use crate::db::{Claim, DbError, DbResult, Delivery, DeliveryStatus, InboxRepo, NewDelivery};

fn status(raw: &str) -> Result<DeliveryStatus, TdsError> {
    DeliveryStatus::parse(raw)
        .ok_or_else(|| TdsError::Conversion(format!("unknown inbox status {raw:?}").into()))
}

async fn claim(c: &mut super::Conn, d: &NewDelivery) -> Result<Claim, TdsError> {
    let store_ids: Vec<i64> = c
        .rows(
            // Business ids compare exactly, as on SQLite (the column's collation may not).
            "SELECT id FROM store_config.store_settings
             WHERE biz_business_id = @P1 COLLATE Latin1_General_BIN2",
            &[&d.business_id.as_str()],
        )
        .await?
        .iter()
        .map(|r| r.int(0))
        .collect::<Result<_, _>>()?;
    let new_status = if store_ids.is_empty() || d.ignore {
        DeliveryStatus::Ignored
    } else {
        DeliveryStatus::Processing
    };
    let inserted = c
        .exec(
            "INSERT INTO store_webhooks.inbox
                (webhook_id, event_type, business_id, item_id, occurred_at, status, received_at)
             SELECT @P1, @P2, @P3, @P4, @P5, @P6, @P7
             WHERE NOT EXISTS (SELECT 1 FROM store_webhooks.inbox WHERE webhook_id = @P1)",
            &[
                &d.webhook_id.as_str(),
                &d.event_type.as_str(),
                &d.business_id.as_str(),
                &d.item_id.as_str(),
                &d.occurred_at_ms,
                &new_status.as_str(),
                &d.received_at_ms,
            ],
        )
        .await?;
    if inserted == 1 {
        return Ok(match new_status {
            DeliveryStatus::Ignored => Claim::Ignored,
            _ => Claim::First { store_ids },
        });
    }
    // Recorded before: only an unfinished delivery is redone; the row count says which.
    let reclaimed = c
        .exec(
            "UPDATE store_webhooks.inbox SET attempts = attempts + 1, status = @P2
             WHERE webhook_id = @P1 AND status = 'processing'",
            &[&d.webhook_id.as_str(), &new_status.as_str()],
        )
        .await?;
    if reclaimed == 1 {
        return Ok(match new_status {
            DeliveryStatus::Ignored => Claim::Ignored,
            _ => Claim::Unfinished { store_ids },
        });
    }
    let row = c
        .row(
            "SELECT status FROM store_webhooks.inbox WHERE webhook_id = @P1",
            &[&d.webhook_id.as_str()],
        )
        .await?
        .ok_or_else(|| TdsError::Conversion("the inbox row vanished during its claim".into()))?;
    Ok(Claim::Duplicate(status(&row.text(0)?)?))
}

#[async_trait]
impl InboxRepo for MssqlDb {
    async fn claim_delivery(&self, delivery: &NewDelivery) -> DbResult<Claim> {
        let mut last = None;
        for _ in 0..3 {
            let d = delivery.clone();
            // A twin that won the primary key makes ours a duplicate-key error (Conflict):
            // try again, and the claim finds its row.
            match self
                .run(move |c| {
                    Box::pin(async move {
                        c.transaction(|c| Box::pin(async move { claim(c, &d).await }))
                            .await
                    })
                })
                .await
            {
                Err(DbError::Conflict(msg)) => last = Some(DbError::Conflict(msg)),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| DbError::Other(anyhow::anyhow!("the inbox claim kept racing"))))
    }

    async fn finish_delivery(&self, webhook_id: &str, processed_at_ms: i64) -> DbResult<()> {
        let id = webhook_id.to_string();
        self.run(move |c| {
            Box::pin(async move {
                c.exec(
                    "UPDATE store_webhooks.inbox SET status = 'processed', processed_at = @P2
                     WHERE webhook_id = @P1 AND status = 'processing'",
                    &[&id.as_str(), &processed_at_ms],
                )
                .await
                .map(|_| ())
            })
        })
        .await
    }

    async fn recent_deliveries(&self, store_id: i64, limit: u32) -> DbResult<Vec<Delivery>> {
        let limit = i64::from(limit);
        self.run(move |c| {
            Box::pin(async move {
                // `webhook_id` (binary collation) breaks ties so that deliveries within one
                // millisecond list stably, in the same order as on SQLite.
                c.rows(
                    "SELECT TOP (@P2) i.webhook_id, i.event_type, i.received_at, i.status
                     FROM store_webhooks.inbox AS i
                     JOIN store_config.store_settings AS s
                       ON s.biz_business_id = i.business_id COLLATE Latin1_General_BIN2
                     WHERE s.id = @P1
                     ORDER BY i.received_at DESC, i.webhook_id DESC",
                    &[&store_id, &limit],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok(Delivery {
                        id: r.text(0)?,
                        event_type: r.text(1)?,
                        received_at_ms: r.int(2)?,
                        status: status(&r.text(3)?)?,
                    })
                })
                .collect()
            })
        })
        .await
    }

    async fn prune_inbox(&self, before_ms: i64, limit: u32) -> DbResult<u64> {
        let limit = i64::from(limit);
        self.run(move |c| {
            Box::pin(async move {
                c.exec(
                    "DELETE TOP (@P2) FROM store_webhooks.inbox WHERE received_at < @P1",
                    &[&before_ms, &limit],
                )
                .await
            })
        })
        .await
    }
}
