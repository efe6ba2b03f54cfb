-- The webhook inbox (SQL Server: store_webhooks.inbox). One row per accepted delivery, keyed
-- by its webhook-id: inserting the row is the dedupe claim, so it holds across restarts and
-- across instances sharing the database.
--
-- status: 'processing' (recorded, invalidation not yet confirmed: a retry redoes it),
-- 'processed' (invalidated) or 'ignored' (no store has the business).
-- A delivery concerns every store of its business, so stores are found through business_id
-- (biz_business_id never changes) rather than stored per row.
CREATE TABLE store_webhooks_inbox (
    webhook_id   TEXT    NOT NULL PRIMARY KEY,
    event_type   TEXT    NOT NULL,
    business_id  TEXT    NOT NULL,
    item_id      TEXT    NOT NULL,
    occurred_at  INTEGER NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('processing', 'processed', 'ignored')),
    attempts     INTEGER NOT NULL DEFAULT 1,
    received_at  INTEGER NOT NULL,
    processed_at INTEGER
);
CREATE INDEX ix_webhooks_inbox_business ON store_webhooks_inbox (business_id, received_at);
CREATE INDEX ix_webhooks_inbox_received ON store_webhooks_inbox (received_at);
