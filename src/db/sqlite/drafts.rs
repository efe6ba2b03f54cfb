//! SQLite: `store_booking_drafts` and `store_booking_idempotency_keys`
//! (SQL Server: `store_booking.drafts`, `store_booking.idempotency_keys`).
//!
//! Claims, takeovers, finishes and cancels are conditional UPDATEs inside `BEGIN IMMEDIATE`
//! transactions: the row count decides who won, and instances sharing the file serialise on
//! SQLite's write lock. Batched maintenance uses `rowid IN (SELECT … LIMIT n)` (SQL Server:
//! `UPDATE TOP (n)`).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, Transaction, named_params, params};

use super::SqliteDb;
use super::analytics::insert_event;
use crate::db::{
    ClaimOutcome, ClaimRules, ConfirmFinish, CustomerDetails, DbResult, DraftCreation,
    DraftFailure, DraftRecord, DraftRepo, DraftStatus, IdempotencyKey, KeyedDraft, NewDraft,
    NewEvent,
};

const COLUMNS: &str = "id, store_id, status, service_id, staff_id, start_at, end_at, \
     duration_minutes, price, customer_name, customer_phone, customer_email, notes, expires_at, \
     confirm_attempts, claimed_at, booking, failure_code, failure_detail, created_at, ended_at";

fn draft_from_row(row: &Row<'_>) -> rusqlite::Result<DraftRecord> {
    let status: String = row.get("status")?;
    let status = DraftStatus::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            format!("unknown draft status {status:?}").into(),
        )
    })?;
    let failure_code: Option<String> = row.get("failure_code")?;
    Ok(DraftRecord {
        id: row.get("id")?,
        store_id: row.get("store_id")?,
        status,
        service_id: row.get("service_id")?,
        staff_id: row.get("staff_id")?,
        start_at_ms: row.get("start_at")?,
        end_at_ms: row.get("end_at")?,
        duration_minutes: row.get("duration_minutes")?,
        price: row.get("price")?,
        customer: CustomerDetails {
            name: row.get("customer_name")?,
            phone: row.get("customer_phone")?,
            email: row.get("customer_email")?,
        },
        notes: row.get("notes")?,
        expires_at_ms: row.get("expires_at")?,
        confirm_attempts: row.get("confirm_attempts")?,
        claimed_at_ms: row.get("claimed_at")?,
        booking: row.get("booking")?,
        failure: failure_code
            .map(|code| -> rusqlite::Result<_> {
                Ok(DraftFailure {
                    code,
                    detail: row.get("failure_detail")?,
                })
            })
            .transpose()?,
        created_at_ms: row.get("created_at")?,
        ended_at_ms: row.get("ended_at")?,
    })
}

fn select_draft(
    conn: &rusqlite::Connection,
    store_id: i64,
    id: &str,
) -> rusqlite::Result<Option<DraftRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM store_booking_drafts WHERE id = ?1 AND store_id = ?2"
    ))?
    .query_row(params![id, store_id], draft_from_row)
    .optional()
}

/// The key's holder, if the key is live (younger than `not_before_ms`).
fn select_keyed(
    conn: &rusqlite::Connection,
    store_id: i64,
    key: &str,
    not_before_ms: i64,
) -> rusqlite::Result<Option<KeyedDraft>> {
    let held: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT request_hash, draft_id FROM store_booking_idempotency_keys
             WHERE store_id = ?1 AND idempotency_key = ?2 AND created_at >= ?3",
        )?
        .query_row(params![store_id, key, not_before_ms], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((request_hash, draft_id)) = held else {
        return Ok(None);
    };
    Ok(
        select_draft(conn, store_id, &draft_id)?.map(|draft| KeyedDraft {
            request_hash,
            draft,
        }),
    )
}

fn insert_draft(tx: &Transaction<'_>, d: &NewDraft) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO store_booking_drafts
            (id, store_id, status, service_id, staff_id, start_at, end_at, duration_minutes,
             price, customer_name, customer_phone, customer_email, notes, expires_at,
             created_at, updated_at)
         VALUES (:id, :store_id, 'draft', :service_id, :staff_id, :start_at, :end_at,
                 :duration, :price, :name, :phone, :email, :notes, :expires_at, :now, :now)",
    )?
    .execute(named_params! {
        ":id": d.id, ":store_id": d.store_id, ":service_id": d.service_id,
        ":staff_id": d.staff_id, ":start_at": d.start_at_ms, ":end_at": d.end_at_ms,
        ":duration": d.duration_minutes, ":price": d.price, ":name": d.customer.name,
        ":phone": d.customer.phone, ":email": d.customer.email, ":notes": d.notes,
        ":expires_at": d.expires_at_ms, ":now": d.created_at_ms,
    })?;
    Ok(())
}

#[async_trait]
impl DraftRepo for SqliteDb {
    async fn draft(&self, store_id: i64, id: &str) -> DbResult<Option<DraftRecord>> {
        let id = id.to_owned();
        self.call(move |conn| select_draft(conn, store_id, &id))
            .await
    }

