//! CONTRACT §13: availability — the shape and every error, caching with the catalog's rules,
//! and invalidation (bookings webhook, services webhook, confirm; on a second instance too).

mod common;

use std::time::Duration;

use common::*;
use futures::future::join_all;
use mango_store::fakebiz::{Failure, Route};
use reqwest::Method;
use serde_json::{Value, json};

const SERVICE: &str = "svc_haircut_women";
const STAFF: &str = "stf_aigerim";
/// A Monday, in the future.
const DAY: &str = "2027-06-07";

fn path(query: &str) -> String {
    format!("/api/v1/availability?{query}")
}

fn day_path() -> String {
    path(&format!("service_id={SERVICE}&date={DAY}&staff_id={STAFF}"))
}

async fn slots(app: &TestApp, path: &str) -> (String, Vec<Value>) {
    let (status, headers, body) = parts(app.get(path).await).await;
    assert_eq!(status, 200, "{body}");
    let slots = body["data"]["slots"].as_array().unwrap().clone();
    (header(&headers, "x-cache").to_string(), slots)
}

async fn book(app: &TestApp, start_at: &str) -> reqwest::Response {
    let draft = json!({"service_id": SERVICE, "staff_id": STAFF, "start_at": start_at,
                       "customer": {"name": "Ada", "phone": "+77010000000"}});
    let r = app
        .storefront(Method::POST, STORE, "/api/v1/booking/draft", Some(&draft))
        .await;
    assert_eq!(r.status(), 201);
    let draft: Value = r.json().await.unwrap();
    let id = draft["data"]["id"].as_str().unwrap();
    app.storefront(
        Method::POST,
        STORE,
        &format!("/api/v1/booking/draft/{id}/confirm"),
        None,
    )
    .await
}

#[tokio::test]
async fn free_times_have_the_contract_shape_and_are_cached() {
    let app = spawn_app().await;
    let (status, headers, body) = parts(app.get(&day_path()).await).await;
    assert_eq!((status, header(&headers, "x-cache")), (200, "MISS"));
    let data = &body["data"];
    assert_eq!(
        (
            &data["service_id"],
            &data["staff_id"],
            &data["date"],
            &data["days"]
        ),
        (&json!(SERVICE), &json!(STAFF), &json!(DAY), &json!(1))
    );
    let day = data["slots"].as_array().unwrap().clone();
    assert!(day.len() > 10);
    // In the business's own offset, from its opening time, in Biz's order.
    assert_eq!(day[0]["start_at"], "2027-06-07T09:00:00+05:00");
    assert_eq!(day[0]["end_at"], "2027-06-07T10:00:00+05:00");
    assert_eq!(day[0]["staff_id"], STAFF);
    let etag = header(&headers, "etag").to_string();
    let (_, headers, again) = parts(app.get(&day_path()).await).await;
    assert_eq!((header(&headers, "x-cache"), &again), ("HIT", &body));
    let r = app
        .get_with(
            &day_path(),
            &[("X-Store-Id", STORE), ("If-None-Match", &etag)],
        )
        .await;
    assert_eq!(r.status(), 304);
    assert_eq!(app.biz.calls(Route::Availability), 1);
    // days=1 and no days are one query; another query is another entry.
    let (x_cache, _) = slots(&app, &format!("{}&days=1", day_path())).await;
    assert_eq!(x_cache, "HIT", "the raw query differs, the key does not");
    assert_eq!(app.biz.calls(Route::Availability), 1);
    let (_, week) = slots(
        &app,
        &path(&format!("service_id={SERVICE}&date={DAY}&days=7")),
    )
    .await;
    assert!(week.len() > day.len());
}

