//! CONTRACT §6: webhooks from Biz — verified, deduplicated, and invalidating before they
//! answer.

mod common;

use std::time::Duration;

use common::*;
use mango_store::fakebiz::{BizCatalog, Route};
use mango_store::webhooks::signature::WebhookSecret;
use serde_json::{Value, json};

const ITEM: &str = "svc_haircut_women";
const ITEM_PATH: &str = "/api/v1/services/svc_haircut_women";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn event_body(resource: &str, event: &str, id: &str, business: &str, item: &str) -> String {
    json!({
        "id": id, "type": format!("{resource}.{event}"), "business_id": business,
        "occurred_at": "2026-11-21T10:00:00Z", "data": {"id": item},
    })
    .to_string()
}

fn sign(secret: &str, id: &str, ts: i64, body: &str) -> String {
    WebhookSecret::parse(secret)
        .unwrap()
        .sign(id, ts, body.as_bytes())
}

/// A POST to `path` with exactly these headers and this body.
async fn send(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> reqwest::Response {
    let mut request = app.client.post(app.url(path)).body(body.to_string());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.expect("request sent")
}

/// A JSON delivery with the three Standard Webhooks headers as given.
async fn deliver(
    app: &TestApp,
    path: &str,
    id: &str,
    ts: &str,
    signature: &str,
    body: &str,
) -> reqwest::Response {
    let headers = [
        ("content-type", "application/json"),
        ("webhook-id", id),
        ("webhook-timestamp", ts),
        ("webhook-signature", signature),
    ];
    send(app, path, &headers, body).await
}

async fn assert_status(response: reqwest::Response, expected: &str) {
    let (status, headers, body) = parts(response).await;
    assert_eq!(status, 200, "body {body}");
    assert_eq!(body, json!({"data": {"status": expected}}));
    assert!(!header(&headers, "x-request-id").is_empty());
}

fn fixture(resource: &str, id: &str) -> Value {
    let text = std::fs::read_to_string(fixtures_dir().join(format!("{resource}.json"))).unwrap();
    let items: Vec<Value> = serde_json::from_str(&text).unwrap();
    items
        .into_iter()
        .find(|i| i["id"] == id)
        .expect("fixture item")
}

/// Changes the item's name in the fake Biz (for `business`).
fn rename(app: &TestApp, business: &str, name: &str) {
    let mut item = fixture("services", ITEM);
    item["name"] = json!(name);
    app.biz.upsert_item(business, "services", item);
}

/// The item's name as the store answers it, with the `x-cache` header.
async fn item_name(app: &TestApp, slug: &str) -> (String, String) {
    let (status, headers, body) = parts(app.get_as(slug, ITEM_PATH).await).await;
    assert_eq!(status, 200, "body {body}");
    let name = body["data"]["name"].as_str().unwrap().to_string();
    (name, header(&headers, "x-cache").to_string())
}

fn name_in_list(list: &Value) -> String {
    let items = list["data"].as_array().expect("a list");
    let item = items.iter().find(|i| i["id"] == ITEM).expect("item listed");
    item["name"].as_str().unwrap().to_string()
}

async fn list_name(app: &TestApp, slug: &str) -> (String, String) {
    let (status, headers, body) = parts(app.get_as(slug, "/api/v1/services").await).await;
    assert_eq!(status, 200, "body {body}");
    (name_in_list(&body), header(&headers, "x-cache").to_string())
}

/// Reads the item and the list twice, so both are cached in memory and in SQL.
async fn warm(app: &TestApp, slug: &str) -> String {
    let (name, _) = item_name(app, slug).await;
    assert_eq!(item_name(app, slug).await.1, "HIT");
    list_name(app, slug).await;
    assert_eq!(list_name(app, slug).await.1, "HIT");
    name
}

async fn store_id(app: &TestApp, slug: &str) -> i64 {
    app.state.db.store_by_slug(slug).await.unwrap().unwrap().id
}

#[tokio::test]
async fn a_first_delivery_invalidates_item_and_list_in_memory_and_sql_before_answering() {
    let mut app = spawn_app().await;
    let original = warm(&app, STORE).await;
    rename(&app, BUSINESS, "Haircut v2");
    // Without a webhook the store keeps serving its copy: the change is invisible so far.
    assert_eq!(item_name(&app, STORE).await, (original, "HIT".into()));

    let r = app
        .webhook("services", "updated", "evt_first", BUSINESS, ITEM)
        .await;
    assert_status(r, "processed").await;
    assert_eq!(
        item_name(&app, STORE).await,
        ("Haircut v2".into(), "MISS".into())
    );
    assert_eq!(
        list_name(&app, STORE).await,
        ("Haircut v2".into(), "MISS".into())
    );

    // SQL too: with memory gone after a restart, a copy left in SQL would answer HIT v2.
    warm(&app, STORE).await;
    rename(&app, BUSINESS, "Haircut v3");
    let r = app
        .webhook("services", "updated", "evt_second", BUSINESS, ITEM)
        .await;
    assert_status(r, "processed").await;
    app.restart().await;
    assert_eq!(
        item_name(&app, STORE).await,
        ("Haircut v3".into(), "MISS".into())
    );
    assert_eq!(
        list_name(&app, STORE).await,
        ("Haircut v3".into(), "MISS".into())
    );
}

#[tokio::test]
async fn a_deleted_item_answers_biz_404_afterwards() {
    let app = spawn_app().await;
    warm(&app, STORE).await;
    assert!(app.biz.remove_item(BUSINESS, "services", ITEM));
    let r = app
        .webhook("services", "deleted", "evt_delete", BUSINESS, ITEM)
        .await;
    assert_status(r, "processed").await;
    assert_problem(app.get(ITEM_PATH).await, 404, "not_found").await;
    assert_eq!(app.biz.calls_for("services", Some(ITEM)), 2, "asked Biz");
    let (_, _, list) = parts(app.get("/api/v1/services").await).await;
    let listed = list["data"].as_array().unwrap();
    assert!(!listed.iter().any(|i| i["id"] == ITEM));
}

#[tokio::test]
async fn created_events_invalidate_the_list_that_lacked_the_item() {
    let app = spawn_app().await;
    let (_, _, before) = parts(app.get("/api/v1/products").await).await;
    let count = before["data"].as_array().unwrap().len();
    app.biz.upsert_item(
        BUSINESS,
        "products",
        json!({"id": "prd_new_one", "name": "New"}),
    );
    let r = app
        .webhook(
            "products",
            "created",
            "evt_created",
            BUSINESS,
            "prd_new_one",
        )
        .await;
    assert_status(r, "processed").await;
    let (_, headers, after) = parts(app.get("/api/v1/products").await).await;
    assert_eq!(header(&headers, "x-cache"), "MISS");
    assert_eq!(after["data"].as_array().unwrap().len(), count + 1);
}

#[tokio::test]
async fn a_repeated_webhook_id_is_a_duplicate_and_does_no_work() {
    let app = spawn_app().await;
    warm(&app, STORE).await;
    rename(&app, BUSINESS, "Haircut v2");
    let r = app
        .webhook("services", "updated", "evt_dup", BUSINESS, ITEM)
        .await;
    assert_status(r, "processed").await;
    assert_eq!(item_name(&app, STORE).await.0, "Haircut v2");

    rename(&app, BUSINESS, "Haircut v3");
    let item_calls = app.biz.calls_for("services", Some(ITEM));
    for _ in 0..2 {
        let r = app
            .webhook("services", "updated", "evt_dup", BUSINESS, ITEM)
            .await;
        assert_status(r, "duplicate").await;
    }
    // Nothing was invalidated: the copy from before the duplicate is still served.
    assert_eq!(
        item_name(&app, STORE).await,
        ("Haircut v2".into(), "HIT".into())
    );
    assert_eq!(app.biz.calls_for("services", Some(ITEM)), item_calls);
}

#[tokio::test]
async fn duplicates_are_recognised_after_a_restart() {
    let mut app = spawn_app().await;
    let r = app
        .webhook("services", "updated", "evt_restart", BUSINESS, ITEM)
        .await;
    assert_status(r, "processed").await;
    warm(&app, STORE).await;
    rename(&app, BUSINESS, "Haircut v2");
    app.restart().await;
    let r = app
        .webhook("services", "updated", "evt_restart", BUSINESS, ITEM)
        .await;
    assert_status(r, "duplicate").await;
    // No work: the SQL copy still answers.
    assert_ne!(item_name(&app, STORE).await.0, "Haircut v2");
}

#[tokio::test]
async fn missing_or_invalid_signatures_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let original = warm(&app, STORE).await;
    rename(&app, BUSINESS, "Haircut v2");
    let path = "/webhooks/services/updated";
    let id = "evt_sig";
    let body = event_body("services", "updated", id, BUSINESS, ITEM);
    let ts = now().to_string();
    let good = sign(WEBHOOK_SECRET, id, now(), &body);

    // No headers at all, and each of the three missing.
    let json_only = [("content-type", "application/json")];
    assert_problem(
        send(&app, path, &json_only, &body).await,
        401,
        "invalid_signature",
    )
    .await;
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let all = [
            ("content-type", "application/json"),
            ("webhook-id", id),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", good.as_str()),
        ];
        let some: Vec<_> = all.into_iter().filter(|(k, _)| *k != missing).collect();
        let r = send(&app, path, &some, &body).await;
        assert_problem(r, 401, "invalid_signature").await;
    }
    let other_secret = sign(WEBHOOK_SECRET_2, id, now(), &body);
    let tampered = body.replace(ITEM, "svc_haircut_men");
    let for_another_id = sign(WEBHOOK_SECRET, "evt_other", now(), &body);
    for (signature, body) in [
        (other_secret.as_str(), body.as_str()),
        ("v1,AAAA", body.as_str()),
        ("garbage", body.as_str()),
        (&good[3..], body.as_str()),
        (&format!("v2,{}", &good[3..]), body.as_str()),
        (good.as_str(), tampered.as_str()),
        (for_another_id.as_str(), body.as_str()),
    ] {
        let r = deliver(&app, path, id, &ts, signature, body).await;
        let problem = assert_problem(r, 401, "invalid_signature").await;
        assert!(!problem.to_string().contains(&good[3..]), "never echoed");
    }
    // Nothing changed and nothing was recorded: the store still serves its copy, and the
    // same id, properly signed, is a first delivery.
    assert_eq!(item_name(&app, STORE).await, (original, "HIT".into()));
    let r = deliver(&app, path, id, &ts, &good, &body).await;
    assert_status(r, "processed").await;
    assert_eq!(item_name(&app, STORE).await.0, "Haircut v2");
}