    async fn idempotent_draft(
        &self,
        store_id: i64,
        key: &str,
        not_before_ms: i64,
    ) -> DbResult<Option<KeyedDraft>> {
        let key = key.to_owned();
        self.call(move |conn| select_keyed(conn, store_id, &key, not_before_ms))
            .await
    }

    async fn create_draft(
        &self,
        draft: NewDraft,
        key: Option<IdempotencyKey>,
        event: NewEvent,
    ) -> DbResult<DraftCreation> {
        self.write_tx(move |tx| {
            if let Some(k) = &key {
                // Under the write lock: a concurrent create with the same key either committed
                // before us (and is found here) or waits for us and finds ours.
                if let Some(held) = select_keyed(tx, draft.store_id, &k.key, k.not_before_ms)? {
                    return Ok(DraftCreation::Existing(held));
                }
                tx.execute(
                    "DELETE FROM store_booking_idempotency_keys
                     WHERE store_id = ?1 AND idempotency_key = ?2",
                    params![draft.store_id, k.key],
                )?;
            }
            insert_draft(tx, &draft)?;
            if let Some(k) = &key {
                tx.execute(
                    "INSERT INTO store_booking_idempotency_keys
                        (store_id, idempotency_key, request_hash, draft_id, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        draft.store_id,
                        k.key,
                        k.request_hash,
                        draft.id,
                        draft.created_at_ms
                    ],
                )?;
            }
            insert_event(tx, &event)?;
            let created = select_draft(tx, draft.store_id, &draft.id)?
                .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            Ok(DraftCreation::Created(created))
        })
        .await
    }

    async fn claim_draft(
        &self,
        store_id: i64,
        id: &str,
        rules: ClaimRules,
    ) -> DbResult<ClaimOutcome> {
        let id = id.to_owned();
        self.write_tx(move |tx| {
            // Confirmable: open, or past its TTL only while an earlier attempt's outcome is
            // unknown (then a retry is how the client learns it).
            let mut claimed = tx
                .prepare_cached(
                    "UPDATE store_booking_drafts
                     SET status = 'confirming', claimed_at = :now,
                         confirm_attempts = confirm_attempts + 1, updated_at = :now
                     WHERE id = :id AND store_id = :store_id AND status = 'draft'
                       AND (expires_at > :now
                            OR (confirm_attempts > 0 AND expires_at > :now - :grace))",
                )?
                .execute(named_params! {
                    ":id": id, ":store_id": store_id, ":now": rules.now_ms,
                    ":grace": rules.unresolved_grace_ms,
                })?;
            if claimed == 0 {
                // Takeover of a claim whose instance died between claiming and hearing back.
                claimed = tx
                    .prepare_cached(
                        "UPDATE store_booking_drafts
                         SET claimed_at = :now, confirm_attempts = confirm_attempts + 1,
                             updated_at = :now
                         WHERE id = :id AND store_id = :store_id AND status = 'confirming'
                           AND claimed_at < :stale_before",
                    )?
                    .execute(named_params! {
                        ":id": id, ":store_id": store_id, ":now": rules.now_ms,
                        ":stale_before": rules.stale_before_ms,
                    })?;
            }
            let draft = select_draft(tx, store_id, &id)?;
            Ok(ClaimOutcome::decide(claimed as u64, draft))
        })
        .await
    }

    async fn finish_confirm(
        &self,
        store_id: i64,
        id: &str,
        attempt: i64,
        finish: ConfirmFinish,
        now_ms: i64,
    ) -> DbResult<Option<DraftRecord>> {
        let id = id.to_owned();
        self.write_tx(move |tx| {
            // A release applies only while the claim is still ours: a takeover bumped
            // confirm_attempts, and the stale-claim job may have released it.
            let fence = "WHERE id = :id AND store_id = :store_id AND status = 'confirming'
                           AND confirm_attempts = :attempt";
            // Biz's definite answer is a fact (it holds the booking, or refused it), so it is
            // recorded even when the fence moved while the answer was on its way — released as
            // stale, or taken over by another instance whose call Biz will answer the same —
            // as long as the draft has not ended.
            let open = "WHERE id = :id AND store_id = :store_id
                          AND status IN ('draft', 'confirming', 'expired')";
            let base = named_params! {":id": id, ":store_id": store_id};
            let (changed, event) = match &finish {
                ConfirmFinish::Confirmed { booking, event } => {
                    let sql = format!(
                        "UPDATE store_booking_drafts
                         SET status = 'confirmed', booking = :booking, claimed_at = NULL,
                             ended_at = :now, updated_at = :now {open}"
                    );
                    let mut params = base.to_vec();
                    params.extend(named_params! {":booking": booking, ":now": now_ms});
                    (tx.prepare_cached(&sql)?.execute(&*params)?, Some(event))
                }
                ConfirmFinish::Failed { failure, event } => {
                    let sql = format!(
                        "UPDATE store_booking_drafts
                         SET status = 'failed', failure_code = :code, failure_detail = :detail,
                             claimed_at = NULL, ended_at = :now, updated_at = :now {open}"
                    );
                    let mut params = base.to_vec();
                    params.extend(named_params! {
                        ":code": failure.code, ":detail": failure.detail, ":now": now_ms,
                    });
                    (tx.prepare_cached(&sql)?.execute(&*params)?, Some(event))
                }
                ConfirmFinish::Released => {
                    let sql = format!(
                        "UPDATE store_booking_drafts
                         SET status = 'draft', claimed_at = NULL, updated_at = :now {fence}"
                    );
                    let mut params = base.to_vec();
                    params.extend(named_params! {":now": now_ms, ":attempt": attempt});
                    (tx.prepare_cached(&sql)?.execute(&*params)?, None)
                }
            };
            if changed == 0 {
                // A lost release writes nothing; a definite answer that found the draft ended
                // (a takeover recorded the same, replayed answer first) answers what is there.
                return match event {
                    None => Ok(None),
                    Some(_) => select_draft(tx, store_id, &id),
                };
            }
            if let Some(event) = event {
                insert_event(tx, event)?;
            }
            select_draft(tx, store_id, &id)
        })
        .await
    }

