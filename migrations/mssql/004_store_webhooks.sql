-- The webhook inbox (SQLite: store_webhooks_inbox). The first five columns are the ones the
-- admin listing reads and the SQLite table has; the nullable rest is what a receiver needs to
-- claim a delivery, process it and prune the inbox (the webhooks issue owns their use).
-- status: received -> processing -> processed | ignored | failed (free text here; the
-- receiver decides).
CREATE TABLE store_webhooks.inbox (
    webhook_id   NVARCHAR(255) COLLATE Latin1_General_BIN2 NOT NULL
                     CONSTRAINT pk_webhooks_inbox_webhook_id PRIMARY KEY,
    store_id     BIGINT        NULL,
    event_type   NVARCHAR(100) NULL,
    received_at  BIGINT        NULL,
    status       NVARCHAR(32)  NULL,
    business_id  NVARCHAR(128) NULL,
    resource     NVARCHAR(16)  NULL,
    item_id      NVARCHAR(400) NULL,
    occurred_at  BIGINT        NULL,
    claimed_at   BIGINT        NULL,
    attempts     BIGINT        NULL,
    processed_at BIGINT        NULL,
    error        NVARCHAR(MAX) NULL
);
CREATE INDEX ix_webhooks_inbox_store_received ON store_webhooks.inbox (store_id, received_at);
CREATE INDEX ix_webhooks_inbox_received ON store_webhooks.inbox (received_at);
