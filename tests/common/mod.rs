//! The integration-test harness: the real server on port 0 with a fresh SQLite file (or, when
//! `MANGO_TEST_MSSQL_URL` is set, a fresh SQL Server database: see `sqlserver.rs`), in front
//! of a fake Biz (real HTTP both ways) that counts calls and can be made slow or broken.
#![allow(dead_code)]

pub mod gate;
mod sql;
pub mod sqlserver;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mango_store::app::{self, AppState};
use mango_store::clock::ShiftedClock;
use mango_store::config::{Config, Settings};
use mango_store::db;
use mango_store::fakebiz::{BizCatalog, FakeBiz};
use mango_store::webhooks::signature::WebhookSecret;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const BIZ_KEY: &str = "test-biz-key";
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// base64 of "test-webhook-secret-number-one!!".
pub const WEBHOOK_SECRET: &str = "whsec_dGVzdC13ZWJob29rLXNlY3JldC1udW1iZXItb25lISE=";
/// base64 of "test-webhook-secret-number-two!!" (rotation).
pub const WEBHOOK_SECRET_2: &str = "whsec_dGVzdC13ZWJob29rLXNlY3JldC1udW1iZXItdHdvISE=";
/// The business behind the fixtures, and the store every test gets.
pub const BUSINESS: &str = "biz_demo";
pub const STORE: &str = "salon";

pub use sqlserver::SqlValue;

/// The SQL Server the suite runs against instead of SQLite (`MANGO_TEST_MSSQL_URL`), if any.
pub fn mssql_url() -> Option<String> {
    sqlserver::url()
}

/// For a test that needs SQLite itself (its file, its locks): true, after printing why, when
/// the suite runs on SQL Server.
pub fn skip_on_mssql(why: &str) -> bool {
    if mssql_url().is_some() {
        eprintln!("skipped on SQL Server: {why}");
        return true;
    }
    false
}

/// The default fixture set (a salon), which every test's store is built on.
pub fn fixtures_dir() -> PathBuf {
    fixture_set("salon")
}

pub fn fixture_set(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

pub struct Options {
    pub settings: Vec<(&'static str, String)>,
    pub page_size: usize,
    /// Appended to the SQLite URL, e.g. `busy_timeout_ms=100`.
    pub sqlite_query: Option<String>,
    /// The folder under `fixtures/` the fake Biz serves, whose `resources.toml` the store
    /// declares.
    pub fixture_set: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            settings: Vec::new(),
            page_size: 8,
            sqlite_query: None,
            fixture_set: "salon",
        }
    }
}

impl Options {
    pub fn set(mut self, key: &'static str, value: impl ToString) -> Self {
        self.settings.push((key, value.to_string()));
        self
    }

    pub fn fixture_set(mut self, name: &'static str) -> Self {
        self.fixture_set = name;
        self
    }