#[tokio::test]
async fn timestamps_outside_the_tolerance_are_refused_in_both_directions() {
    let app = spawn_app().await;
    let path = "/webhooks/services/updated";
    let id = "evt_time";
    let body = event_body("services", "updated", id, BUSINESS, ITEM);
    for ts in [now() - 400, now() + 400] {
        let signature = sign(WEBHOOK_SECRET, id, ts, &body);
        let r = deliver(&app, path, id, &ts.to_string(), &signature, &body).await;
        assert_problem(r, 401, "timestamp_out_of_tolerance").await;
    }
    for ts in ["abc", "12.5", "-5", ""] {
        let signature = sign(WEBHOOK_SECRET, id, now(), &body);
        let r = deliver(&app, path, id, ts, &signature, &body).await;
        assert_problem(r, 401, "invalid_signature").await;
    }
    // The service's own clock decides: ten minutes later, a delivery stamped now is too old.
    app.clock.advance(Duration::from_secs(600));
    let r = app.webhook("services", "updated", id, BUSINESS, ITEM).await;
    assert_problem(r, 401, "timestamp_out_of_tolerance").await;
    // Within the tolerance (here, by the shifted clock) it is accepted.
    let ts = now() + 600 - 200;
    let signature = sign(WEBHOOK_SECRET, id, ts, &body);
    let r = deliver(&app, path, id, &ts.to_string(), &signature, &body).await;
    assert_status(r, "processed").await;
}

