-- Booking drafts and their idempotency keys (SQL Server: store_booking.drafts,
-- store_booking.idempotency_keys). Instants are Unix milliseconds, UTC.
--
-- status: draft -> confirming -> confirmed | failed, draft -> expired | cancelled; a failed
-- Biz call (timeout, 5xx) takes confirming back to draft. confirm_attempts counts claims and
-- fences them: a finish applies only to the claim it belongs to.

CREATE TABLE store_booking_drafts (
    id               TEXT    PRIMARY KEY,
    store_id         INTEGER NOT NULL REFERENCES store_config_store_settings (id) ON DELETE CASCADE,
    status           TEXT    NOT NULL CHECK (status IN
                         ('draft', 'confirming', 'confirmed', 'failed', 'expired', 'cancelled')),
    service_id       TEXT    NOT NULL,
    staff_id         TEXT,
    start_at         INTEGER NOT NULL,
    end_at           INTEGER NOT NULL,
    duration_minutes INTEGER NOT NULL,
    price            TEXT    CHECK (price IS NULL OR json_valid(price)),
    customer_name    TEXT,
    customer_phone   TEXT,
    customer_email   TEXT,
    notes            TEXT,
    expires_at       INTEGER NOT NULL,
    confirm_attempts INTEGER NOT NULL DEFAULT 0,
    claimed_at       INTEGER,
    booking          TEXT    CHECK (booking IS NULL OR json_valid(booking)),
    failure_code     TEXT,
    failure_detail   TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    -- When the draft reached confirmed, failed, expired or cancelled; customer details are
    -- erased a day later (erased_at).
    ended_at         INTEGER,
    erased_at        INTEGER
);
CREATE INDEX ix_booking_drafts_store ON store_booking_drafts (store_id, created_at);
CREATE INDEX ix_booking_drafts_open ON store_booking_drafts (expires_at) WHERE status = 'draft';
CREATE INDEX ix_booking_drafts_claimed ON store_booking_drafts (claimed_at) WHERE status = 'confirming';
CREATE INDEX ix_booking_drafts_ended ON store_booking_drafts (ended_at) WHERE erased_at IS NULL;

-- A create's Idempotency-Key, per store, with the hash of the request it first came with.
CREATE TABLE store_booking_idempotency_keys (
    store_id        INTEGER NOT NULL REFERENCES store_config_store_settings (id) ON DELETE CASCADE,
    idempotency_key TEXT    NOT NULL,
    request_hash    TEXT    NOT NULL,
    draft_id        TEXT    NOT NULL REFERENCES store_booking_drafts (id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (store_id, idempotency_key)
);
CREATE INDEX ix_booking_idempotency_created ON store_booking_idempotency_keys (created_at);
