-- Analytics (SQLite: store_analytics_events, _page_views, _sessions, _salts).
-- Cookieless: a visitor is a hash of a daily random salt, the store, the client address and the
-- user agent; neither the address nor the user agent is stored, and salts are deleted after 48 h.
CREATE TABLE store_analytics.events (
    id           BIGINT IDENTITY (1, 1) NOT NULL CONSTRAINT pk_analytics_events PRIMARY KEY,
    store_id     BIGINT        NOT NULL CONSTRAINT fk_analytics_events_store
                     REFERENCES store_config.store_settings (id) ON DELETE CASCADE,
    name         NVARCHAR(100) NOT NULL,
    url          NVARCHAR(MAX) NULL,
    referrer     NVARCHAR(MAX) NULL,
    props        NVARCHAR(MAX) NULL CONSTRAINT ck_analytics_events_props
                     CHECK (props IS NULL OR ISJSON(props) = 1),
    draft_id     NVARCHAR(100) NULL,
    visitor_hash NVARCHAR(128) COLLATE Latin1_General_BIN2 NULL,
    session_id   NVARCHAR(128) COLLATE Latin1_General_BIN2 NULL,
    occurred_at  BIGINT        NOT NULL
);
CREATE INDEX ix_analytics_events_store_time ON store_analytics.events (store_id, occurred_at);
CREATE INDEX ix_analytics_events_store_draft ON store_analytics.events (store_id, draft_id);

-- One row per page_view event; path is the URL's path (no query, no fragment).
CREATE TABLE store_analytics.page_views (
    id           BIGINT IDENTITY (1, 1) NOT NULL CONSTRAINT pk_analytics_page_views PRIMARY KEY,
    store_id     BIGINT        NOT NULL CONSTRAINT fk_analytics_page_views_store
                     REFERENCES store_config.store_settings (id) ON DELETE CASCADE,
    visitor_hash NVARCHAR(128) COLLATE Latin1_General_BIN2 NOT NULL,
    session_id   NVARCHAR(128) COLLATE Latin1_General_BIN2 NOT NULL,
    url          NVARCHAR(MAX) NULL,
    path         NVARCHAR(MAX) NULL,
    referrer     NVARCHAR(MAX) NULL,
    viewed_at    BIGINT        NOT NULL
);
CREATE INDEX ix_analytics_page_views_store_time ON store_analytics.page_views (store_id, viewed_at);

-- A visit: continues while the visitor's events are at most 30 minutes apart.
CREATE TABLE store_analytics.sessions (
    store_id        BIGINT        NOT NULL CONSTRAINT fk_analytics_sessions_store
                        REFERENCES store_config.store_settings (id) ON DELETE CASCADE,
    visitor_hash    NVARCHAR(128) COLLATE Latin1_General_BIN2 NOT NULL,
    session_id      NVARCHAR(128) COLLATE Latin1_General_BIN2 NOT NULL,
    started_at      BIGINT        NOT NULL,
    last_seen_at    BIGINT        NOT NULL,
    event_count     BIGINT        NOT NULL,
    page_view_count BIGINT        NOT NULL,
    CONSTRAINT pk_analytics_sessions PRIMARY KEY (store_id, visitor_hash, session_id)
);
CREATE INDEX ix_analytics_sessions_store_started ON store_analytics.sessions (store_id, started_at);
CREATE INDEX ix_analytics_sessions_visitor_seen
    ON store_analytics.sessions (store_id, visitor_hash, last_seen_at);

-- One random salt per UTC day (day = Unix ms / 86 400 000), created by whichever instance
-- needs it first (an INSERT whose duplicate-key error means another won; then read back).
CREATE TABLE store_analytics.salts (
    day        BIGINT        NOT NULL CONSTRAINT pk_analytics_salts PRIMARY KEY,
    salt       NVARCHAR(128) NOT NULL,
    created_at BIGINT        NOT NULL
);
