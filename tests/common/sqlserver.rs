//! The suite on SQL Server. When `MANGO_TEST_MSSQL_URL` (`mssql://USER:PASS@HOST:PORT/DB?…`)
//! is set, every `TestApp` gets a database of its own, `mango_t_<unix secs>_<pid>_<hex>`,
//! created through that URL (Babelfish must run in multi-db mode) and dropped when the app is
//! dropped, once its connections are gone. What a test process could not drop before it
//! exited (its last tests' databases) the next test process drops: databases of another
//! process older than a minute that nobody uses any more (a database in use cannot be
//! dropped, so a concurrent run is safe).
//!
//! Assertions on stored rows go through [`TestApp::sql_i64`] and friends, which take SQLite
//! spelling (`store_booking_drafts`, `?1`) and translate it for SQL Server
//! (`store_booking.drafts`, `@P1`).

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mango_store::db::{DatabaseUrl, MssqlUrl, mssql};
use tiberius::{ColumnData, ToSql};

pub const VAR: &str = "MANGO_TEST_MSSQL_URL";
const PREFIX: &str = "mango_t_";

/// The SQL Server URL the suite runs against, if any.
pub fn url() -> Option<String> {
    std::env::var(VAR).ok().filter(|v| !v.trim().is_empty())
}

pub fn parse(raw: &str) -> MssqlUrl {
    match DatabaseUrl::parse(raw) {
        Ok(DatabaseUrl::Mssql(url)) => url,
        other => panic!("{VAR} must be an mssql:// URL: {other:?}"),
    }
}

/// The same URL with another database as its path.
pub fn with_database(raw: &str, database: &str) -> String {
    let mut url = url::Url::parse(raw).expect("valid URL");
    url.set_path(&format!("/{database}"));
    // The suites' bursts (200 concurrent webhooks on a pool of 10) on a shared, busy machine
    // can wait longer than the default 10 s for a connection; unless the URL says otherwise.
    if !url.query_pairs().any(|(k, _)| k == "connect_timeout_ms") {
        url.query_pairs_mut()
            .append_pair("connect_timeout_ms", "30000");
    }
    url.to_string()
}

/// Runs `fut` on a runtime of its own on another thread, so that synchronous helpers (and
/// `Drop`) can talk to SQL Server from inside a test's runtime.
pub fn block_on<T: Send>(fut: impl Future<Output = T> + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(fut)
        })
        .join()
        .expect("SQL Server helper thread")
    })
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn client(raw: &str) -> mssql::Client {
    mssql::client(&parse(raw))
        .await
        .unwrap_or_else(|e| panic!("{VAR}: {e:#}"))
}

/// Drops the test databases other processes left behind (once per process).
async fn sweep(base: &str) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let mut c = client(base).await;
            let rows = c
                .simple_query(format!(
                    "SELECT name FROM sys.databases WHERE name LIKE '{PREFIX}%'"
                ))
                .await
                .unwrap()
                .into_first_result()
                .await
                .unwrap_or_default();
            let cutoff = unix_secs().saturating_sub(60);
            let me = std::process::id().to_string();
            for row in rows {
                let Some(name) = row.get::<&str, _>(0).map(str::to_owned) else {
                    continue;
                };
                let mut parts = name.strip_prefix(PREFIX).unwrap_or("").split('_');
                let created = parts.next().and_then(|secs| secs.parse::<u64>().ok());
                let foreign = parts.next() != Some(me.as_str());
                if foreign && created.is_some_and(|secs| secs < cutoff) {
                    let _ = c.simple_query(format!("DROP DATABASE {name}")).await;
                }
            }
        })
        .await;
}

