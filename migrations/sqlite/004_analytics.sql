-- Analytics (SQL Server: store_analytics.events, page_views, sessions, salts).
-- Cookieless: a visitor is a hash of a daily random salt, the store, the client address and the
-- user agent; neither the address nor the user agent is stored, and salts are deleted after 48 h.
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

-- One row per `page_view` event; `path` is the URL's path (no query, no fragment).
CREATE TABLE store_analytics_page_views (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id     INTEGER NOT NULL REFERENCES store_config_store_settings (id) ON DELETE CASCADE,
    visitor_hash TEXT    NOT NULL,
    session_id   TEXT    NOT NULL,
    url          TEXT,
    path         TEXT,
    referrer     TEXT,
    viewed_at    INTEGER NOT NULL
);
CREATE INDEX ix_page_views_store_time ON store_analytics_page_views (store_id, viewed_at);

-- A visit: continues while the visitor's events are at most 30 minutes apart.
CREATE TABLE store_analytics_sessions (
    store_id        INTEGER NOT NULL REFERENCES store_config_store_settings (id) ON DELETE CASCADE,
    visitor_hash    TEXT    NOT NULL,
    session_id      TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    event_count     INTEGER NOT NULL,
    page_view_count INTEGER NOT NULL,
    PRIMARY KEY (store_id, visitor_hash, session_id)
);
CREATE INDEX ix_sessions_store_started ON store_analytics_sessions (store_id, started_at);

-- One random salt per UTC day (day = Unix ms / 86 400 000), created by whichever instance
-- needs it first (INSERT OR IGNORE, then read back) and deleted 48 h after its day began.
CREATE TABLE store_analytics_salts (
    day        INTEGER PRIMARY KEY,
    salt       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
