-- Issue 17 (hardening). SQL Server: migrations/mssql/008_hardening.sql.

-- Ended drafts are deleted MANGO_DRAFT_RETENTION_DAYS after they ended (their customer details
-- were erased a day after): the job looks for erased drafts by ended_at.
CREATE INDEX ix_booking_drafts_erased ON store_booking_drafts (ended_at) WHERE erased_at IS NOT NULL;

-- Analytics events accepted per store and UTC day (day = Unix ms / 86400000): the per-store
-- daily quota. A conditional UPDATE whose row count decides takes a batch from it.
CREATE TABLE store_analytics_daily_usage (
    store_id INTEGER NOT NULL REFERENCES store_config_store_settings (id) ON DELETE CASCADE,
    day      INTEGER NOT NULL,
    events   INTEGER NOT NULL,
    PRIMARY KEY (store_id, day)
);
