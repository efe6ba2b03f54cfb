//! T-SQL migrations (SQL Server 2019+ and Babelfish 4.x): `migrations/mssql/NNN_*.sql`, each
//! applied once, in order, recorded in `dbo.schema_migrations`.
//!
//! Instances that start together serialise on a session-owned application lock
//! (`sp_getapplock`, which Babelfish implements with PostgreSQL advisory locks): the first
//! applies what is missing, the others wait, then find everything recorded. A session lock is
//! released by the server if the process dies, so a crash never leaves the schema locked. The
//! resource name carries `DB_NAME()`, because Babelfish shares advisory locks between all the
//! T-SQL databases of one PostgreSQL database.
//!
//! A file is split into batches on lines that are exactly `GO` (tiberius sends one batch per
//! call, and `CREATE SCHEMA` must be alone in its batch); its batches and its record commit in
//! one transaction.

use std::time::Duration;

use anyhow::{Context, anyhow};

use super::{Conn, MssqlDb, RowExt};

/// Numbered migrations, applied in order, each once. Never edit one that has landed.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "001_create_schemas",
        include_str!("../../../migrations/mssql/001_create_schemas.sql"),
    ),
    (
        "002_store_config",
        include_str!("../../../migrations/mssql/002_store_config.sql"),
    ),
    (
        "003_store_cache",
        include_str!("../../../migrations/mssql/003_store_cache.sql"),
    ),
    (
        "004_store_webhooks",
        include_str!("../../../migrations/mssql/004_store_webhooks.sql"),
    ),
    (
        "005_store_booking",
        include_str!("../../../migrations/mssql/005_store_booking.sql"),
    ),
    (
        "006_store_analytics",
        include_str!("../../../migrations/mssql/006_store_analytics.sql"),
    ),
    (
        "007_declared_resources",
        include_str!("../../../migrations/mssql/007_declared_resources.sql"),
    ),
    (
        "008_hardening",
        include_str!("../../../migrations/mssql/008_hardening.sql"),
    ),
    (
        "009_browser",
        include_str!("../../../migrations/mssql/009_browser.sql"),
    ),
    (
        "010_feed_leases",
        include_str!("../../../migrations/mssql/010_feed_leases.sql"),
    ),
];

/// How long an instance waits for another one's migrations.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// The batches of a script: split on `GO` lines, comment-only batches dropped.
pub(crate) fn batches(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut flush = |current: &mut String| {
        let meaningful = current
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"));
        if meaningful {
            out.push(current.trim().to_string());
        }
        current.clear();
    };
    for line in script.lines() {
        if line.trim().eq_ignore_ascii_case("GO") {
            flush(&mut current);
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    flush(&mut current);
    out
}

const LOCK: &str = "DECLARE @resource NVARCHAR(255) = N'mango-store:migrate:' + DB_NAME();
     DECLARE @result INT;
     EXEC @result = sp_getapplock @Resource = @resource, @LockMode = 'Exclusive',
          @LockOwner = 'Session', @LockTimeout = @P1;
     SELECT CAST(@result AS BIGINT);";

const UNLOCK: &str = "DECLARE @resource NVARCHAR(255) = N'mango-store:migrate:' + DB_NAME();
     EXEC sp_releaseapplock @Resource = @resource, @LockOwner = 'Session';";

pub(super) async fn apply(db: &MssqlDb) -> anyhow::Result<Vec<&'static str>> {
    db.run_within(LOCK_WAIT * 2, |c| {
        Box::pin(async move {
            let wait_ms = LOCK_WAIT.as_millis() as i64;
            let granted = c.scalar(LOCK, &[&wait_ms]).await?;
            if granted < 0 {
                return Ok(Err(anyhow!(
                    "another instance held the migration lock for {LOCK_WAIT:?} (sp_getapplock \
                     answered {granted})"
                )));
            }
            let outcome = apply_locked(c).await;
            if c.batch(UNLOCK).await.is_err() {
                // A session lock outlives the request: never pool a connection still holding it.
                c.broken = true;
            }
            Ok(outcome)
        })
    })
    .await
    .map_err(|e| anyhow!(e))?
}

async fn apply_locked(c: &mut Conn) -> anyhow::Result<Vec<&'static str>> {
    c.batch(
        "IF OBJECT_ID(N'dbo.schema_migrations', N'U') IS NULL
             CREATE TABLE dbo.schema_migrations (
                 version    NVARCHAR(100) NOT NULL CONSTRAINT pk_schema_migrations PRIMARY KEY,
                 applied_at BIGINT        NOT NULL
             )",
    )
    .await
    .context("creating dbo.schema_migrations")?;
    let done: Vec<String> = c
        .rows("SELECT version FROM dbo.schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<_, _>>()?;
    let mut applied = Vec::new();
    for (version, script) in MIGRATIONS {
        if done.iter().any(|d| d == version) {
            continue;
        }
        let version: &'static str = version;
        let batches = batches(script);
        c.transaction(move |c| {
            Box::pin(async move {
                for batch in &batches {
                    c.batch(batch).await?;
                }
                let now = crate::clock::unix_ms_now();
                c.exec(
                    "INSERT INTO dbo.schema_migrations (version, applied_at) VALUES (@P1, @P2)",
                    &[&version, &now],
                )
                .await
            })
        })
        .await
        .with_context(|| format!("migration {version}"))?;
        applied.push(version);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_on_go_lines() {
        let b =
            batches("-- header\nCREATE SCHEMA a\nGO\n  go  \nCREATE TABLE t (x INT);\nGO\n-- c\n");
        assert_eq!(
            b,
            vec!["-- header\nCREATE SCHEMA a", "CREATE TABLE t (x INT);"]
        );
    }

    #[test]
    fn no_migration_uses_what_babelfish_refuses() {
        for (version, script) in MIGRATIONS {
            let upper = script.to_ascii_uppercase();
            for refused in [
                "MERGE ",
                "CREATE OR ALTER",
                "OUTPUT DELETED",
                "READPAST",
                "UPDLOCK",
            ] {
                assert!(!upper.contains(refused), "{version} uses {refused}");
            }
            assert!(!batches(script).is_empty(), "{version} is empty");
        }
    }
}
