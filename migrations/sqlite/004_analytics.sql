-- Analytics (SQL Server: store_analytics.events, page_views, sessions).
CREATE TABLE store_analytics_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id     INTEGER NOT NULL REFERENCES store_config_store_settings (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    url          TEXT,
    referrer     TEXT,
    props        TEXT CHECK (props IS NULL OR json_valid(props)),
    draft_id     TEXT,
    visitor_hash TEXT,
    session_id   TEXT,
    occurred_at  INTEGER NOT NULL
);
CREATE INDEX ix_events_store_time ON store_analytics_events (store_id, occurred_at);
CREATE INDEX ix_events_store_draft ON store_analytics_events (store_id, draft_id) WHERE draft_id IS NOT NULL;
