-- Booking drafts and their idempotency keys (SQLite: store_booking_drafts,
-- store_booking_idempotency_keys). Instants are Unix milliseconds, UTC.
--
-- status: draft -> confirming -> confirmed | failed, draft -> expired | cancelled; a failed
-- Biz call (timeout, 5xx) takes confirming back to draft. confirm_attempts counts claims and
-- fences them: a finish applies only to the claim it belongs to. Every such change is a
-- conditional UPDATE whose row count decides.
CREATE TABLE store_booking.drafts (
    -- Draft ids are lowercase hex (the API refuses anything else), so the default collation
    -- is exact for them; Babelfish 4.2 cannot check a foreign key between BIN2 columns.
    id               NVARCHAR(100) NOT NULL CONSTRAINT pk_booking_drafts PRIMARY KEY,
    store_id         BIGINT        NOT NULL CONSTRAINT fk_booking_drafts_store
                         REFERENCES store_config.store_settings (id) ON DELETE CASCADE,
    status           NVARCHAR(16)  NOT NULL CONSTRAINT ck_booking_drafts_status CHECK (status IN
                         ('draft', 'confirming', 'confirmed', 'failed', 'expired', 'cancelled')),
    service_id       NVARCHAR(MAX) NOT NULL,
    staff_id         NVARCHAR(MAX) NULL,
    start_at         BIGINT        NOT NULL,
    end_at           BIGINT        NOT NULL,
    duration_minutes BIGINT        NOT NULL,
    price            NVARCHAR(MAX) NULL CONSTRAINT ck_booking_drafts_price
                         CHECK (price IS NULL OR ISJSON(price) = 1),
    customer_name    NVARCHAR(MAX) NULL,
    customer_phone   NVARCHAR(MAX) NULL,
    customer_email   NVARCHAR(MAX) NULL,
    notes            NVARCHAR(MAX) NULL,
    expires_at       BIGINT        NOT NULL,
    confirm_attempts BIGINT        NOT NULL CONSTRAINT df_booking_drafts_attempts DEFAULT 0,
    claimed_at       BIGINT        NULL,
    booking          NVARCHAR(MAX) NULL CONSTRAINT ck_booking_drafts_booking
                         CHECK (booking IS NULL OR ISJSON(booking) = 1),
    failure_code     NVARCHAR(64)  NULL,
    failure_detail   NVARCHAR(MAX) NULL,
    created_at       BIGINT        NOT NULL,
    updated_at       BIGINT        NOT NULL,
    -- When the draft reached confirmed, failed, expired or cancelled; customer details are
    -- erased a day later (erased_at).
    ended_at         BIGINT        NULL,
    erased_at        BIGINT        NULL
);
CREATE INDEX ix_booking_drafts_store ON store_booking.drafts (store_id, created_at);
CREATE INDEX ix_booking_drafts_status_expires ON store_booking.drafts (status, expires_at);
CREATE INDEX ix_booking_drafts_status_claimed ON store_booking.drafts (status, claimed_at);
CREATE INDEX ix_booking_drafts_ended ON store_booking.drafts (erased_at, ended_at);

-- A create's Idempotency-Key, per store, with the hash of the request it first came with.
-- The key goes with its draft (cascade); the store is reached through the draft, since SQL
-- Server refuses a second cascade path to store_settings.
CREATE TABLE store_booking.idempotency_keys (
    store_id        BIGINT        NOT NULL,
    idempotency_key NVARCHAR(255) COLLATE Latin1_General_BIN2 NOT NULL,
    request_hash    NVARCHAR(128) NOT NULL,
    draft_id        NVARCHAR(100) NOT NULL
                        CONSTRAINT fk_booking_idempotency_draft
                        REFERENCES store_booking.drafts (id) ON DELETE CASCADE,
    created_at      BIGINT        NOT NULL,
    CONSTRAINT pk_booking_idempotency_key PRIMARY KEY (store_id, idempotency_key)
);
CREATE INDEX ix_booking_idempotency_created ON store_booking.idempotency_keys (created_at);
