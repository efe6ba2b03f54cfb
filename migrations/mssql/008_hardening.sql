-- Issue 17 (hardening). SQLite: migrations/sqlite/007_hardening.sql.
-- Ended drafts are deleted by the existing index ix_booking_drafts_ended (erased_at, ended_at).

-- Analytics events accepted per store and UTC day (day = Unix ms / 86400000): the per-store
-- daily quota. A conditional UPDATE whose row count decides takes a batch from it.
CREATE TABLE store_analytics.daily_usage (
    store_id BIGINT NOT NULL CONSTRAINT fk_analytics_daily_usage_store
                 REFERENCES store_config.store_settings (id) ON DELETE CASCADE,
    day      BIGINT NOT NULL,
    events   BIGINT NOT NULL,
    CONSTRAINT pk_analytics_daily_usage PRIMARY KEY (store_id, day)
);
