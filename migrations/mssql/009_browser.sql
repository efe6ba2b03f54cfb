-- Browsers (CONTRACT §14, §10): a store's allowed CORS origins, and the store-settings change
-- feed the other instances tail (SQLite: 008_browser.sql).

-- A JSON array of normalised origins (`https://shop.example.com`, `http://localhost:3000`).
ALTER TABLE store_config.store_settings ADD allowed_origins NVARCHAR(MAX) NOT NULL
    CONSTRAINT df_store_settings_allowed_origins DEFAULT N'[]'
    CONSTRAINT ck_store_settings_allowed_origins CHECK (ISJSON(allowed_origins) = 1);
GO

-- One row per settings change; every instance tails it and forgets its cached store lookups.
-- Pruned after an hour.
CREATE TABLE store_config.changes (
    id         BIGINT IDENTITY (1, 1) NOT NULL CONSTRAINT pk_store_config_changes PRIMARY KEY,
    store_id   BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX ix_store_config_changes_created ON store_config.changes (created_at);
GO

-- The retention job deletes by time across stores.
CREATE INDEX ix_analytics_events_time ON store_analytics.events (occurred_at);
CREATE INDEX ix_analytics_page_views_time ON store_analytics.page_views (viewed_at);
CREATE INDEX ix_analytics_sessions_last_seen ON store_analytics.sessions (last_seen_at);
