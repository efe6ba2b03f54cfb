-- Foundation: store settings and the catalog cache.
-- SQL Server names map to SQLite as schema_table: store_config.store_settings -> store_config_store_settings.

CREATE TABLE store_config_store_settings (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    slug            TEXT    NOT NULL UNIQUE,
    name            TEXT    NOT NULL,
    biz_business_id TEXT    NOT NULL,
    template        TEXT    NOT NULL,
    theme           TEXT    NOT NULL CHECK (json_valid(theme) AND json_type(theme) = 'object'),
    custom_domain   TEXT    UNIQUE,
    is_published    INTEGER NOT NULL DEFAULT 0,
    api_key_hash    TEXT    NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX ix_store_settings_business ON store_config_store_settings (biz_business_id);

-- One table per resource. list_position is the item's place in the last complete list (NULL
-- when the row came from an item read only).
CREATE TABLE store_cache_services (
    store_id      INTEGER NOT NULL REFERENCES store_config_store_settings (id) ON DELETE CASCADE,
    item_id       TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    list_position INTEGER,
    fetched_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (store_id, item_id)
);
CREATE INDEX ix_cache_services_expires ON store_cache_services (expires_at);

CREATE TABLE store_cache_products (
    store_id      INTEGER NOT NULL REFERENCES store_config_store_settings (id) ON DELETE CASCADE,
    item_id       TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    list_position INTEGER,
    fetched_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (store_id, item_id)
);
CREATE INDEX ix_cache_products_expires ON store_cache_products (expires_at);

CREATE TABLE store_cache_staff (
    store_id      INTEGER NOT NULL REFERENCES store_config_store_settings (id) ON DELETE CASCADE,
    item_id       TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    list_position INTEGER,
    fetched_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (store_id, item_id)
);
CREATE INDEX ix_cache_staff_expires ON store_cache_staff (expires_at);

-- Which lists are complete, and since when.
CREATE TABLE store_cache_lists (
    store_id   INTEGER NOT NULL REFERENCES store_config_store_settings (id) ON DELETE CASCADE,
    resource   TEXT    NOT NULL,
    item_count INTEGER NOT NULL,
    fetched_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (store_id, resource)
);

-- Bumped by every invalidation; a fill is written only if the generation it read is current.
CREATE TABLE store_cache_generations (
    store_id   INTEGER NOT NULL REFERENCES store_config_store_settings (id) ON DELETE CASCADE,
    resource   TEXT    NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (store_id, resource)
);
