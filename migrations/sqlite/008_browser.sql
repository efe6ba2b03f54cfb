-- Browsers (CONTRACT §14, §10): a store's allowed CORS origins, and the store-settings change
-- feed the other instances tail (SQL Server: 009_browser.sql).

-- A JSON array of normalised origins (`https://shop.example.com`, `http://localhost:3000`).
ALTER TABLE store_config_store_settings ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';

-- One row per settings change; every instance tails it and forgets its cached store lookups,
-- so a change made on one instance is in force on all within a second. Pruned after an hour.
CREATE TABLE store_config_changes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id   INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX ix_store_config_changes_created ON store_config_changes (created_at);

-- The retention job deletes by time across stores.
CREATE INDEX ix_events_time ON store_analytics_events (occurred_at);
CREATE INDEX ix_page_views_time ON store_analytics_page_views (viewed_at);
CREATE INDEX ix_sessions_last_seen ON store_analytics_sessions (last_seen_at);
