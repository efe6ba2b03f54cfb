-- Declared resources (CONTRACT §12): one cache layout for every resource (store_cache.items,
-- keyed by resource name) instead of a table per resource, with store_cache.services,
-- store_cache.products and store_cache.staff kept as views for whoever reads the design.
-- The cache holds nothing Biz cannot give again, so old rows are dropped rather than copied.
-- Resource names grow to 32 characters: the tables keyed by them are recreated (their rows
-- are disposable too; generation rows are created on first use from now on).

DROP TABLE store_cache.services;
DROP TABLE store_cache.products;
DROP TABLE store_cache.staff;
DROP TABLE store_cache.lists;
DROP TABLE store_cache.generations;
DROP TABLE store_cache.invalidations;

CREATE TABLE store_cache.items (
    store_id      BIGINT         NOT NULL CONSTRAINT fk_cache_items_store
                      REFERENCES store_config.store_settings (id) ON DELETE CASCADE,
    resource      NVARCHAR(32)   COLLATE Latin1_General_BIN2 NOT NULL,
    item_id       NVARCHAR(400)  COLLATE Latin1_General_BIN2 NOT NULL,
    payload       NVARCHAR(MAX)  NOT NULL CONSTRAINT ck_cache_items_payload CHECK (ISJSON(payload) = 1),
    list_position BIGINT         NULL,
    fetched_at    BIGINT         NOT NULL,
    expires_at    BIGINT         NOT NULL,
    CONSTRAINT pk_cache_items PRIMARY KEY (store_id, resource, item_id)
);
CREATE INDEX ix_cache_items_expires ON store_cache.items (expires_at);
CREATE INDEX ix_cache_items_list ON store_cache.items (store_id, resource, list_position);

CREATE TABLE store_cache.lists (
    store_id   BIGINT       NOT NULL CONSTRAINT fk_cache_lists_store
                   REFERENCES store_config.store_settings (id) ON DELETE CASCADE,
    resource   NVARCHAR(32) COLLATE Latin1_General_BIN2 NOT NULL,
    item_count BIGINT       NOT NULL,
    fetched_at BIGINT       NOT NULL,
    expires_at BIGINT       NOT NULL,
    CONSTRAINT pk_cache_lists PRIMARY KEY (store_id, resource)
);
CREATE INDEX ix_cache_lists_expires ON store_cache.lists (expires_at);

CREATE TABLE store_cache.generations (
    store_id   BIGINT       NOT NULL CONSTRAINT fk_cache_generations_store
                   REFERENCES store_config.store_settings (id) ON DELETE CASCADE,
    resource   NVARCHAR(32) COLLATE Latin1_General_BIN2 NOT NULL,
    generation BIGINT       NOT NULL,
    CONSTRAINT pk_cache_generations PRIMARY KEY (store_id, resource)
);

CREATE TABLE store_cache.invalidations (
    id         BIGINT        NOT NULL CONSTRAINT pk_cache_invalidations PRIMARY KEY,
    origin     BIGINT        NOT NULL,
    store_id   BIGINT        NOT NULL,
    resource   NVARCHAR(32)  NULL,
    item_id    NVARCHAR(400) COLLATE Latin1_General_BIN2 NULL,
    created_at BIGINT        NOT NULL
);
CREATE INDEX ix_cache_invalidations_created ON store_cache.invalidations (created_at);
GO
CREATE VIEW store_cache.services AS
    SELECT store_id, item_id, payload, list_position, fetched_at, expires_at
    FROM store_cache.items WHERE resource = N'services';
GO
CREATE VIEW store_cache.products AS
    SELECT store_id, item_id, payload, list_position, fetched_at, expires_at
    FROM store_cache.items WHERE resource = N'products';
GO
CREATE VIEW store_cache.staff AS
    SELECT store_id, item_id, payload, list_position, fetched_at, expires_at
    FROM store_cache.items WHERE resource = N'staff';
