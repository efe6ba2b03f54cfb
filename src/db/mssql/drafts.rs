//! T-SQL (SQL Server 2019+ / Babelfish 4.x): `store_booking.drafts` and
//! `store_booking.idempotency_keys`.
//!
//! Claims, takeovers, finishes and cancels are conditional UPDATEs whose row count decides
//! who won; both servers re-check an UPDATE's WHERE against the committed row after waiting
//! for its lock, so of two racing claims exactly one counts a row. A create racing another
//! with the same Idempotency-Key loses on the key's primary key (the INSERT waits for the
//! winner, then fails as a duplicate) and answers the winner's draft. Batched maintenance is
//! `UPDATE TOP (n)` / `DELETE TOP (n)`.

use async_trait::async_trait;
use tiberius::ToSql;
use tiberius::error::Error as TdsError;

use super::analytics::insert_event;
use super::draft_rows::{insert_draft, select_draft, select_keyed};
use super::{Conn, MssqlDb};
use crate::db::{
    ClaimOutcome, ClaimRules, ConfirmFinish, DbError, DbResult, DraftCreation, DraftRecord,
    DraftRepo, IdempotencyKey, KeyedDraft, NewDraft, NewEvent,
};

/// Runs one conditional change, then the event it reports (if it changed a row), then reads the
/// draft back; `None` when the change counted no row.
async fn change_then_read(
    c: &mut Conn,
    store_id: i64,
    id: &str,
    sql: &str,
    params: &[&dyn ToSql],
    event: Option<&NewEvent>,
) -> Result<Option<DraftRecord>, TdsError> {
    if c.exec(sql, params).await? == 0 {
        // A lost release writes nothing; a definite answer that found the draft ended (a
        // takeover recorded the same, replayed answer first) answers what is there.
        return match event {
            None => Ok(None),
            Some(_) => select_draft(c, store_id, id).await,
        };
    }
    if let Some(event) = event {
        insert_event(c, event).await?;
    }
    select_draft(c, store_id, id).await
}

#[async_trait]
impl DraftRepo for MssqlDb {
    async fn draft(&self, store_id: i64, id: &str) -> DbResult<Option<DraftRecord>> {
        let id = id.to_owned();
        self.run(move |c| Box::pin(async move { select_draft(c, store_id, &id).await }))
            .await
    }

    async fn idempotent_draft(
        &self,
        store_id: i64,
        key: &str,
        not_before_ms: i64,
    ) -> DbResult<Option<KeyedDraft>> {
        let key = key.to_owned();
        self.run(move |c| {
            Box::pin(async move { select_keyed(c, store_id, &key, not_before_ms).await })
        })
        .await
    }

    async fn create_draft(
        &self,
        draft: NewDraft,
        key: Option<IdempotencyKey>,
        event: NewEvent,
    ) -> DbResult<DraftCreation> {
        let (store_id, held_key) = (draft.store_id, key.clone());
        let created = self
            .tx(move |c| {
                Box::pin(async move {
                    if let Some(k) = &key {
                        if let Some(held) =
                            select_keyed(c, draft.store_id, &k.key, k.not_before_ms).await?
                        {
                            return Ok(DraftCreation::Existing(held));
                        }
                        // An expired key of the same name is forgotten before reuse. Only an
                        // expired one: a live key another create committed since the SELECT above
                        // must survive, so that our INSERT of it fails and we answer its draft.
                        c.exec(
                            "DELETE FROM store_booking.idempotency_keys
                             WHERE store_id = @P1 AND idempotency_key = @P2 AND created_at < @P3",
                            &[&draft.store_id, &k.key, &k.not_before_ms],
                        )
                        .await?;
                    }
                    insert_draft(c, &draft).await?;
                    if let Some(k) = &key {
                        c.exec(
                            "INSERT INTO store_booking.idempotency_keys
                                (store_id, idempotency_key, request_hash, draft_id, created_at)
                             VALUES (@P1, @P2, @P3, @P4, @P5)",
                            &[
                                &draft.store_id,
                                &k.key,
                                &k.request_hash,
                                &draft.id,
                                &draft.created_at_ms,
                            ],
                        )
                        .await?;
                    }
                    insert_event(c, &event).await?;
                    let created = select_draft(c, draft.store_id, &draft.id)
                        .await?
                        .ok_or_else(|| TdsError::Conversion("the new draft is missing".into()))?;
                    Ok(DraftCreation::Created(created))
                })
            })
            .await;
        match (created, held_key) {
            // Another create with this key committed first: answer its draft.
            (Err(DbError::Conflict(_)), Some(k)) => {
                match self
                    .idempotent_draft(store_id, &k.key, k.not_before_ms)
                    .await?
                {
                    Some(held) => Ok(DraftCreation::Existing(held)),
                    None => Err(DbError::Unavailable(anyhow::anyhow!(
                        "a concurrent create held the idempotency key, then released it"
                    ))),
                }
            }
            (outcome, _) => outcome,
        }
    }

