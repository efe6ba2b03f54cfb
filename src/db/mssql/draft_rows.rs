//! T-SQL (SQL Server 2019+ / Babelfish 4.x): reading and inserting `store_booking.drafts`
//! rows and looking up `store_booking.idempotency_keys`.

use tiberius::Row;
use tiberius::error::Error as TdsError;

use super::{Conn, RowExt};
use crate::db::{CustomerDetails, DraftFailure, DraftRecord, DraftStatus, KeyedDraft, NewDraft};

const COLUMNS: &str = "id, store_id, status, service_id, staff_id, start_at, end_at, \
     duration_minutes, price, customer_name, customer_phone, customer_email, notes, expires_at, \
     confirm_attempts, claimed_at, booking, failure_code, failure_detail, created_at, ended_at";

fn draft_from_row(row: &Row) -> Result<DraftRecord, TdsError> {
    let status = row.text(2)?;
    let status = DraftStatus::parse(&status)
        .ok_or_else(|| TdsError::Conversion(format!("unknown draft status {status:?}").into()))?;
    Ok(DraftRecord {
        id: row.text(0)?,
        store_id: row.int(1)?,
        status,
        service_id: row.text(3)?,
        staff_id: row.opt_text(4)?,
        start_at_ms: row.int(5)?,
        end_at_ms: row.int(6)?,
        duration_minutes: row.int(7)?,
        price: row.opt_text(8)?,
        customer: CustomerDetails {
            name: row.opt_text(9)?,
            phone: row.opt_text(10)?,
            email: row.opt_text(11)?,
        },
        notes: row.opt_text(12)?,
        expires_at_ms: row.int(13)?,
        confirm_attempts: row.int(14)?,
        claimed_at_ms: row.opt_int(15)?,
        booking: row.opt_text(16)?,
        failure: row
            .opt_text(17)?
            .map(|code| -> Result<_, TdsError> {
                Ok(DraftFailure {
                    code,
                    detail: row.opt_text(18)?,
                })
            })
            .transpose()?,
        created_at_ms: row.int(19)?,
        ended_at_ms: row.opt_int(20)?,
    })
}

pub(super) async fn select_draft(
    c: &mut Conn,
    store_id: i64,
    id: &str,
) -> Result<Option<DraftRecord>, TdsError> {
    let sql =
        format!("SELECT {COLUMNS} FROM store_booking.drafts WHERE id = @P1 AND store_id = @P2");
    c.row(&sql, &[&id, &store_id])
        .await?
        .as_ref()
        .map(draft_from_row)
        .transpose()
}

/// The key's holder, if the key is live (younger than `not_before_ms`).
pub(super) async fn select_keyed(
    c: &mut Conn,
    store_id: i64,
    key: &str,
    not_before_ms: i64,
) -> Result<Option<KeyedDraft>, TdsError> {
    let held = c
        .row(
            "SELECT request_hash, draft_id FROM store_booking.idempotency_keys
             WHERE store_id = @P1 AND idempotency_key = @P2 AND created_at >= @P3",
            &[&store_id, &key, &not_before_ms],
        )
        .await?;
    let Some(held) = held else {
        return Ok(None);
    };
    let (request_hash, draft_id) = (held.text(0)?, held.text(1)?);
    Ok(select_draft(c, store_id, &draft_id)
        .await?
        .map(|draft| KeyedDraft {
            request_hash,
            draft,
        }))
}

pub(super) async fn insert_draft(c: &mut Conn, d: &NewDraft) -> Result<(), TdsError> {
    c.exec(
        "INSERT INTO store_booking.drafts
            (id, store_id, status, service_id, staff_id, start_at, end_at, duration_minutes,
             price, customer_name, customer_phone, customer_email, notes, expires_at,
             created_at, updated_at)
         VALUES (@P1, @P2, 'draft', @P3, @P4, @P5, @P6, @P7, @P8, @P9, @P10, @P11, @P12, @P13,
                 @P14, @P14)",
        &[
            &d.id,
            &d.store_id,
            &d.service_id,
            &d.staff_id,
            &d.start_at_ms,
            &d.end_at_ms,
            &d.duration_minutes,
            &d.price,
            &d.customer.name,
            &d.customer.phone,
            &d.customer.email,
            &d.notes,
            &d.expires_at_ms,
            &d.created_at_ms,
        ],
    )
    .await
    .map(drop)
}