    async fn cancel_draft(
        &self,
        store_id: i64,
        id: &str,
        now_ms: i64,
    ) -> DbResult<Option<DraftRecord>> {
        let id = id.to_owned();
        self.write_tx(move |tx| {
            tx.prepare_cached(
                "UPDATE store_booking_drafts
                 SET status = 'cancelled', ended_at = :now, updated_at = :now
                 WHERE id = :id AND store_id = :store_id AND status = 'draft'
                   AND confirm_attempts = 0 AND expires_at > :now",
            )?
            .execute(named_params! {":id": id, ":store_id": store_id, ":now": now_ms})?;
            select_draft(tx, store_id, &id)
        })
        .await
    }

    async fn release_stale_claims(&self, stale_before_ms: i64, limit: u32) -> DbResult<u64> {
        self.write_tx(move |tx| {
            let n = tx.execute(
                "UPDATE store_booking_drafts SET status = 'draft', claimed_at = NULL
                 WHERE rowid IN (SELECT rowid FROM store_booking_drafts
                                 WHERE status = 'confirming' AND claimed_at < ?1 LIMIT ?2)",
                params![stale_before_ms, limit],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn expire_drafts(
        &self,
        now_ms: i64,
        unresolved_grace_ms: i64,
        limit: u32,
    ) -> DbResult<u64> {
        self.write_tx(move |tx| {
            // The exact negation of the claim's "confirmable" condition; ended_at is the moment
            // the draft stopped being confirmable, not the moment this job noticed.
            let n = tx.execute(
                "UPDATE store_booking_drafts
                 SET status = 'expired', updated_at = :now,
                     ended_at = CASE WHEN confirm_attempts = 0 THEN expires_at
                                     ELSE expires_at + :grace END
                 WHERE rowid IN (
                     SELECT rowid FROM store_booking_drafts
                     WHERE status = 'draft' AND expires_at <= :now
                       AND (confirm_attempts = 0 OR expires_at <= :now - :grace)
                     LIMIT :limit)",
                named_params! {":now": now_ms, ":grace": unresolved_grace_ms, ":limit": limit},
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn erase_ended_drafts(
        &self,
        ended_before_ms: i64,
        now_ms: i64,
        limit: u32,
    ) -> DbResult<u64> {
        self.write_tx(move |tx| {
            // Biz's answer is kept (a repeated confirm replays it) but loses any client echo.
            let n = tx.execute(
                "UPDATE store_booking_drafts
                 SET customer_name = NULL, customer_phone = NULL, customer_email = NULL,
                     notes = NULL, failure_detail = NULL,
                     booking = CASE WHEN booking IS NULL THEN NULL
                                    ELSE json_remove(booking, '$.client') END,
                     erased_at = :now
                 WHERE rowid IN (
                     SELECT rowid FROM store_booking_drafts
                     WHERE erased_at IS NULL AND ended_at < :before LIMIT :limit)",
                named_params! {":now": now_ms, ":before": ended_before_ms, ":limit": limit},
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn purge_idempotency_keys(&self, before_ms: i64, limit: u32) -> DbResult<u64> {
        self.write_tx(move |tx| {
            let n = tx.execute(
                "DELETE FROM store_booking_idempotency_keys
                 WHERE rowid IN (SELECT rowid FROM store_booking_idempotency_keys
                                 WHERE created_at < ?1 LIMIT ?2)",
                params![before_ms, limit],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn delete_ended_drafts(&self, ended_before_ms: i64, limit: u32) -> DbResult<u64> {
        self.write_tx(move |tx| {
            // Idempotency keys naming a deleted draft go by ON DELETE CASCADE.
            let n = tx.execute(
                "DELETE FROM store_booking_drafts
                 WHERE rowid IN (SELECT rowid FROM store_booking_drafts
                                 WHERE erased_at IS NOT NULL AND ended_at < ?1 LIMIT ?2)",
                params![ended_before_ms, limit],
            )?;
            Ok(n as u64)
        })
        .await
    }
}