/// Creates a fresh database; answers its name and its URL.
pub async fn create_database(base: &str) -> (String, String) {
    sweep(base).await;
    let name = format!(
        "{PREFIX}{}_{}_{}",
        unix_secs(),
        std::process::id(),
        hex::encode(rand::random::<[u8; 4]>())
    );
    // Babelfish refuses concurrent CREATE DATABASEs ("tuple concurrently updated"): one at a
    // time per process, and a retry for another process's.
    static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = CREATING.lock().await;
    let mut c = client(base).await;
    for attempt in 1.. {
        let created = match c.simple_query(format!("CREATE DATABASE {name}")).await {
            Ok(stream) => stream.into_results().await.map(drop),
            Err(e) => Err(e),
        };
        match created {
            Ok(()) => break,
            Err(e) if attempt < 5 && e.to_string().contains("concurrently") => {
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            Err(e) => panic!("CREATE DATABASE {name} through {VAR}: {e}"),
        }
    }
    (name.clone(), with_database(base, &name))
}

/// Drops the database on a thread of its own, retrying while the server still sees sessions
/// in it (the app's pool closes its connections as their tasks end).
pub fn drop_database_later(base: String, name: String) {
    std::thread::spawn(move || {
        block_on(async move {
            for _ in 0..60 {
                if let Ok(mut c) = mssql::client(&parse(&base)).await {
                    let dropped = match c.simple_query(format!("DROP DATABASE {name}")).await {
                        Ok(stream) => stream.into_results().await.is_ok(),
                        Err(_) => false,
                    };
                    if dropped {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    });
}

/// A parameter of a test query.
#[derive(Debug, Clone)]
pub enum SqlValue {
    Int(i64),
    Text(String),
    Null,
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        Self::Text(v.to_string())
    }
}

impl From<&String> for SqlValue {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Self::Int(v) => rusqlite::ToSql::to_sql(v),
            Self::Text(v) => rusqlite::ToSql::to_sql(v),
            Self::Null => rusqlite::ToSql::to_sql(&rusqlite::types::Null),
        }
    }
}

impl ToSql for SqlValue {
    fn to_sql(&self) -> ColumnData<'_> {
        match self {
            Self::Int(v) => ColumnData::I64(Some(*v)),
            Self::Text(v) => ColumnData::String(Some(v.as_str().into())),
            Self::Null => ColumnData::String(None),
        }
    }
}

/// SQLite spelling to T-SQL: `store_area_table` → `store_area.table`, `?N` → `@PN`.
pub fn to_tsql(sql: &str) -> String {
    let mut out = sql.to_string();
    for area in ["config", "cache", "webhooks", "booking", "analytics"] {
        out = out.replace(&format!("store_{area}_"), &format!("store_{area}."));
    }
    let mut translated = String::with_capacity(out.len());
    let mut chars = out.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            translated.push_str("@P");
        } else {
            translated.push(ch);
        }
    }
    translated
}

/// Runs a test query on SQL Server: every row, every cell as a [`SqlValue`].
pub fn query(url: &str, sql: &str, params: &[SqlValue]) -> Vec<Vec<SqlValue>> {
    let sql = to_tsql(sql);
    block_on(async {
        let mut c = client(url).await;
        let params: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
        let (sql, params) = mssql::bind_nulls(&sql, &params);
        let stream = c
            .query(sql.as_str(), &params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let rows = stream.into_first_result().await.unwrap();
        rows.into_iter()
            .map(|row| {
                row.cells()
                    .map(|(_, cell)| match cell {
                        ColumnData::I64(Some(v)) => SqlValue::Int(*v),
                        ColumnData::I32(Some(v)) => SqlValue::Int(i64::from(*v)),
                        ColumnData::I16(Some(v)) => SqlValue::Int(i64::from(*v)),
                        ColumnData::U8(Some(v)) => SqlValue::Int(i64::from(*v)),
                        ColumnData::Bit(Some(v)) => SqlValue::Int(i64::from(*v)),
                        ColumnData::String(Some(v)) => SqlValue::Text(v.to_string()),
                        _ => SqlValue::Null,
                    })
                    .collect()
            })
            .collect()
    })
}

/// Runs a test statement on SQL Server; answers the rows it affected.
pub fn execute(url: &str, sql: &str, params: &[SqlValue]) -> u64 {
    let sql = to_tsql(sql);
    block_on(async {
        let mut c = client(url).await;
        let params: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
        let (sql, params) = mssql::bind_nulls(&sql, &params);
        c.execute(sql.as_str(), &params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .total()
    })
}