    pub fn sqlite_query(mut self, query: &str) -> Self {
        self.sqlite_query = Some(query.to_string());
        self
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub biz: FakeBiz,
    pub biz_url: String,
    pub clock: Arc<ShiftedClock>,
    /// The SQLite file (unused on SQL Server).
    pub db_path: PathBuf,
    /// The `MANGO_DATABASE_URL` the app runs on.
    pub database_url: String,
    /// `(base URL, database)` of the SQL Server database made for this app.
    mssql_db: Option<(String, String)>,
    pub store_key: String,
    /// The fixture set's business (the store `STORE` is for it).
    pub business: String,
    pub state: AppState,
    settings: Settings,
    server: Option<(oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>)>,
    _dir: Arc<tempfile::TempDir>,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_with(options: Options) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let db_path = dir.path().join("store.db");
    let biz = FakeBiz::new(BIZ_KEY).with_page_size(options.page_size);
    let set = fixture_set(options.fixture_set);
    let (business, catalog) = BizCatalog::load_dir(&set).expect("fixtures load");
    biz.add_business(&business, catalog);
    let biz_url = biz.spawn().await.expect("fake Biz starts");
    let (database_url, mssql_db) = match mssql_url() {
        Some(base) => {
            let (name, url) = sqlserver::create_database(&base).await;
            (url, Some((base, name)))
        }
        None => (format!("sqlite://{}", db_path.display()), None),
    };
    let mut settings = Settings::from_pairs([
        ("MANGO_DATABASE_URL", database_url.clone()),
        ("MANGO_BIZ_API_URL", biz_url.clone()),
        ("MANGO_BIZ_API_KEY", BIZ_KEY.to_string()),
        ("MANGO_BIZ_TIMEOUT_MS", "1000".to_string()),
        ("MANGO_WEBHOOK_SECRETS", WEBHOOK_SECRET.to_string()),
        ("MANGO_ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
        // The suites book fixed dates in 2030, beyond the default 730 days.
        ("MANGO_BOOKING_HORIZON_DAYS", "3650".to_string()),
    ]);
    if let Ok(text) = std::fs::read_to_string(set.join("resources.toml")) {
        settings
            .declare_resources_toml(&text)
            .expect("the set declares its resources");
    }
    for (key, value) in &options.settings {
        settings.set(key, value.clone());
    }
    let clock = Arc::new(ShiftedClock::default());
    let (state, server, base) = start(&settings, clock.clone()).await;
    let mut app = TestApp {
        base,
        client: reqwest::Client::new(),
        biz,
        biz_url,
        clock,
        db_path,
        database_url,
        mssql_db,
        store_key: String::new(),
        business: business.clone(),
        state,
        settings,
        server: Some(server),
        _dir: dir,
    };
    app.store_key = app.create_store(STORE, &business).await;
    app
}

type Server = (oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>);

async fn start(settings: &Settings, clock: Arc<ShiftedClock>) -> (AppState, Server, String) {
    let config = Config::from_settings(settings).expect("test config is valid");
    // `MANGO_TEST_LOG=warn cargo test … -- --nocapture` shows the service's own log lines.
    if let Ok(filter) = std::env::var("MANGO_TEST_LOG") {
        let log = mango_store::config::LogConfig {
            filter,
            json: false,
        };
        mango_store::telemetry::init_logging(&log).expect("MANGO_TEST_LOG is a valid filter");
    }
    let db = db::connect(&config.database).await.expect("database opens");
    let state = AppState::with_clock(config, db, clock).expect("state builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app::serve(state.clone(), listener, async move {
        let _ = rx.await;
    }));
    (state, (tx, handle), base)
}

impl TestApp {
    /// Stops the server (draining it) and starts a new one on the same database and fake Biz:
    /// nothing in memory survives.
    pub async fn restart(&mut self) {
        self.stop().await;
        if self.mssql_db.is_some() {
            // Its connections would keep the test database in use until the test ends.
            self.state.db.close();
        }
        let (state, server, base) = start(&self.settings, self.clock.clone()).await;
        self.state = state;
        self.server = Some(server);
        self.base = base;
    }

    /// A second instance on the same database and fake Biz (its own memory, its own port).
    pub async fn spawn_peer(&self) -> Peer {
        let (state, server, base) = start(&self.settings, self.clock.clone()).await;
        Peer {
            base,
            state,
            client: self.client.clone(),
            server: Some(server),
        }
    }

    pub async fn stop(&mut self) {
        if let Some((tx, handle)) = self.server.take() {
            let _ = tx.send(());
            handle.await.unwrap().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A storefront GET for the test store.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_as(STORE, path).await
    }

    pub async fn get_as(&self, slug: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("X-Store-Id", slug)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.expect("request sent")
    }

    pub async fn post_json(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).json(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.expect("request sent")
    }

    /// An admin request with a bearer token.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request sent")
    }

    /// Creates a store through the operator API; answers its API key.
    pub async fn create_store(&self, slug: &str, business: &str) -> String {
        let response = self
            .admin(
                reqwest::Method::POST,
                "/admin/v1/stores",
                ADMIN_TOKEN,
                Some(&json!({"slug": slug, "name": format!("Store {slug}"), "biz_business_id": business})),
            )
            .await;
        assert_eq!(response.status(), 201, "store {slug} created");
        let body: Value = response.json().await.unwrap();
        body["api_key"].as_str().unwrap().to_string()
    }