#[tokio::test]
async fn the_tolerance_is_configurable() {
    let app = spawn_with(Options::default().set("MANGO_WEBHOOK_TOLERANCE_SECS", 5)).await;
    let body = event_body("services", "updated", "evt_tol", BUSINESS, ITEM);
    let ts = now() - 30;
    let signature = sign(WEBHOOK_SECRET, "evt_tol", ts, &body);
    let path = "/webhooks/services/updated";
    let r = deliver(&app, path, "evt_tol", &ts.to_string(), &signature, &body).await;
    assert_problem(r, 401, "timestamp_out_of_tolerance").await;
}

#[tokio::test]
async fn during_key_rotation_either_secret_verifies() {
    let secrets = format!("{WEBHOOK_SECRET_2},{WEBHOOK_SECRET}");
    let app = spawn_with(Options::default().set("MANGO_WEBHOOK_SECRETS", secrets)).await;
    let path = "/webhooks/services/updated";
    for (id, secret) in [
        ("evt_new_key", WEBHOOK_SECRET_2),
        ("evt_old_key", WEBHOOK_SECRET),
    ] {
        let body = event_body("services", "updated", id, BUSINESS, ITEM);
        let r = app.signed_webhook(path, id, &body, secret).await;
        assert_status(r, "processed").await;
    }
    // Biz signing with both keys at once, one of them unknown to us: one match is enough.
    let unknown = "whsec_dGhpcy1pcy1hLWtleS13ZS1kby1ub3Qta25vdyEh";
    let id = "evt_two_sigs";
    let body = event_body("services", "updated", id, BUSINESS, ITEM);
    let ts = now();
    let both = format!(
        "{} {}",
        sign(unknown, id, ts, &body),
        sign(WEBHOOK_SECRET, id, ts, &body)
    );
    let r = deliver(&app, path, id, &ts.to_string(), &both, &body).await;
    assert_status(r, "processed").await;
    let reversed = format!(
        "{} {}",
        sign(WEBHOOK_SECRET_2, "evt_two_bad", ts, &body),
        sign(unknown, "evt_two_bad", ts, &body)
    );
    let body = event_body("services", "updated", "evt_two_bad", BUSINESS, ITEM);
    let wrong_body = body.replace(BUSINESS, "biz_tampered");
    let r = deliver(
        &app,
        path,
        "evt_two_bad",
        &ts.to_string(),
        &reversed,
        &wrong_body,
    )
    .await;
    assert_problem(r, 401, "invalid_signature").await;

    // A service that knows only the old secret refuses the new one.
    let old_only = spawn_app().await;
    let body = event_body("services", "updated", "evt_k", BUSINESS, ITEM);
    let r = old_only
        .signed_webhook(path, "evt_k", &body, WEBHOOK_SECRET_2)
        .await;
    assert_problem(r, 401, "invalid_signature").await;
}

