-- Several instances, one database (SQLite: 009_feed_leases.sql): one row per running
-- instance, written by its invalidation-feed tailer. `applied_id` is the newest feed entry the
-- instance has applied to its memory; `heartbeat_at` (Unix ms, the instance's wall clock) the
-- start of the feed read that wrote the row. A webhook receiver waits, before its 2xx, until
-- every live instance has applied its entry or its memory lease has run out (README, "Several
-- instances, one database"). Rows of instances gone for an hour are pruned.
CREATE TABLE store_cache.instances (
    instance_id  BIGINT NOT NULL CONSTRAINT pk_cache_instances PRIMARY KEY,
    applied_id   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