    /// Sends a webhook signed with `WEBHOOK_SECRET`, timestamped now.
    pub async fn webhook(
        &self,
        resource: &str,
        event: &str,
        event_id: &str,
        business: &str,
        item_id: &str,
    ) -> reqwest::Response {
        let body = json!({
            "id": event_id, "type": format!("{resource}.{event}"), "business_id": business,
            "occurred_at": "2026-11-21T10:00:00Z", "data": {"id": item_id},
        })
        .to_string();
        self.signed_webhook(
            &format!("/webhooks/{resource}/{event}"),
            event_id,
            &body,
            WEBHOOK_SECRET,
        )
        .await
    }

    pub async fn signed_webhook(
        &self,
        path: &str,
        event_id: &str,
        body: &str,
        secret: &str,
    ) -> reqwest::Response {
        let ts = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = WebhookSecret::parse(secret)
            .unwrap()
            .sign(event_id, ts, body.as_bytes());
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("webhook-id", event_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body.to_string())
            .send()
            .await
            .expect("request sent")
    }
}

/// Another instance of the service on the same database and the same fake Biz, with memory
/// of its own (as when several instances run behind a load balancer).
pub struct Peer {
    pub base: String,
    pub state: AppState,
    pub client: reqwest::Client,
    server: Option<Server>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if mssql_url().is_some() {
            self.state.db.close();
        }
    }
}