#[tokio::test]
async fn bad_bodies_are_refused_only_after_the_signature_check() {
    let app = spawn_app().await;
    let original = warm(&app, STORE).await;
    rename(&app, BUSINESS, "Haircut v2");
    let path = "/webhooks/services/updated";
    let id = "evt_body";
    let good: Value =
        serde_json::from_str(&event_body("services", "updated", id, BUSINESS, ITEM)).unwrap();
    let with = |field: &str, value: Value| {
        let mut b = good.clone();
        b[field] = value;
        b.to_string()
    };
    let without = |field: &str| {
        let mut b = good.clone();
        b.as_object_mut().unwrap().remove(field);
        b.to_string()
    };
    let bad_bodies = [
        "not json".to_string(),
        "[]".to_string(),
        without("business_id"),
        without("data"),
        without("type"),
        without("occurred_at"),
        with("type", json!("services.deleted")),
        with("type", json!("staff.updated")),
        with("id", json!("evt_someone_else")),
        with("data", json!({})),
        with("data", json!({"id": 42})),
        with("data", json!({"id": "svc with spaces"})),
        with("data", json!({"id": "x".repeat(200)})),
        with("business_id", json!("")),
        with("occurred_at", json!("last tuesday")),
    ];
    for body in &bad_bodies {
        // Unsigned, the body is not even looked at.
        let r = deliver(&app, path, id, &now().to_string(), "v1,AAAA", body).await;
        assert_problem(r, 401, "invalid_signature").await;
        let r = app.signed_webhook(path, id, body, WEBHOOK_SECRET).await;
        let problem = assert_problem(r, 400, "invalid_request").await;
        assert!(!problem["detail"].as_str().unwrap().is_empty());
    }
    // A signed JSON body declared as something else.
    let body = good.to_string();
    let ts = now();
    let signature = sign(WEBHOOK_SECRET, id, ts, &body);
    let headers = [
        ("content-type", "text/plain"),
        ("webhook-id", id),
        ("webhook-timestamp", &ts.to_string()),
        ("webhook-signature", &signature),
    ];
    assert_problem(
        send(&app, path, &headers, &body).await,
        400,
        "invalid_request",
    )
    .await;
    // None of that was recorded or invalidated anything.
    assert_eq!(item_name(&app, STORE).await, (original, "HIT".into()));
    let r = app.signed_webhook(path, id, &body, WEBHOOK_SECRET).await;
    assert_status(r, "processed").await;
}

