-- Store settings (SQLite: store_config_store_settings). Constraint and index names carry the
-- column name: a duplicate-key error is reported as "<column> is already taken".
CREATE TABLE store_config.store_settings (
    id              BIGINT IDENTITY (1, 1) NOT NULL CONSTRAINT pk_store_settings PRIMARY KEY,
    slug            NVARCHAR(63)  NOT NULL CONSTRAINT uq_store_settings_slug UNIQUE,
    name            NVARCHAR(200) NOT NULL,
    biz_business_id NVARCHAR(128) NOT NULL,
    template        NVARCHAR(64)  NOT NULL,
    theme           NVARCHAR(MAX) NOT NULL CONSTRAINT ck_store_settings_theme CHECK (ISJSON(theme) = 1),
    custom_domain   NVARCHAR(253) NULL,
    is_published    BIT           NOT NULL CONSTRAINT df_store_settings_is_published DEFAULT 0,
    api_key_hash    NVARCHAR(64)  COLLATE Latin1_General_BIN2 NOT NULL
                        CONSTRAINT uq_store_settings_api_key_hash UNIQUE,
    created_at      BIGINT        NOT NULL,
    updated_at      BIGINT        NOT NULL
);
-- Unique among the stores that have one (a UNIQUE constraint would allow a single NULL).
CREATE UNIQUE INDEX ux_store_settings_custom_domain
    ON store_config.store_settings (custom_domain) WHERE custom_domain IS NOT NULL;
CREATE INDEX ix_store_settings_business ON store_config.store_settings (biz_business_id);