#[tokio::test]
async fn every_error_has_its_code() {
    let app = spawn_app().await;
    for query in [
        format!("date={DAY}"),
        format!("service_id={SERVICE}"),
        format!("service_id={SERVICE}&date=2027-13-01"),
        format!("service_id={SERVICE}&date={DAY}&days=15"),
        format!("service_id={SERVICE}&date={DAY}&days=0"),
        format!("service_id={SERVICE}&date={DAY}&color=red"),
    ] {
        assert_problem(app.get(&path(&query)).await, 400, "invalid_request").await;
    }
    let services: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join("services.json")).unwrap(),
    )
    .unwrap();
    let inactive = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["is_active"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (query, code) in [
        (
            format!("service_id=svc_nope&date={DAY}"),
            "service_not_found",
        ),
        (
            format!("service_id={inactive}&date={DAY}"),
            "service_inactive",
        ),
        (
            format!("service_id={SERVICE}&date={DAY}&staff_id=stf_nope"),
            "staff_not_eligible",
        ),
        (
            format!("service_id=svc_manicure_classic&date={DAY}&staff_id={STAFF}"),
            "staff_not_eligible",
        ),
    ] {
        assert_problem(app.get(&path(&query)).await, 422, code).await;
    }
    assert_eq!(
        app.biz.calls(Route::Availability),
        0,
        "refused before asking Biz"
    );
    let r = app.get_with(&day_path(), &[("X-Store-Id", "nobody")]).await;
    assert_problem(r, 404, "store_not_found").await;
}

#[tokio::test]
async fn concurrent_cold_reads_make_one_biz_call() {
    let app = spawn_app().await;
    // Warm the catalog checks, so only availability is cold.
    slots(
        &app,
        &path(&format!(
            "service_id={SERVICE}&date=2027-06-08&staff_id={STAFF}"
        )),
    )
    .await;
    app.biz
        .set_delay(Route::Availability, Duration::from_millis(300));
    app.biz.reset_counts();
    let target = day_path();
    let reads = (0..200).map(|_| app.get(&target));
    let answers = join_all(reads).await;
    assert!(answers.iter().all(|r| r.status() == 200));
    assert_eq!(app.biz.calls(Route::Availability), 1);
}

#[tokio::test]
async fn biz_failing_serves_stale_then_503() {
    let app = spawn_app().await;
    let (_, fresh) = slots(&app, &day_path()).await;
    app.biz
        .set_failure(Route::Availability, Failure::ServerError);
    app.clock.advance(Duration::from_secs(31));
    let (x_cache, stale) = slots(&app, &day_path()).await;
    assert_eq!((x_cache.as_str(), &stale), ("STALE", &fresh));
    app.clock.advance(Duration::from_secs(300));
    let r = app.get(&day_path()).await;
    assert!(r.headers().get("retry-after").is_some());
    assert_problem(r, 503, "upstream_unavailable").await;
}