#[tokio::test]
async fn unknown_events_are_400_and_undeclared_resources_are_ignored_and_recorded() {
    let app = spawn_app().await;
    // An unknown event, checked only once the signature holds.
    for (resource, event) in [
        ("services", "archived"),
        ("bookings", "deleted"),
        ("clients", "archived"),
    ] {
        let path = format!("/webhooks/{resource}/{event}");
        let body = event_body(resource, event, "evt_400", BUSINESS, ITEM);
        let r = app
            .signed_webhook(&path, "evt_400", &body, WEBHOOK_SECRET)
            .await;
        assert_problem(r, 400, "invalid_request").await;
        let r = app
            .signed_webhook(&path, "evt_400", &body, WEBHOOK_SECRET_2)
            .await;
        assert_problem(r, 401, "invalid_signature").await;
    }
    // A resource this store does not declare: 200 ignored, so Biz stops retrying; recorded,
    // so a repeat is a duplicate and the store's deliveries show it.
    for (resource, id) in [("clients", "evt_clients"), ("Services", "evt_caps")] {
        let before = app.biz.calls(Route::Item) + app.biz.calls(Route::List);
        let r = app.webhook(resource, "updated", id, BUSINESS, ITEM).await;
        assert_status(r, "ignored").await;
        let r = app.webhook(resource, "updated", id, BUSINESS, ITEM).await;
        assert_status(r, "duplicate").await;
        assert_eq!(
            app.biz.calls(Route::Item) + app.biz.calls(Route::List),
            before
        );
        // Its body is validated all the same.
        let path = format!("/webhooks/{resource}/updated");
        let body = event_body(resource, "deleted", "evt_mismatch", BUSINESS, ITEM);
        let r = app
            .signed_webhook(&path, "evt_mismatch", &body, WEBHOOK_SECRET)
            .await;
        assert_problem(r, 400, "invalid_request").await;
    }
    let r = app
        .admin(
            reqwest::Method::GET,
            &format!("/admin/v1/stores/{STORE}/webhooks"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    let listed: Value = r.json().await.unwrap();
    let ignored: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "ignored")
        .map(|d| d["type"].as_str().unwrap())
        .collect();
    assert!(ignored.contains(&"clients.updated"), "{listed}");
    assert!(ignored.contains(&"Services.updated"), "{listed}");
    // The storefront does not serve what is not declared.
    assert_problem(app.get_as(STORE, "/api/v1/clients").await, 404, "not_found").await;
    let r = app
        .client
        .get(app.url("/webhooks/services/updated"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = spawn_app().await;
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(300 * 1024));
    let r = app
        .signed_webhook(
            "/webhooks/services/updated",
            "evt_big",
            &body,
            WEBHOOK_SECRET,
        )
        .await;
    assert_problem(r, 413, "payload_too_large").await;
}

#[tokio::test]
async fn an_unknown_business_is_ignored_and_remembered() {
    let app = spawn_app().await;
    let original = warm(&app, STORE).await;
    rename(&app, BUSINESS, "Haircut v2");
    let r = app
        .webhook("services", "updated", "evt_nobody", "biz_nobody", ITEM)
        .await;
    assert_status(r, "ignored").await;
    let r = app
        .webhook("services", "updated", "evt_nobody", "biz_nobody", ITEM)
        .await;
    assert_status(r, "duplicate").await;
    assert_eq!(item_name(&app, STORE).await, (original, "HIT".into()));
}

#[tokio::test]
async fn a_webhook_for_one_business_never_touches_another_store() {
    let app = spawn_app().await;
    let (_, catalog) = BizCatalog::load_dir(&fixtures_dir()).unwrap();
    app.biz.add_business("biz_other", catalog);
    app.create_store("other", "biz_other").await;
    let original = warm(&app, STORE).await;
    warm(&app, "other").await;
    rename(&app, BUSINESS, "Demo v2");
    rename(&app, "biz_other", "Other v2");
    let other_calls = app.biz.calls(Route::Item) + app.biz.calls(Route::List);

    let r = app
        .webhook("services", "updated", "evt_demo_only", BUSINESS, ITEM)
        .await;
    assert_status(r, "processed").await;
    // Reading "other" first: had it been invalidated, these reads would ask Biz.
    assert_eq!(
        item_name(&app, "other").await,
        (original.clone(), "HIT".into())
    );
    assert_eq!(
        list_name(&app, "other").await,
        (original.clone(), "HIT".into())
    );
    assert_eq!(
        app.biz.calls(Route::Item) + app.biz.calls(Route::List),
        other_calls
    );
    assert_eq!(
        item_name(&app, STORE).await,
        ("Demo v2".into(), "MISS".into())
    );

    let r = app
        .webhook("services", "updated", "evt_other_only", "biz_other", ITEM)
        .await;
    assert_status(r, "processed").await;
    assert_eq!(
        item_name(&app, "other").await,
        ("Other v2".into(), "MISS".into())
    );
    assert_eq!(
        item_name(&app, STORE).await,
        ("Demo v2".into(), "HIT".into())
    );
}

#[tokio::test]
async fn every_store_of_the_business_is_invalidated() {
    let app = spawn_app().await;
    app.create_store("salon-two", BUSINESS).await;
    warm(&app, STORE).await;
    warm(&app, "salon-two").await;
    rename(&app, BUSINESS, "Haircut v2");
    let r = app
        .webhook("services", "updated", "evt_both", BUSINESS, ITEM)
        .await;
    assert_status(r, "processed").await;
    for slug in [STORE, "salon-two"] {
        assert_eq!(
            item_name(&app, slug).await,
            ("Haircut v2".into(), "MISS".into())
        );
        assert_eq!(
            list_name(&app, slug).await,
            ("Haircut v2".into(), "MISS".into())
        );
    }
}

#[tokio::test]
async fn a_fill_in_flight_when_the_webhook_lands_is_not_kept() {
    let app = spawn_app().await;
    let original = fixture("services", ITEM)["name"]
        .as_str()
        .unwrap()
        .to_string();
    // The item is on the first page; the answer to page 2 is held until the end.
    let page_two = app.biz.hold_nth(Route::List, 2);
    let slow = {
        let request = app
            .client
            .get(app.url("/api/v1/services"))
            .header("X-Store-Id", STORE);
        tokio::spawn(async move { request.send().await.unwrap().json::<Value>().await.unwrap() })
    };
    // Once page 2 is asked for, page 1 (with the old item) is in the slow fill's hands.
    let page_one_read = eventually(Duration::from_secs(5), || async {
        app.biz.calls_for("services", None) >= 2
    })
    .await;
    assert!(page_one_read, "the slow fill reached page 2");
    rename(&app, BUSINESS, "Haircut v2");
    let r = app
        .webhook("services", "updated", "evt_race", BUSINESS, ITEM)
        .await;
    assert_status(r, "processed").await;
    assert_eq!(
        list_name(&app, STORE).await,
        ("Haircut v2".into(), "MISS".into())
    );
    assert!(!slow.is_finished(), "the race really happened");
    drop(page_two);

    // The slow fill finishes with pre-event data; it must not be stored anywhere.
    let slow_body = slow.await.unwrap();
    assert_eq!(name_in_list(&slow_body), original);
    assert_eq!(list_name(&app, STORE).await.0, "Haircut v2");
    assert_eq!(item_name(&app, STORE).await.0, "Haircut v2");
}

#[tokio::test]
async fn with_the_database_down_the_answer_is_503_and_memory_is_still_invalidated() {
    if skip_on_mssql("holds SQLite's write lock from another connection") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let url = format!("sqlite://{}?busy_timeout_ms=100", path.display());
    let app = spawn_with(Options::default().set("MANGO_DATABASE_URL", url)).await;
    let original = warm(&app, STORE).await;
    rename(&app, BUSINESS, "Haircut v2");

    // Another connection holds the write lock: every write of the service times out.
    let lock = rusqlite::Connection::open(&path).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let r = app
        .webhook("services", "updated", "evt_down", BUSINESS, ITEM)
        .await;
    let (status, headers, body) = parts(r).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "database_unavailable");
    assert!(!header(&headers, "retry-after").is_empty());
    // Still locked: neither memory nor the SQL copy (readable, but not invalidated) may
    // answer the old item now.
    let (name, cache) = item_name(&app, STORE).await;
    assert_eq!(
        (name.as_str(), cache.as_str()),
        ("Haircut v2", "MISS"),
        "was {original}"
    );
    assert_eq!(
        list_name(&app, STORE).await,
        ("Haircut v2".into(), "MISS".into())
    );

    lock.execute_batch("ROLLBACK").unwrap();
    assert_eq!(item_name(&app, STORE).await.0, "Haircut v2");
    // Biz retries; the delivery was never recorded, so it is processed now.
    let r = app
        .webhook("services", "updated", "evt_down", BUSINESS, ITEM)
        .await;
    assert_status(r, "processed").await;
}

#[tokio::test]
async fn with_the_database_down_after_a_restart_the_sql_copy_is_not_served() {
    if skip_on_mssql("holds SQLite's write lock from another connection") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let url = format!("sqlite://{}?busy_timeout_ms=100", path.display());
    let mut app = spawn_with(Options::default().set("MANGO_DATABASE_URL", url)).await;
    warm(&app, STORE).await;
    rename(&app, BUSINESS, "Haircut v2");
    // Nothing in memory, and this process has not met the store yet.
    app.restart().await;
    let lock = rusqlite::Connection::open(&path).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let r = app
        .webhook("services", "updated", "evt_down_cold", BUSINESS, ITEM)
        .await;
    assert_problem(r, 503, "database_unavailable").await;
    assert_eq!(item_name(&app, STORE).await.0, "Haircut v2");
    lock.execute_batch("ROLLBACK").unwrap();
}

#[tokio::test]
async fn a_delivery_recorded_but_never_finished_is_redone_by_the_retry() {
    if skip_on_mssql("writes an unfinished inbox row with SQLite's own SQL") {
        return;
    }
    let app = spawn_app().await;
    let original = warm(&app, STORE).await;
    rename(&app, BUSINESS, "Haircut v2");
    // As if the process had died between recording the delivery and invalidating.
    let conn = rusqlite::Connection::open(&app.db_path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute(
        "INSERT INTO store_webhooks_inbox
            (webhook_id, event_type, business_id, item_id, occurred_at, status, received_at)
         VALUES ('evt_crash', 'services.updated', ?1, ?2, 0, 'processing', ?3)",
        rusqlite::params![BUSINESS, ITEM, now() * 1000],
    )
    .unwrap();
    assert_eq!(item_name(&app, STORE).await, (original, "HIT".into()));

    let r = app
        .webhook("services", "updated", "evt_crash", BUSINESS, ITEM)
        .await;
    assert_status(r, "processed").await;
    assert_eq!(
        item_name(&app, STORE).await,
        ("Haircut v2".into(), "MISS".into())
    );
    let r = app
        .webhook("services", "updated", "evt_crash", BUSINESS, ITEM)
        .await;
    assert_status(r, "duplicate").await;
    let (status, attempts): (String, i64) = conn
        .query_row(
            "SELECT status, attempts FROM store_webhooks_inbox WHERE webhook_id = 'evt_crash'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((status.as_str(), attempts), ("processed", 2));
}

#[tokio::test]
async fn concurrent_deliveries_all_answer_after_their_invalidation() {
    let app = spawn_app().await;
    warm(&app, STORE).await;
    rename(&app, BUSINESS, "Haircut v2");
    let same_id = (0..8).map(|_| app.webhook("services", "updated", "evt_same", BUSINESS, ITEM));
    let distinct: Vec<String> = (0..8).map(|i| format!("evt_many_{i}")).collect();
    let many = distinct
        .iter()
        .map(|id| app.webhook("services", "updated", id, BUSINESS, ITEM));
    let (same, many) = tokio::join!(
        futures::future::join_all(same_id),
        futures::future::join_all(many)
    );
    let mut statuses = Vec::new();
    for r in same {
        let (status, _, body) = parts(r).await;
        assert_eq!(status, 200);
        statuses.push(body["data"]["status"].as_str().unwrap().to_string());
    }
    assert!(statuses.iter().any(|s| s == "processed"), "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| s == "processed" || s == "duplicate")
    );
    for r in many {
        assert_status(r, "processed").await;
    }
    assert_eq!(item_name(&app, STORE).await.0, "Haircut v2");
    let r = app
        .webhook("services", "updated", "evt_same", BUSINESS, ITEM)
        .await;
    assert_status(r, "duplicate").await;
}

/// Group commit under real concurrency (SQLite shares one transaction among the deliveries
/// in flight): 200 deliveries at once, each for its own cached item, a quarter of them sent
/// twice at the same moment. Every answer is a 2xx after which a read shows Biz's new item;
/// every id is recorded once and claimed exactly as often as it was answered `processed`;
/// and each id sent again afterwards is a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_deliveries_invalidate_before_answering_and_dedupe() {
    const N: usize = 200;
    // The 200 reads that follow the deliveries are 200 concurrent Biz calls: on a loaded
    // machine some would wait past the default 100 ms for one of the 64 places and be shed
    // (503), which is the overload rule, not what this test is about.
    let options = Options::default().set("MANGO_BIZ_QUEUE_TIMEOUT_MS", 10_000);
    let app = std::sync::Arc::new(spawn_with(options).await);
    let template = fixture("services", ITEM);
    let item = |i: usize| format!("svc_group_{i}");
    let upsert = |i: usize, version: &str| {
        let mut value = template.clone();
        value["id"] = json!(item(i));
        value["name"] = json!(format!("Group {i} {version}"));
        app.biz.upsert_item(BUSINESS, "services", value);
    };
    let read = |app: std::sync::Arc<TestApp>, i: usize| async move {
        let path = format!("/api/v1/services/svc_group_{i}");
        let (status, headers, body) = parts(app.get(&path).await).await;
        assert_eq!(status, 200, "{body}");
        let name = body["data"]["name"].as_str().unwrap().to_string();
        (name, header(&headers, "x-cache").to_string())
    };
    for i in 0..N {
        upsert(i, "v1");
        read(app.clone(), i).await;
        assert_eq!(
            read(app.clone(), i).await,
            (format!("Group {i} v1"), "HIT".into())
        );
    }
    for i in 0..N {
        upsert(i, "v2");
    }

    let deliveries = (0..N).map(|i| {
        let app = app.clone();
        async move {
            let id = format!("evt_group_{i}");
            let send = |app: std::sync::Arc<TestApp>| {
                let id = id.clone();
                async move {
                    let r = app
                        .webhook("services", "updated", &id, BUSINESS, &item(i))
                        .await;
                    let (status, _, body) = parts(r).await;
                    assert_eq!(status, 200, "{id}: {body}");
                    let answer = body["data"]["status"].as_str().unwrap().to_string();
                    // Whatever the answer, the old item is gone by now.
                    let (name, cache) = read(app, i).await;
                    assert_eq!(name, format!("Group {i} v2"), "{id} answered {answer}");
                    (answer, cache)
                }
            };
            let answers = if i % 4 == 0 {
                let (a, b) = tokio::join!(send(app.clone()), send(app.clone()));
                vec![a, b]
            } else {
                let only = send(app.clone()).await;
                // Nothing else reads this item: the read after the 2xx was not served from
                // the memory or SQL copy of v1.
                assert_eq!(only.1, "MISS", "evt_group_{i}");
                vec![only]
            };
            (i, answers)
        }
    });
    let tasks: Vec<_> = deliveries.map(tokio::spawn).collect();
    let mut processed = vec![0i64; N];
    for task in tasks {
        let (i, answers) = task.await.unwrap();
        for (answer, _) in answers {
            match answer.as_str() {
                // A twin that found the row still `processing` redoes the work.
                "processed" => processed[i] += 1,
                "duplicate" => {}
                other => panic!("evt_group_{i} answered {other}"),
            }
        }
        assert!(processed[i] >= 1, "evt_group_{i} was processed");
    }

    let rows = app.sql_rows(
        "SELECT webhook_id, status, attempts FROM store_webhooks_inbox
         WHERE webhook_id LIKE 'evt_group_%'",
        &[],
    );
    assert_eq!(rows.len(), N, "one inbox row per id");
    for row in rows {
        let [
            SqlValue::Text(id),
            SqlValue::Text(status),
            SqlValue::Int(attempts),
        ] = &row[..]
        else {
            panic!("{row:?}");
        };
        let i: usize = id.trim_start_matches("evt_group_").parse().unwrap();
        assert_eq!(status, "processed", "{id}");
        assert_eq!(
            *attempts, processed[i],
            "{id}: one claim per `processed` answer"
        );
    }
    let again = (0..N).map(|i| {
        let app = app.clone();
        async move {
            let id = format!("evt_group_{i}");
            let r = app
                .webhook("services", "updated", &id, BUSINESS, &item(i))
                .await;
            assert_status(r, "duplicate").await;
        }
    });
    futures::future::join_all(again).await;
}

#[tokio::test]
async fn the_inbox_lists_recent_deliveries_and_forgets_them_after_seven_days() {
    let app = spawn_app().await;
    for id in ["evt_a", "evt_b", "evt_c"] {
        let r = app.webhook("services", "updated", id, BUSINESS, ITEM).await;
        assert_status(r, "processed").await;
        app.clock.advance(Duration::from_millis(5));
    }
    let r = app
        .webhook("staff", "deleted", "evt_elsewhere", "biz_nobody", "stf_x")
        .await;
    assert_status(r, "ignored").await;
    let store = store_id(&app, STORE).await;
    let recent = app.state.db.recent_deliveries(store, 10).await.unwrap();
    let ids: Vec<&str> = recent.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        ["evt_c", "evt_b", "evt_a"],
        "newest first, this store's only"
    );
    assert!(recent.iter().all(|d| d.event_type == "services.updated"
        && d.status.as_str() == "processed"
        && d.received_at_ms > 0));
    assert_eq!(
        app.state
            .db
            .recent_deliveries(store, 2)
            .await
            .unwrap()
            .len(),
        2
    );

    app.clock.advance(Duration::from_secs(6 * 24 * 3600));
    let pruned = mango_store::webhooks::prune_inbox(app.state.clone())
        .await
        .unwrap();
    assert_eq!(pruned, 0, "kept for at least seven days");
    app.clock.advance(Duration::from_secs(2 * 24 * 3600));
    let pruned = mango_store::webhooks::prune_inbox(app.state.clone())
        .await
        .unwrap();
    assert_eq!(pruned, 4);
    assert!(
        app.state
            .db
            .recent_deliveries(store, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn deliveries_are_counted_by_outcome() {
    let app = spawn_app().await;
    let r = app
        .webhook("services", "updated", "evt_m1", BUSINESS, ITEM)
        .await;
    assert_status(r, "processed").await;
    let r = app
        .webhook("services", "updated", "evt_m1", BUSINESS, ITEM)
        .await;
    assert_status(r, "duplicate").await;
    let r = app
        .webhook("services", "updated", "evt_m2", "biz_nobody", ITEM)
        .await;
    assert_status(r, "ignored").await;
    let body = event_body("services", "updated", "evt_m3", BUSINESS, ITEM);
    let r = app
        .signed_webhook(
            "/webhooks/services/updated",
            "evt_m3",
            &body,
            WEBHOOK_SECRET_2,
        )
        .await;
    assert_problem(r, 401, "invalid_signature").await;
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        r#"mango_webhooks_total{outcome="processed",reason="first_delivery"}"#,
        r#"mango_webhooks_total{outcome="duplicate",reason="already_recorded"}"#,
        r#"mango_webhooks_total{outcome="ignored",reason="unknown_business"}"#,
        r#"mango_webhooks_total{outcome="rejected",reason="invalid_signature"}"#,
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    assert!(!metrics.contains("evt_m"), "no ids in labels");
}