impl Peer {
    pub async fn stop(&mut self) {
        if let Some((tx, handle)) = self.server.take() {
            let _ = tx.send(());
            handle.await.unwrap().unwrap();
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header("X-Store-Id", STORE)
            .send()
            .await
            .expect("request sent")
    }
}

/// Status, headers and JSON body (Null when the body is not JSON).
pub async fn parts(response: reqwest::Response) -> (u16, HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap_or_default();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Asserts a problem+json answer with this status and code.
pub async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    let (got, headers, body) = parts(response).await;
    assert_eq!(got, status, "status; body {body}");
    assert_eq!(
        header(&headers, "content-type"),
        "application/problem+json",
        "content type; body {body}"
    );
    assert_eq!(body["code"], code, "code; body {body}");
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
    assert!(!header(&headers, "x-request-id").is_empty());
    body
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestApp {
    /// A storefront request with any method and optional JSON body, for store `slug`.
    pub async fn storefront(
        &self,
        method: reqwest::Method,
        slug: &str,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("X-Store-Id", slug);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request sent")
    }

    /// A connection to the SQLite test database (SQLite-only tests: see `skip_on_mssql`).
    pub fn sql(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(&self.db_path).expect("test database opens");
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn
    }

    /// Analytics events with this name, for one draft or for all.
    pub fn count_events(&self, name: &str, draft_id: Option<&str>) -> i64 {
        match draft_id {
            Some(id) => self.sql_i64(
                "SELECT COUNT(*) FROM store_analytics_events WHERE name = ?1 AND draft_id = ?2",
                &[name.into(), id.into()],
            ),
            None => self.sql_i64(
                "SELECT COUNT(*) FROM store_analytics_events WHERE name = ?1",
                &[name.into()],
            ),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some((base, name)) = self.mssql_db.take() {
            // Closing the pool lets its connections go as their tasks end; the database is
            // dropped once the server sees no session in it.
            self.state.db.close();
            sqlserver::drop_database_later(base, name);
        }
    }
}

/// `mango-store serve` in its own process, with JSON logs collected from its stdout.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub base: String,
    pub lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ServeProcess {
    /// Starts the real binary on a free port against `db_path` and `biz_url`, with the test
    /// secrets, and waits until it answers `/healthz`.
    pub async fn start(
        db_path: &std::path::Path,
        biz_url: &str,
        extra: &[(&str, &str)],
    ) -> ServeProcess {
        Self::try_start(db_path, biz_url, extra)
            .await
            .expect("the server starts")
    }

    /// As [`Self::start`], but `None` when the process exits before it answers (`serve` exits
    /// non-zero when the database is down at start-up) or does not answer within 20 s.
    pub async fn try_start(
        db_path: &std::path::Path,
        biz_url: &str,
        extra: &[(&str, &str)],
    ) -> Option<ServeProcess> {
        use std::io::BufRead;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mango-store"));
        command
            .arg("serve")
            .env("MANGO_BIND", format!("127.0.0.1:{port}"))
            .env(
                "MANGO_DATABASE_URL",
                format!("sqlite://{}", db_path.display()),
            )
            .env("MANGO_BIZ_API_URL", biz_url)
            .env("MANGO_BIZ_API_KEY", BIZ_KEY)
            .env("MANGO_WEBHOOK_SECRETS", WEBHOOK_SECRET)
            .env("MANGO_ADMIN_TOKEN", ADMIN_TOKEN)
            // As in `spawn_with`: the suites book fixed dates years ahead.
            .env("MANGO_BOOKING_HORIZON_DAYS", "3650")
            .env("MANGO_LOG_FORMAT", "json")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        for (k, v) in extra {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("the binary starts");
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stdout = child.stdout.take().unwrap();
        // `MANGO_TEST_SERVE_LOGS=DIR` also keeps each process's log in `DIR/PORT.log`.
        let mut copy = std::env::var_os("MANGO_TEST_SERVE_LOGS").map(|dir| {
            std::fs::File::create(std::path::Path::new(&dir).join(format!("{port}.log")))
                .expect("the log copy can be created")
        });
        std::thread::spawn(move || {
            use std::io::Write;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(file) = copy.as_mut() {
                    let _ = writeln!(file, "{line}");
                }
                sink.lock().unwrap().push(line);
            }
        });
        let base = format!("http://127.0.0.1:{port}");
        let mut process = ServeProcess { child, base, lines };
        let client = reqwest::Client::new();
        let started = std::time::Instant::now();
        while client
            .get(format!("{}/healthz", process.base))
            .send()
            .await
            .is_err()
        {
            let exited = process.child.try_wait().unwrap().is_some();
            if exited || started.elapsed() > Duration::from_secs(20) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(process)
    }

    pub fn sigterm(&self) {
        let pid = self.child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Waits for the process to exit; panics after `within`.
    pub async fn exit_status(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "the process exits");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `services.updated` delivery about `item_id`, signed with `WEBHOOK_SECRET` and timestamped
/// now, for a server that is not a `TestApp` (a `serve` process).
pub fn signed_services_webhook(
    client: &reqwest::Client,
    base: &str,
    event_id: &str,
    item_id: &str,
) -> reqwest::RequestBuilder {
    signed_services_webhook_for(client, base, BUSINESS, event_id, item_id)
}

/// [`signed_services_webhook`] for another business.
pub fn signed_services_webhook_for(
    client: &reqwest::Client,
    base: &str,
    business: &str,
    event_id: &str,
    item_id: &str,
) -> reqwest::RequestBuilder {
    let body = json!({"id": event_id, "type": "services.updated", "business_id": business,
        "occurred_at": "2026-11-21T10:00:00Z", "data": {"id": item_id}})
    .to_string();
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature =
        WebhookSecret::parse(WEBHOOK_SECRET)
            .unwrap()
            .sign(event_id, ts, body.as_bytes());
    client
        .post(format!("{base}/webhooks/services/updated"))
        .header("content-type", "application/json")
        .header("webhook-id", event_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
}

/// Sends [`signed_services_webhook_for`]; answers the status code and the body's
/// `data.status` (or, for a problem, its `code`).
pub async fn deliver_services_webhook(
    client: &reqwest::Client,
    base: &str,
    business: &str,
    event_id: &str,
    item_id: &str,
) -> Result<(u16, String), reqwest::Error> {
    let response = signed_services_webhook_for(client, base, business, event_id, item_id)
        .send()
        .await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    let answer = body["data"]["status"]
        .as_str()
        .or(body["code"].as_str())
        .unwrap_or_default();
    Ok((status, answer.to_string()))
}
