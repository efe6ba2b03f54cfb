-- Invalidations, for the other instances sharing this database: each instance tails this
-- table and retires the matching entries of its memory cache. Rows are pruned after an hour.
CREATE TABLE store_cache_invalidations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    origin     INTEGER NOT NULL,
    store_id   INTEGER NOT NULL,
    resource   TEXT,
    item_id    TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX ix_cache_invalidations_created ON store_cache_invalidations (created_at);