    async fn claim_draft(
        &self,
        store_id: i64,
        id: &str,
        rules: ClaimRules,
    ) -> DbResult<ClaimOutcome> {
        let id = id.to_owned();
        self.tx(move |c| {
            Box::pin(async move {
                // Confirmable: open, or past its TTL only while an earlier attempt's outcome is
                // unknown (then a retry is how the client learns it).
                let mut claimed = c
                    .exec(
                        "UPDATE store_booking.drafts
                         SET status = 'confirming', claimed_at = @P3,
                             confirm_attempts = confirm_attempts + 1, updated_at = @P3
                         WHERE id = @P1 AND store_id = @P2 AND status = 'draft'
                           AND (expires_at > @P3
                                OR (confirm_attempts > 0 AND expires_at > @P3 - @P4))",
                        &[&id, &store_id, &rules.now_ms, &rules.unresolved_grace_ms],
                    )
                    .await?;
                if claimed == 0 {
                    // Takeover of a claim whose instance died between claiming and hearing back.
                    claimed = c
                        .exec(
                            "UPDATE store_booking.drafts
                             SET claimed_at = @P3, confirm_attempts = confirm_attempts + 1,
                                 updated_at = @P3
                             WHERE id = @P1 AND store_id = @P2 AND status = 'confirming'
                               AND claimed_at < @P4",
                            &[&id, &store_id, &rules.now_ms, &rules.stale_before_ms],
                        )
                        .await?;
                }
                let draft = select_draft(c, store_id, &id).await?;
                Ok(ClaimOutcome::decide(claimed, draft))
            })
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
        self.tx(move |c| {
            Box::pin(async move {
                // A release applies only while the claim is still ours: a takeover bumped
                // confirm_attempts, and the stale-claim job may have released it.
                const FENCE: &str = "WHERE id = @P1 AND store_id = @P2 AND status = 'confirming'
                                       AND confirm_attempts = @P3";
                // Biz's definite answer is a fact, recorded even when the fence moved while it
                // was on its way, as long as the draft has not ended (see the SQLite backend).
                // @P3 (the attempt) is sent but unused there (sp_executesql allows it), so the
                // parameter numbers stay those of the fence.
                const OPEN: &str = "WHERE id = @P1 AND store_id = @P2
                                      AND status IN ('draft', 'confirming', 'expired')";
                match &finish {
                    ConfirmFinish::Confirmed { booking, event } => {
                        let sql = format!(
                            "UPDATE store_booking.drafts
                             SET status = 'confirmed', booking = @P4, claimed_at = NULL,
                                 ended_at = @P5, updated_at = @P5 {OPEN}"
                        );
                        let p: [&dyn ToSql; 5] = [&id, &store_id, &attempt, booking, &now_ms];
                        change_then_read(c, store_id, &id, &sql, &p, Some(event)).await
                    }
                    ConfirmFinish::Failed { failure, event } => {
                        let sql = format!(
                            "UPDATE store_booking.drafts
                             SET status = 'failed', failure_code = @P4, failure_detail = @P5,
                                 claimed_at = NULL, ended_at = @P6, updated_at = @P6 {OPEN}"
                        );
                        let p: [&dyn ToSql; 6] = [
                            &id,
                            &store_id,
                            &attempt,
                            &failure.code,
                            &failure.detail,
                            &now_ms,
                        ];
                        change_then_read(c, store_id, &id, &sql, &p, Some(event)).await
                    }
                    ConfirmFinish::Released => {
                        let sql = format!(
                            "UPDATE store_booking.drafts
                             SET status = 'draft', claimed_at = NULL, updated_at = @P4 {FENCE}"
                        );
                        let p: [&dyn ToSql; 4] = [&id, &store_id, &attempt, &now_ms];
                        change_then_read(c, store_id, &id, &sql, &p, None).await
                    }
                }
            })
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
        self.tx(move |c| {
            Box::pin(async move {
                c.exec(
                    "UPDATE store_booking.drafts
                     SET status = 'cancelled', ended_at = @P3, updated_at = @P3
                     WHERE id = @P1 AND store_id = @P2 AND status = 'draft'
                       AND confirm_attempts = 0 AND expires_at > @P3",
                    &[&id, &store_id, &now_ms],
                )
                .await?;
                select_draft(c, store_id, &id).await
            })
        })
        .await
    }

    async fn release_stale_claims(&self, stale_before_ms: i64, limit: u32) -> DbResult<u64> {
        self.batched(
            "UPDATE TOP (@P1) store_booking.drafts SET status = 'draft', claimed_at = NULL
             WHERE status = 'confirming' AND claimed_at < @P2",
            limit,
            vec![stale_before_ms],
        )
        .await
    }

    async fn expire_drafts(
        &self,
        now_ms: i64,
        unresolved_grace_ms: i64,
        limit: u32,
    ) -> DbResult<u64> {
        // The exact negation of the claim's "confirmable" condition; ended_at is the moment the
        // draft stopped being confirmable, not the moment this job noticed.
        self.batched(
            "UPDATE TOP (@P1) store_booking.drafts
             SET status = 'expired', updated_at = @P2,
                 ended_at = CASE WHEN confirm_attempts = 0 THEN expires_at
                                 ELSE expires_at + @P3 END
             WHERE status = 'draft' AND expires_at <= @P2
               AND (confirm_attempts = 0 OR expires_at <= @P2 - @P3)",
            limit,
            vec![now_ms, unresolved_grace_ms],
        )
        .await
    }

    async fn erase_ended_drafts(
        &self,
        ended_before_ms: i64,
        now_ms: i64,
        limit: u32,
    ) -> DbResult<u64> {
        // Biz's answer is kept (a repeated confirm replays it) but loses any client echo:
        // JSON_MODIFY with NULL removes the key (lax mode).
        self.batched(
            "UPDATE TOP (@P1) store_booking.drafts
             SET customer_name = NULL, customer_phone = NULL, customer_email = NULL,
                 notes = NULL, failure_detail = NULL,
                 booking = CASE WHEN booking IS NULL THEN NULL
                                ELSE JSON_MODIFY(booking, '$.client', NULL) END,
                 erased_at = @P2
             WHERE erased_at IS NULL AND ended_at < @P3",
            limit,
            vec![now_ms, ended_before_ms],
        )
        .await
    }

    async fn purge_idempotency_keys(&self, before_ms: i64, limit: u32) -> DbResult<u64> {
        self.batched(
            "DELETE TOP (@P1) FROM store_booking.idempotency_keys WHERE created_at < @P2",
            limit,
            vec![before_ms],
        )
        .await
    }

    async fn delete_ended_drafts(&self, ended_before_ms: i64, limit: u32) -> DbResult<u64> {
        // Idempotency keys naming a deleted draft go by ON DELETE CASCADE.
        self.batched(
            "DELETE TOP (@P1) FROM store_booking.drafts
             WHERE erased_at IS NOT NULL AND ended_at < @P2",
            limit,
            vec![ended_before_ms],
        )
        .await
    }
}

impl MssqlDb {
    /// One bounded maintenance statement: `@P1` is the batch size, `@P2…` the values.
    async fn batched(&self, sql: &'static str, limit: u32, values: Vec<i64>) -> DbResult<u64> {
        let limit = i64::from(limit);
        self.run(move |c| {
            Box::pin(async move {
                let mut params: Vec<&dyn ToSql> = vec![&limit];
                params.extend(values.iter().map(|v| v as &dyn ToSql));
                c.exec(sql, &params).await
            })
        })
        .await
    }
}
