-- Declared resources (CONTRACT §12): one cache layout for every resource instead of a table
-- per resource. The cache holds nothing Biz cannot give again, so the old rows are dropped
-- rather than copied; list records go with them (a list is served only when all its rows are
-- there). The old table names stay readable as views.

DROP TABLE store_cache_services;
DROP TABLE store_cache_products;
DROP TABLE store_cache_staff;
DELETE FROM store_cache_lists;

CREATE TABLE store_cache_items (
    store_id      INTEGER NOT NULL REFERENCES store_config_store_settings (id) ON DELETE CASCADE,
    resource      TEXT    NOT NULL,
    item_id       TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    list_position INTEGER,
    fetched_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (store_id, resource, item_id)
);
CREATE INDEX ix_cache_items_expires ON store_cache_items (expires_at);
CREATE INDEX ix_cache_items_list ON store_cache_items (store_id, resource, list_position);

CREATE VIEW store_cache_services AS
    SELECT store_id, item_id, payload, list_position, fetched_at, expires_at
    FROM store_cache_items WHERE resource = 'services';
CREATE VIEW store_cache_products AS
    SELECT store_id, item_id, payload, list_position, fetched_at, expires_at
    FROM store_cache_items WHERE resource = 'products';
CREATE VIEW store_cache_staff AS
    SELECT store_id, item_id, payload, list_position, fetched_at, expires_at
    FROM store_cache_items WHERE resource = 'staff';