#[tokio::test]
async fn a_confirm_takes_its_slot_off_at_once_here_and_on_another_instance() {
    let app = spawn_app().await;
    let peer = app.spawn_peer().await;
    let (_, before) = slots(&app, &day_path()).await;
    let taken = before[2]["start_at"].as_str().unwrap().to_string();
    let r = peer.get(&day_path()).await;
    assert_eq!(r.status(), 200);
    let r = book(&app, &taken).await;
    assert_eq!(r.status(), 200);
    // Read-your-writes, without waiting for the TTL.
    let (x_cache, after) = slots(&app, &day_path()).await;
    assert_eq!(x_cache, "MISS");
    assert!(!after.iter().any(|s| s["start_at"] == taken.as_str()));
    // The overlapping half-hour slots of the same staff member go too.
    assert!(after.len() < before.len() - 1);
    // The other instance within a second.
    let fresh_on_peer = eventually(Duration::from_secs(1), || async {
        let body: Value = peer.get(&day_path()).await.json().await.unwrap();
        !body["data"]["slots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["start_at"] == taken.as_str())
    })
    .await;
    assert!(fresh_on_peer);
}

#[tokio::test]
async fn bookings_and_services_webhooks_invalidate_availability() {
    let app = spawn_app().await;
    let (_, before) = slots(&app, &day_path()).await;
    // Biz books a slot elsewhere (its own back office), then tells us.
    let taken = before[0]["start_at"].as_str().unwrap().to_string();
    let end = before[0]["end_at"].as_str().unwrap().to_string();
    let booking = json!({"business_id": app.business, "service_id": SERVICE, "staff_id": STAFF,
        "start_at": taken, "end_at": end, "client": {"name": "Walk-in"}, "external_ref": null});
    let r = app
        .client
        .post(format!("{}/biz-api/v1/bookings", app.biz_url))
        .bearer_auth(BIZ_KEY)
        .json(&booking)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (x_cache, _) = slots(&app, &day_path()).await;
    assert_eq!(x_cache, "HIT", "nothing told the store yet");
    let r = app
        .webhook("bookings", "created", "evt_bkg_1", &app.business, "bkg_1")
        .await;
    assert_eq!(r.status(), 200);
    let (x_cache, after) = slots(&app, &day_path()).await;
    assert_eq!(x_cache, "MISS");
    assert!(!after.iter().any(|s| s["start_at"] == taken.as_str()));
    let r = app
        .webhook("bookings", "created", "evt_bkg_1", &app.business, "bkg_1")
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["status"], "duplicate");

    // A longer service: a services webhook changes every slot's end.
    let (_, _, item) = parts(app.get(&format!("/api/v1/services/{SERVICE}")).await).await;
    let mut longer = item["data"].clone();
    longer["duration_minutes"] = json!(90);
    app.biz
        .upsert_item(&app.business, "services", longer.clone());
    let r = app
        .webhook("services", "updated", "evt_svc_90", &app.business, SERVICE)
        .await;
    assert_eq!(r.status(), 200);
    let (x_cache, longer_slots) = slots(&app, &day_path()).await;
    assert_eq!(x_cache, "MISS");
    // 09:00 is booked above; the first free slot now lasts 90 minutes.
    assert_eq!(longer_slots[0]["start_at"], "2027-06-07T10:00:00+05:00");
    assert_eq!(longer_slots[0]["end_at"], "2027-06-07T11:30:00+05:00");

    // A HIT skips the service check (it passed when the answer was filled): a service made
    // inactive must still stop its availability at once, through the webhook.
    assert_eq!(slots(&app, &day_path()).await.0, "HIT");
    let mut inactive = longer;
    inactive["is_active"] = json!(false);
    app.biz.upsert_item(&app.business, "services", inactive);
    let r = app
        .webhook("services", "updated", "evt_svc_off", &app.business, SERVICE)
        .await;
    assert_eq!(r.status(), 200);
    assert_problem(app.get(&day_path()).await, 422, "service_inactive").await;
}

/// An EU business across the spring change (last Sunday of March 2027 is the 28th): the
/// same opening time is a different offset on either side.
#[tokio::test]
async fn slots_cross_an_eu_dst_change_correctly() {
    let app = spawn_with(Options::default().fixture_set("wellness")).await;
    let (_, _, services) = parts(app.get("/api/v1/services?is_active=true&limit=1").await).await;
    let service = services["data"][0]["id"].as_str().unwrap().to_string();
    let (status, _, body) = parts(
        app.get(&path(&format!(
            "service_id={service}&date=2027-03-26&days=4"
        )))
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let slots = body["data"]["slots"].as_array().unwrap();
    let first_on = |day: &str| {
        slots
            .iter()
            .map(|s| s["start_at"].as_str().unwrap())
            .find(|s| s.starts_with(day))
            .unwrap_or_else(|| panic!("a slot on {day}"))
            .to_string()
    };
    assert_eq!(first_on("2027-03-26"), "2027-03-26T08:00:00+01:00");
    assert_eq!(first_on("2027-03-27"), "2027-03-27T09:00:00+01:00");
    assert!(
        !slots
            .iter()
            .any(|s| s["start_at"].as_str().unwrap().starts_with("2027-03-28")),
        "closed on Sunday"
    );
    assert_eq!(first_on("2027-03-29"), "2027-03-29T08:00:00+02:00");
    // Every slot's end is its start plus the duration, as instants.
    for s in slots {
        let start = time::OffsetDateTime::parse(
            s["start_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let end = time::OffsetDateTime::parse(
            s["end_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!(end > start);
    }
}
