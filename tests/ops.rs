//! CONTRACT §11 and the operations issue: health, readiness, metrics, JSON logs without
//! secrets, and SIGTERM draining an in-flight request (the real binary).

mod common;

use std::time::{Duration, Instant};

use common::*;
use mango_store::fakebiz::{FakeBiz, Route};
use serde_json::{Value, json};

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let (status, _, body) = parts(app.get("/healthz").await).await;
    assert_eq!((status, body["data"]["status"].as_str()), (200, Some("ok")));
    let (status, _, body) = parts(app.get("/readyz").await).await;
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (200, Some("ready"))
    );
}

#[tokio::test]
async fn not_ready_while_another_process_holds_the_database() {
    if skip_on_mssql("holds SQLite's write lock from another connection") {
        return;
    }
    let app = spawn_with(Options::default().sqlite_query("busy_timeout_ms=100")).await;
    let holder = rusqlite::Connection::open(&app.db_path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let response = app.get("/readyz").await;
    assert_eq!(header(response.headers(), "retry-after"), "5");
    assert_problem(response, 503, "database_unavailable").await;
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "liveness does not depend on the database"
    );
    holder.execute_batch("COMMIT").unwrap();
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn not_ready_when_the_database_file_is_gone() {
    if skip_on_mssql("deletes the SQLite file") {
        return;
    }
    let app = spawn_app().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", app.db_path.display()));
    }
    assert_problem(app.get("/readyz").await, 503, "database_unavailable").await;
}

#[tokio::test]
async fn metrics_label_routes_by_pattern() {
    let app = spawn_app().await;
    app.get("/api/v1/services").await;
    app.get("/api/v1/services").await;
    app.get("/api/v1/services/svc_secret_looking_id").await;
    app.get("/no/such/route/abc123").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    for expected in [
        "mango_http_requests_total{route=\"/api/v1/{resource}\",status=\"2xx\"}",
        "mango_http_requests_total{route=\"unmatched\",status=\"4xx\"}",
        "mango_http_request_duration_seconds_bucket",
        "mango_cache_requests_total{resource=\"services\",result=\"HIT\"}",
        "mango_cache_requests_total{resource=\"services\",result=\"MISS\"}",
        "mango_biz_requests_total{call=\"list\",outcome=\"ok\"}",
        "mango_biz_request_duration_seconds",
        "mango_db_pool_connections{state=\"max\"}",
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
    assert!(
        !text.contains("svc_secret_looking_id") && !text.contains("abc123"),
        "no raw paths in labels"
    );
}

/// The real binary at `debug` with JSON logs: SIGTERM lets a slow in-flight request finish,
/// then exits 0; every line is a JSON object and none carries a secret.
#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_logs_are_json_without_secrets() {
    let biz = FakeBiz::new(BIZ_KEY);
    biz.load_fixtures(&fixtures_dir()).unwrap();
    let biz_url = biz.spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServeProcess::start(
        &dir.path().join("s.db"),
        &biz_url,
        &[("MANGO_LOG", "debug")],
    )
    .await;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{base}/admin/v1/stores"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"slug": "salon", "name": "Salon", "biz_business_id": BUSINESS}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let store_key = created["api_key"].as_str().unwrap().to_string();
    // Exercise the paths that see secrets: admin auth, store keys, signed webhooks.
    client
        .get(format!("{base}/admin/v1/stores/salon"))
        .bearer_auth(&store_key)
        .send()
        .await
        .unwrap();
    client
        .get(format!("{base}/admin/v1/stores/salon"))
        .bearer_auth("wrong-token-value")
        .send()
        .await
        .unwrap();
    let event = json!({"id": "evt_1", "type": "services.updated", "business_id": BUSINESS,
        "occurred_at": "2026-11-21T10:00:00Z", "data": {"id": "svc_haircut_women"}})
    .to_string();
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = mango_store::webhooks::signature::WebhookSecret::parse(WEBHOOK_SECRET)
        .unwrap()
        .sign("evt_1", ts, event.as_bytes());
    client
        .post(format!("{base}/webhooks/services/updated"))
        .header("webhook-id", "evt_1")
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", &signature)
        .header("content-type", "application/json")
        .body(event)
        .send()
        .await
        .unwrap();

    // Customer details and a visitor's user agent pass through too.
    let draft: Value = client
        .post(format!("{base}/api/v1/booking/draft"))
        .header("X-Store-Id", "salon")
        .json(&json!({"service_id": "svc_haircut_women", "start_at": "2027-03-01T10:00:00+05:00",
            "customer": {"name": "Zhanar Privatename", "phone": "+77015550123", "email": "zhanar.private@example.com"},
            "notes": "allergic to secret-note-ingredient"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let draft_id = draft["data"]["id"].as_str().expect("a draft").to_string();
    let confirmed = client
        .post(format!("{base}/api/v1/booking/draft/{draft_id}/confirm"))
        .header("X-Store-Id", "salon")
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 200);
    let accepted = client
        .post(format!("{base}/api/v1/analytics/events"))
        .header("X-Store-Id", "salon")
        .header("user-agent", "PrivateAgent/9.9 (secret-ua)")
        .json(&json!({"name": "page_view", "url": "/services"}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);

    biz.set_delay(Route::List, Duration::from_millis(1500));
    let in_flight = {
        let (client, url) = (client.clone(), format!("{base}/api/v1/services"));
        tokio::spawn(async move { client.get(url).header("X-Store-Id", "salon").send().await })
    };
    let waited = Instant::now();
    while biz.calls(Route::List) == 0 {
        assert!(waited.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.sigterm();

    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["data"].as_array().unwrap().len() >= 20);
    let status = server.exit_status(Duration::from_secs(10)).await;
    assert!(status.success(), "exit 0 after SIGTERM: {status}");
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "no longer listening"
    );

    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines = server.lines.lock().unwrap().clone();
    assert!(lines.len() > 5, "the run logged");
    let parsed_lines: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(parsed_lines.iter().all(Value::is_object));
    let log = lines.join("\n");
    let signature_b64 = signature.trim_start_matches("v1,");
    for secret in [
        "Zhanar Privatename",
        "+77015550123",
        "7015550123",
        "zhanar.private@example.com",
        "secret-note-ingredient",
        "PrivateAgent",
        ADMIN_TOKEN,
        BIZ_KEY,
        &WEBHOOK_SECRET[6..],
        signature_b64,
        &store_key,
        &store_key[4..],
        "wrong-token-value",
    ] {
        assert!(!log.contains(secret), "a secret reached the log: {secret}");
    }
    let with_request: Vec<&Value> = parsed_lines
        .iter()
        .filter(|l| l.get("request").is_some())
        .collect();
    assert!(
        with_request.iter().any(
            |l| l["request"]["route"] == "/api/v1/booking/draft/{id}/confirm"
                && l["request"]["store"] == "salon"
                && l["request"]["id"].as_str().is_some_and(|id| id.len() == 32)
        ),
        "lines written while serving a request carry its id, route and store"
    );
    assert!(
        log.contains(&draft_id),
        "the booking flow was logged (by draft id only)"
    );
    assert!(
        log.contains("evt_1"),
        "the webhook delivery was logged (by id only)"
    );
}
