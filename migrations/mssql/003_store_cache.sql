-- The catalog cache (SQLite: store_cache_*). One table per resource; list_position is the
-- item's place in the last complete list (NULL when the row came from an item read only).
-- Every write to a (store, resource) first locks its generation row (an UPDATE that sets the
-- generation to itself WHERE it still has the value the fill read), so fills and invalidations
-- of one resource serialise on that row, and a fill that raced an invalidation writes nothing.
CREATE TABLE store_cache.services (
    store_id      BIGINT         NOT NULL CONSTRAINT fk_cache_services_store
                      REFERENCES store_config.store_settings (id) ON DELETE CASCADE,
    item_id       NVARCHAR(400)  COLLATE Latin1_General_BIN2 NOT NULL,
    payload       NVARCHAR(MAX)  NOT NULL CONSTRAINT ck_cache_services_payload CHECK (ISJSON(payload) = 1),
    list_position BIGINT         NULL,
    fetched_at    BIGINT         NOT NULL,
    expires_at    BIGINT         NOT NULL,
    CONSTRAINT pk_cache_services PRIMARY KEY (store_id, item_id)
);
CREATE INDEX ix_cache_services_expires ON store_cache.services (expires_at);
CREATE INDEX ix_cache_services_list ON store_cache.services (store_id, list_position);

CREATE TABLE store_cache.products (
    store_id      BIGINT         NOT NULL CONSTRAINT fk_cache_products_store
                      REFERENCES store_config.store_settings (id) ON DELETE CASCADE,
    item_id       NVARCHAR(400)  COLLATE Latin1_General_BIN2 NOT NULL,
    payload       NVARCHAR(MAX)  NOT NULL CONSTRAINT ck_cache_products_payload CHECK (ISJSON(payload) = 1),
    list_position BIGINT         NULL,
    fetched_at    BIGINT         NOT NULL,
    expires_at    BIGINT         NOT NULL,
    CONSTRAINT pk_cache_products PRIMARY KEY (store_id, item_id)
);
CREATE INDEX ix_cache_products_expires ON store_cache.products (expires_at);
CREATE INDEX ix_cache_products_list ON store_cache.products (store_id, list_position);

CREATE TABLE store_cache.staff (
    store_id      BIGINT         NOT NULL CONSTRAINT fk_cache_staff_store
                      REFERENCES store_config.store_settings (id) ON DELETE CASCADE,
    item_id       NVARCHAR(400)  COLLATE Latin1_General_BIN2 NOT NULL,
    payload       NVARCHAR(MAX)  NOT NULL CONSTRAINT ck_cache_staff_payload CHECK (ISJSON(payload) = 1),
    list_position BIGINT         NULL,
    fetched_at    BIGINT         NOT NULL,
    expires_at    BIGINT         NOT NULL,
    CONSTRAINT pk_cache_staff PRIMARY KEY (store_id, item_id)
);
CREATE INDEX ix_cache_staff_expires ON store_cache.staff (expires_at);
CREATE INDEX ix_cache_staff_list ON store_cache.staff (store_id, list_position);

-- Which lists are complete, and since when.
CREATE TABLE store_cache.lists (
    store_id   BIGINT       NOT NULL CONSTRAINT fk_cache_lists_store
                   REFERENCES store_config.store_settings (id) ON DELETE CASCADE,
    resource   NVARCHAR(16) NOT NULL,
    item_count BIGINT       NOT NULL,
    fetched_at BIGINT       NOT NULL,
    expires_at BIGINT       NOT NULL,
    CONSTRAINT pk_cache_lists PRIMARY KEY (store_id, resource)
);
CREATE INDEX ix_cache_lists_expires ON store_cache.lists (expires_at);

-- Bumped by every invalidation. A store's three rows are created with the store (generation
-- 0), so writers only ever UPDATE them.
CREATE TABLE store_cache.generations (
    store_id   BIGINT       NOT NULL CONSTRAINT fk_cache_generations_store
                   REFERENCES store_config.store_settings (id) ON DELETE CASCADE,
    resource   NVARCHAR(16) NOT NULL,
    generation BIGINT       NOT NULL,
    CONSTRAINT pk_cache_generations PRIMARY KEY (store_id, resource)
);

-- The invalidation feed the instances tail. Ids come from the single row of
-- invalidation_head, incremented under its row lock inside the invalidating transaction: ids
-- therefore become visible in order, and a tailer reading "id > last" never skips one that
-- commits late (an IDENTITY column would allow that).
CREATE TABLE store_cache.invalidation_head (
    id      INT    NOT NULL CONSTRAINT pk_cache_invalidation_head PRIMARY KEY,
    last_id BIGINT NOT NULL
);
INSERT INTO store_cache.invalidation_head (id, last_id) VALUES (1, 0);

CREATE TABLE store_cache.invalidations (
    id         BIGINT        NOT NULL CONSTRAINT pk_cache_invalidations PRIMARY KEY,
    origin     BIGINT        NOT NULL,
    store_id   BIGINT        NOT NULL,
    resource   NVARCHAR(16)  NULL,
    item_id    NVARCHAR(400) COLLATE Latin1_General_BIN2 NULL,
    created_at BIGINT        NOT NULL
);
CREATE INDEX ix_cache_invalidations_created ON store_cache.invalidations (created_at);
