-- The webhook inbox (SQLite: store_webhooks_inbox). One row per accepted delivery, keyed by
-- its webhook-id: inserting the row is the dedupe claim, so it holds across restarts and
-- instances. status: 'processing' (recorded, invalidation not yet confirmed: a retry redoes
-- it), 'processed' or 'ignored' (no store has the business). Stores are found through
-- business_id, which never changes for a store.
CREATE TABLE store_webhooks.inbox (
    webhook_id   NVARCHAR(255) COLLATE Latin1_General_BIN2 NOT NULL
                     CONSTRAINT pk_webhooks_inbox_webhook_id PRIMARY KEY,
    event_type   NVARCHAR(100) NOT NULL,
    business_id  NVARCHAR(128) NOT NULL,
    item_id      NVARCHAR(400) NOT NULL,
    occurred_at  BIGINT        NOT NULL,
    status       NVARCHAR(16)  NOT NULL
                     CONSTRAINT ck_webhooks_inbox_status CHECK (status IN ('processing', 'processed', 'ignored')),
    attempts     BIGINT        NOT NULL CONSTRAINT df_webhooks_inbox_attempts DEFAULT 1,
    received_at  BIGINT        NOT NULL,
    processed_at BIGINT        NULL
);
CREATE INDEX ix_webhooks_inbox_business_received ON store_webhooks.inbox (business_id, received_at);
CREATE INDEX ix_webhooks_inbox_received ON store_webhooks.inbox (received_at);
