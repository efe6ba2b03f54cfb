-- SQL Server / Babelfish: one schema per area of the store. CREATE SCHEMA must be alone in its
-- batch, hence the GO lines (the migration runner splits on them; tiberius runs one batch per
-- call). Times everywhere are BIGINT Unix milliseconds, JSON is NVARCHAR(MAX) checked by ISJSON.
CREATE SCHEMA store_config
GO
CREATE SCHEMA store_cache
GO
CREATE SCHEMA store_webhooks
GO
CREATE SCHEMA store_booking
GO
CREATE SCHEMA store_analytics
GO
-- Readiness writes here: an UPDATE proves the database takes writes.
CREATE TABLE dbo.mango_heartbeat (
    id   INT    NOT NULL CONSTRAINT pk_mango_heartbeat PRIMARY KEY,
    beat BIGINT NOT NULL
);
INSERT INTO dbo.mango_heartbeat (id, beat) VALUES (1, 0);
