//! Issue 16, crash recovery: a process killed between a database commit and its answer loses
//! nothing it acknowledged, and the client's retry (to a restarted process on the same
//! database) gets the answer the README promises. The real binary, aborted at a test-only
//! failpoint (`MANGO_TEST_FAILPOINT`, `src/failpoint.rs`), as SIGKILL would end it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use mango_store::fakebiz::{FakeBiz, Route};
use serde_json::{Value, json};

const SERVICE: &str = "svc_haircut_women";

async fn start(db: &Path, biz_url: &str, failpoint: Option<&str>) -> ServeProcess {
    let mut extra = vec![("MANGO_BOOKING_HORIZON_DAYS", "3650")];
    if let Some(point) = failpoint {
        extra.push(("MANGO_TEST_FAILPOINT", point));
    }
    ServeProcess::start(db, biz_url, &extra).await
}

async fn crashed(process: &mut ServeProcess) {
    let status = process.exit_status(Duration::from_secs(10)).await;
    assert!(!status.success(), "the process aborted: {status:?}");
}

fn webhook(client: &reqwest::Client, base: &str, event_id: &str) -> reqwest::RequestBuilder {
    signed_services_webhook(client, base, event_id, SERVICE)
}

async fn get(client: &reqwest::Client, base: &str, path: &str) -> (u16, String, Value) {
    let response = client
        .get(format!("{base}{path}"))
        .header("X-Store-Id", STORE)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let cache = header(response.headers(), "x-cache").to_string();
    (status, cache, response.json().await.unwrap_or(Value::Null))
}

async fn create_store(client: &reqwest::Client, base: &str) {
    let created = client
        .post(format!("{base}/admin/v1/stores"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"slug": STORE, "name": "Salon", "biz_business_id": BUSINESS}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
}

/// Kills the process at `point` while it handles a webhook; the retry to a restarted process
/// answers `expected`, the item is fresh, and what else the SQL cache held is served without
/// asking Biz.
async fn webhook_crash_at(point: &str, expected: &str) {
    let biz = FakeBiz::new(BIZ_KEY);
    biz.load_fixtures(&fixtures_dir()).unwrap();
    let biz_url = biz.spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let client = reqwest::Client::new();
    let mut a = start(&db, &biz_url, Some(point)).await;
    create_store(&client, &a.base).await;
    let item = format!("/api/v1/services/{SERVICE}");
    let (status, _, before) = get(&client, &a.base, &item).await;
    assert_eq!(status, 200);
    assert_eq!(get(&client, &a.base, "/api/v1/staff").await.0, 200);

    let mut changed = before["data"].clone();
    changed["name"] = json!("Renamed in Biz");
    biz.upsert_item(BUSINESS, "services", changed);
    let event_id = format!("evt_crash_{point}");
    let answer = webhook(&client, &a.base, &event_id).send().await;
    assert!(
        answer.is_err(),
        "no answer from a process that died: {answer:?}"
    );
    crashed(&mut a).await;

    let b = start(&db, &biz_url, None).await;
    let lists_before = biz.calls(Route::List);
    let (status, cache, staff) = get(&client, &b.base, "/api/v1/staff").await;
    assert_eq!(
        (status, cache.as_str()),
        (200, "HIT"),
        "the restart serves the SQL cache"
    );
    assert!(staff["data"].as_array().is_some_and(|s| !s.is_empty()));
    assert_eq!(biz.calls(Route::List), lists_before, "without asking Biz");

    let (status, _, body) = parts(webhook(&client, &b.base, &event_id).send().await.unwrap()).await;
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (200, Some(expected))
    );
    let (status, _, after) = get(&client, &b.base, &item).await;
    assert_eq!(status, 200);
    assert_eq!(
        after["data"]["name"], "Renamed in Biz",
        "the item was invalidated"
    );
    // And the delivery is done now: any further retry is a duplicate.
    let (_, _, body) = parts(webhook(&client, &b.base, &event_id).send().await.unwrap()).await;
    assert_eq!(body["data"]["status"], "duplicate");
}

#[tokio::test]
async fn a_webhook_killed_after_its_commit_is_a_duplicate_on_retry_and_its_item_is_fresh() {
    webhook_crash_at("webhook_after_commit", "duplicate").await;
}

#[tokio::test]
async fn a_webhook_killed_before_it_was_marked_processed_is_redone_on_retry() {
    webhook_crash_at("webhook_before_finish", "processed").await;
}

#[tokio::test]
async fn a_confirm_killed_after_its_commit_answers_the_booking_on_retry_with_one_biz_booking() {
    let biz = FakeBiz::new(BIZ_KEY);
    biz.load_fixtures(&fixtures_dir()).unwrap();
    let biz_url = biz.spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let client = reqwest::Client::new();
    let mut a = start(&db, &biz_url, Some("confirm_after_commit")).await;
    create_store(&client, &a.base).await;
    let created = client
        .post(format!("{}/api/v1/booking/draft", a.base))
        .header("X-Store-Id", STORE)
        .json(&json!({
            "service_id": SERVICE, "staff_id": "stf_aigerim", "start_at": "2030-05-01T10:00:00Z",
            "customer": {"name": "Aru Sadykova", "phone": "+77010000000"},
        }))
        .send()
        .await
        .unwrap();
    let (status, _, draft) = parts(created).await;
    assert_eq!(status, 201, "{draft}");
    let id = draft["data"]["id"].as_str().unwrap().to_string();
    let confirm = |base: &str| {
        client
            .post(format!("{base}/api/v1/booking/draft/{id}/confirm"))
            .header("X-Store-Id", STORE)
            .send()
    };
    let answer = confirm(&a.base).await;
    assert!(
        answer.is_err(),
        "no answer from a process that died: {answer:?}"
    );
    crashed(&mut a).await;
    assert_eq!(
        biz.created_bookings().len(),
        1,
        "Biz booked before the crash"
    );

    let b = start(&db, &biz_url, None).await;
    let (status, _, retried) = parts(confirm(&b.base).await.unwrap()).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["data"]["status"], "confirmed");
    let code = &retried["data"]["booking"]["confirmation_code"];
    assert!(code.is_string(), "{retried}");
    assert_eq!(biz.created_bookings().len(), 1, "exactly one Biz booking");
    assert_eq!(
        biz.calls(Route::Bookings),
        1,
        "the retry did not call Biz again"
    );
    let (_, _, read) = get(&client, &b.base, &format!("/api/v1/booking/draft/{id}")).await;
    assert_eq!(read["data"]["booking"]["confirmation_code"], *code);
}

/// Issue 17 point 9: a fill that panics (once, at a failpoint) answers 503 to the reads that
/// waited on it, and the next read of the key is a fresh fill, not the same 503 until an
/// invalidation: the pending fill is cleared however its task ends.
#[tokio::test]
async fn a_fill_that_panics_does_not_wedge_its_key() {
    let biz = FakeBiz::new(BIZ_KEY);
    biz.load_fixtures(&fixtures_dir()).unwrap();
    let biz_url = biz.spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("panic.db");
    let client = reqwest::Client::new();
    let process = start(&db, &biz_url, Some("fill_panics")).await;
    create_store(&client, &process.base).await;
    let item = format!("/api/v1/services/{SERVICE}");
    let (status, _, body) = get(&client, &process.base, &item).await;
    assert_eq!(status, 503, "the panicked fill: {body}");
    let (status, cache, body) = get(&client, &process.base, &item).await;
    assert_eq!((status, cache.as_str()), (200, "MISS"), "{body}");
    assert_eq!(body["data"]["id"], SERVICE);
}
