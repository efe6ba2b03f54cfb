//! CONTRACT §8: booking drafts — validation through the catalog, exact instants, idempotent
//! creates, exactly-once confirms (concurrent, repeated, retried, across instances, after a
//! crash), expiry and erasure.

mod common;

use std::time::Duration;

use common::*;
use futures::future::join_all;
use mango_store::fakebiz::{Failure, Route};
use reqwest::Method;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, Weekday};

const DRAFTS: &str = "/api/v1/booking/draft";
const TTL: Duration = Duration::from_secs(900);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn body(service: &str, staff: Option<&str>, start_at: &str) -> Value {
    json!({
        "service_id": service, "staff_id": staff, "start_at": start_at,
        "customer": {"name": "Aru Sadykova", "phone": "+77010000000", "email": "aru@example.com"},
        "notes": "first visit",
    })
}

fn haircut(start_at: &str) -> Value {
    body("svc_haircut_women", Some("stf_aigerim"), start_at)
}

fn draft_path(id: &str) -> String {
    format!("{DRAFTS}/{id}")
}

fn confirm_path(id: &str) -> String {
    format!("{DRAFTS}/{id}/confirm")
}

/// Creates a draft for store `salon`; answers its `data`.
async fn create(app: &TestApp, body: &Value) -> Value {
    let (status, _, json) =
        parts(app.post_json(DRAFTS, body, &[("X-Store-Id", STORE)]).await).await;
    assert_eq!(status, 201, "{json}");
    json["data"].clone()
}

async fn send(app: &TestApp, method: Method, path: &str) -> reqwest::Response {
    app.storefront(method, STORE, path, None).await
}

async fn confirm(app: &TestApp, id: &str) -> reqwest::Response {
    send(app, Method::POST, &confirm_path(id)).await
}

async fn read(app: &TestApp, id: &str) -> Value {
    let (status, _, json) = parts(send(app, Method::GET, &draft_path(id)).await).await;
    assert_eq!(status, 200, "{json}");
    json["data"].clone()
}

fn drafts_stored(app: &TestApp) -> i64 {
    app.sql_i64("SELECT COUNT(*) FROM store_booking_drafts", &[])
}

fn instant(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &Rfc3339).unwrap()
}

#[tokio::test]
async fn a_draft_is_created_and_read_in_the_contract_shape() {
    let app = spawn_app().await;
    let request = haircut("2030-05-01T15:00:00+05:00");
    let (status, headers, json) = parts(
        app.post_json(DRAFTS, &request, &[("X-Store-Id", STORE)])
            .await,
    )
    .await;
    assert_eq!(status, 201, "{json}");
    let draft = &json["data"];
    let id = draft["id"].as_str().unwrap();
    assert!(id.len() == 36 && id.starts_with("drf_"), "{id}");
    assert!(
        id[4..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(header(&headers, "location"), draft_path(id));
    let mut keys: Vec<&str> = draft
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "booking",
            "customer",
            "end_at",
            "expires_at",
            "id",
            "notes",
            "price",
            "service_id",
            "staff_id",
            "start_at",
            "status"
        ]
    );
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["service_id"], "svc_haircut_women");
    assert_eq!(draft["staff_id"], "stf_aigerim");
    assert_eq!(draft["start_at"], "2030-05-01T10:00:00Z", "echoed in UTC");
    assert_eq!(
        draft["end_at"], "2030-05-01T11:00:00Z",
        "start + 60 minutes"
    );
    assert_eq!(
        draft["price"],
        json!({"amount": "12000.00", "currency": "KZT"})
    );
    assert_eq!(draft["customer"], request["customer"]);
    assert_eq!(draft["notes"], "first visit");
    assert_eq!(draft["booking"], Value::Null);
    let expires_in = instant(draft["expires_at"].as_str().unwrap()) - OffsetDateTime::now_utc();
    assert!(
        (TTL.as_secs() as i64 - 60..=TTL.as_secs() as i64).contains(&expires_in.whole_seconds()),
        "expires in {expires_in}"
    );

    assert_eq!(&read(&app, id).await, draft);
    assert_eq!(app.count_events("booking_draft_created", Some(id)), 1);
    assert_eq!(
        app.biz.calls(Route::Bookings),
        0,
        "a draft is not a booking"
    );
}

#[tokio::test]
async fn every_validation_failure_has_its_422_code_and_stores_nothing() {
    let app = spawn_app().await;
    let start = "2030-05-01T10:00:00Z";
    let mut customer_without_contact = haircut(start);
    customer_without_contact["customer"] = json!({"name": "Aru", "phone": "", "email": null});
    let mut nameless = haircut(start);
    nameless["customer"] = json!({"name": "  ", "phone": "+77010000000"});
    let mut no_name = haircut(start);
    no_name["customer"] = json!({"email": "aru@example.com"});
    let cases = [
        (body("svc_nope", None, start), "service_not_found"),
        (body(&"x".repeat(500), None, start), "service_not_found"),
        (body("svc_makeup_evening", None, start), "service_inactive"),
        (
            body("svc_haircut_women", Some("stf_daniyar"), start),
            "staff_not_eligible",
        ),
        (
            body("svc_haircut_women", Some("stf_nobody"), start),
            "staff_not_eligible",
        ),
        (haircut("2020-01-01T10:00:00Z"), "start_in_past"),
        (haircut("2030-05-01T10:00:00"), "invalid_start_at"),
        (haircut("next tuesday"), "invalid_start_at"),
        (customer_without_contact, "invalid_customer"),
        (nameless, "invalid_customer"),
        (no_name, "invalid_customer"),
    ];
    for (request, code) in &cases {
        let response = app
            .post_json(DRAFTS, request, &[("X-Store-Id", STORE)])
            .await;
        let problem = assert_problem(response, 422, code).await;
        assert!(!problem["detail"].as_str().unwrap().is_empty());
    }
    assert_eq!(drafts_stored(&app), 0);
    assert_eq!(app.count_events("booking_draft_created", None), 0);
}

#[tokio::test]
async fn bad_input_is_400_and_unknown_fields_are_ignored() {
    let app = spawn_app().await;
    let raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url(DRAFTS))
            .header("X-Store-Id", STORE)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_problem(
        raw("{\"service_id\":", "application/json").await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert_problem(
        raw("{}", "text/plain").await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    let mut wrong_type = haircut("2030-05-01T10:00:00Z");
    wrong_type["start_at"] = json!(1_900_000_000);
    let mut missing = haircut("2030-05-01T10:00:00Z");
    missing.as_object_mut().unwrap().remove("service_id");
    for (request, field) in [(wrong_type, "start_at"), (missing, "service_id")] {
        let response = app
            .post_json(DRAFTS, &request, &[("X-Store-Id", STORE)])
            .await;
        let problem = assert_problem(response, 400, "invalid_request").await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(field), "{detail}");
    }
    let bad_key = app
        .post_json(
            DRAFTS,
            &haircut("2030-05-01T10:00:00Z"),
            &[("X-Store-Id", STORE), ("Idempotency-Key", &"k".repeat(300))],
        )
        .await;
    assert_problem(bad_key, 400, "invalid_request").await;
    assert_eq!(drafts_stored(&app), 0);

    let mut extra = haircut("2030-05-01T10:00:00Z");
    extra["utm_source"] = json!("newsletter");
    extra["customer"]["loyalty"] = json!({"tier": 3});
    create(&app, &extra).await;
}

#[tokio::test]
async fn the_catalog_is_checked_through_the_cache_and_its_outage_is_503() {
    let app = spawn_app().await;
    app.biz.set_failure(Route::Item, Failure::ServerError);
    app.biz.set_failure(Route::List, Failure::ServerError);
    let response = app
        .post_json(
            DRAFTS,
            &haircut("2030-05-01T10:00:00Z"),
            &[("X-Store-Id", STORE)],
        )
        .await;
    assert_problem(response, 503, "upstream_unavailable").await;
    assert_eq!(drafts_stored(&app), 0);

    app.biz.set_failure(Route::Item, Failure::None);
    app.biz.set_failure(Route::List, Failure::None);
    app.biz.reset_counts();
    for hour in 10..13 {
        create(&app, &haircut(&format!("2030-05-01T{hour}:00:00Z"))).await;
    }
    assert_eq!(app.biz.calls_for("services", Some("svc_haircut_women")), 1);
    assert_eq!(app.biz.calls_for("staff", Some("stf_aigerim")), 1);
}

/// The last Sunday of March of the first year whose one is still ahead: Europe moves its
/// clocks forward at 01:00Z that day (CET +01:00 → CEST +02:00).
fn next_spring_forward() -> Date {
    let today = OffsetDateTime::now_utc().date();
    (today.year() + 1..)
        .map(|year| {
            let mut day = Date::from_calendar_date(year, Month::March, 31).unwrap();
            while day.weekday() != Weekday::Sunday {
                day = day.previous_day().unwrap();
            }
            day
        })
        .find(|day| *day > today)
        .unwrap()
}

#[tokio::test]
async fn instants_are_exact_across_offsets_and_dst() {
    let app = spawn_app().await;
    let day = next_spring_forward();
    // One instant written two ways: just after the change, in UTC and in CEST.
    let utc = create(
        &app,
        &body("svc_brow_shaping", None, &format!("{day}T01:30:00+00:00")),
    )
    .await;
    let cest = create(
        &app,
        &body("svc_brow_shaping", None, &format!("{day}T03:30:00+02:00")),
    )
    .await;
    for draft in [&utc, &cest] {
        assert_eq!(draft["start_at"], format!("{day}T01:30:00Z"));
        assert_eq!(draft["end_at"], format!("{day}T02:00:00Z"));
    }
    // 01:30 CET is 00:30Z; two hours later it is 04:30 CEST on the wall, 02:30Z in fact.
    let across = create(
        &app,
        &body("svc_hair_balayage", None, &format!("{day}T01:30:00+01:00")),
    )
    .await;
    assert_eq!(across["start_at"], format!("{day}T00:30:00Z"));
    assert_eq!(across["end_at"], format!("{day}T02:30:00Z"));
    let (start, end) = (
        instant(across["start_at"].as_str().unwrap()),
        instant(across["end_at"].as_str().unwrap()),
    );
    assert_eq!(end - start, time::Duration::minutes(120));

    // Biz gets the same exact instants.
    let (status, _, json) = parts(confirm(&app, across["id"].as_str().unwrap()).await).await;
    assert_eq!(status, 200, "{json}");
    let sent = &app.biz.bookings()[0].body;
    assert_eq!(sent["start_at"], across["start_at"]);
    assert_eq!(sent["end_at"], across["end_at"]);
}

#[tokio::test]
async fn an_idempotency_key_answers_the_same_draft_for_a_day_per_store() {
    let app = spawn_app().await;
    let request = haircut("2030-05-01T10:00:00Z");
    let key = [("X-Store-Id", STORE), ("Idempotency-Key", "checkout-42")];
    let first = create_with(&app, &request, &key).await;
    // Same request, other key order and an unknown field: the same draft.
    let mut same = json!({"utm": "x", "customer": request["customer"], "notes": request["notes"]});
    same["start_at"] = request["start_at"].clone();
    same["staff_id"] = request["staff_id"].clone();
    same["service_id"] = request["service_id"].clone();
    let (status, headers, again) = parts(app.post_json(DRAFTS, &same, &key).await).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["data"]["id"], first["id"]);
    assert_eq!(header(&headers, "idempotent-replayed"), "true");

    let mut other = request.clone();
    other["start_at"] = json!("2030-05-01T12:00:00Z");
    let reused = app.post_json(DRAFTS, &other, &key).await;
    assert_problem(reused, 422, "idempotency_key_reused").await;

    // Keys are per store.
    app.create_store("spa", BUSINESS).await;
    let spa = app
        .post_json(
            DRAFTS,
            &request,
            &[("X-Store-Id", "spa"), ("Idempotency-Key", "checkout-42")],
        )
        .await;
    let (status, _, spa) = parts(spa).await;
    assert_eq!(status, 201, "{spa}");
    assert_ne!(spa["data"]["id"], first["id"]);

    // After 24 hours the key is forgotten.
    app.clock.advance(DAY + Duration::from_secs(60));
    let later = create_with(&app, &other, &key).await;
    assert_ne!(later["id"], first["id"]);
    assert_eq!(drafts_stored(&app), 3);
    assert_eq!(app.count_events("booking_draft_created", None), 3);
}

async fn create_with(app: &TestApp, body: &Value, headers: &[(&str, &str)]) -> Value {
    let (status, _, json) = parts(app.post_json(DRAFTS, body, headers).await).await;
    assert_eq!(status, 201, "{json}");
    json["data"].clone()
}

#[tokio::test]
async fn concurrent_creates_with_one_key_make_one_draft() {
    let app = spawn_app().await;
    let request = haircut("2030-05-01T10:00:00Z");
    let answers = join_all((0..10).map(|_| {
        app.post_json(
            DRAFTS,
            &request,
            &[("X-Store-Id", STORE), ("Idempotency-Key", "double-click")],
        )
    }))
    .await;
    let mut ids = Vec::new();
    for response in answers {
        let (status, _, json) = parts(response).await;
        assert_eq!(status, 201, "{json}");
        ids.push(json["data"]["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(drafts_stored(&app), 1);
    assert_eq!(app.count_events("booking_draft_created", None), 1);
}

#[tokio::test]
async fn ten_concurrent_confirms_make_one_biz_booking_and_one_event() {
    let app = spawn_app().await;
    let draft = create(&app, &haircut("2030-05-01T10:00:00+05:00")).await;
    let id = draft["id"].as_str().unwrap();
    // Slow enough that all ten arrive while the first is still waiting on Biz.
    app.biz
        .set_delay(Route::Bookings, Duration::from_millis(300));
    let answers = join_all((0..10).map(|_| confirm(&app, id))).await;
    let mut bodies = Vec::new();
    for response in answers {
        let (status, _, json) = parts(response).await;
        assert_eq!(status, 200, "{json}");
        bodies.push(json["data"].clone());
    }
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "all answer the same"
    );
    let confirmed = &bodies[0];
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(app.biz.bookings().len(), 1, "one Biz call");
    assert_eq!(confirmed["booking"], app.biz.created_bookings()[0]);
    assert!(confirmed["booking"]["confirmation_code"].is_string());

    let sent = &app.biz.bookings()[0];
    assert_eq!(sent.idempotency_key.as_deref(), Some(id));
    assert_eq!(
        sent.body,
        json!({
            "business_id": BUSINESS, "service_id": "svc_haircut_women", "staff_id": "stf_aigerim",
            "start_at": "2030-05-01T05:00:00Z", "end_at": "2030-05-01T06:00:00Z",
            "client": {"name": "Aru Sadykova", "phone": "+77010000000", "email": "aru@example.com"},
            "notes": "first visit", "external_ref": id,
        })
    );
    assert_eq!(app.count_events("booking_confirmed", Some(id)), 1);

    // Repeats answer the same 200 and change nothing.
    let (status, _, again) = parts(confirm(&app, id).await).await;
    assert_eq!((status, &again["data"]), (200, confirmed));
    assert_eq!(&read(&app, id).await, confirmed);
    assert_eq!(app.biz.bookings().len(), 1);
    assert_eq!(app.count_events("booking_confirmed", Some(id)), 1);
    assert_eq!(app.count_events("booking_failed", Some(id)), 0);
}

#[tokio::test]
async fn confirms_on_two_instances_sharing_the_database_make_one_biz_booking() {
    let app = spawn_app().await;
    let mut other = app.spawn_peer().await;
    let draft = create(&app, &haircut("2030-05-01T10:00:00Z")).await;
    let id = draft["id"].as_str().unwrap();
    app.biz
        .set_delay(Route::Bookings, Duration::from_millis(400));
    let on_either_instance = |i: usize| {
        let base = if i.is_multiple_of(2) {
            app.base.clone()
        } else {
            other.base.clone()
        };
        app.client
            .post(format!("{base}{}", confirm_path(id)))
            .header("X-Store-Id", STORE)
            .send()
    };
    let answers = join_all((0..10).map(on_either_instance)).await;
    let mut bookings = Vec::new();
    for response in answers {
        let (status, _, json) = parts(response.unwrap()).await;
        assert_eq!(status, 200, "{json}");
        assert_eq!(json["data"]["status"], "confirmed");
        bookings.push(json["data"]["booking"].clone());
    }
    assert!(bookings.iter().all(|b| b == &bookings[0]));
    assert_eq!(app.biz.bookings().len(), 1, "one Biz call across instances");
    assert_eq!(app.count_events("booking_confirmed", Some(id)), 1);
    other.stop().await;
}

#[tokio::test]
async fn a_retry_after_a_biz_error_reuses_the_key_and_books_once() {
    let app = spawn_app().await;
    let draft = create(&app, &haircut("2030-05-01T10:00:00Z")).await;
    let id = draft["id"].as_str().unwrap();
    app.biz.fail_next(Route::Bookings, 1, Failure::ServerError);
    assert_problem(confirm(&app, id).await, 502, "upstream_unavailable").await;
    assert_eq!(read(&app, id).await["status"], "draft", "still confirmable");

    let (status, _, json) = parts(confirm(&app, id).await).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["data"]["status"], "confirmed");
    let calls = app.biz.bookings();
    assert_eq!(calls.len(), 2);
    assert!(
        calls
            .iter()
            .all(|c| c.idempotency_key.as_deref() == Some(id))
    );
    assert_eq!(
        calls[0].body, calls[1].body,
        "the retry is the same request"
    );
    assert_eq!(app.biz.created_bookings().len(), 1);
    assert_eq!(app.count_events("booking_confirmed", Some(id)), 1);
    assert_eq!(app.count_events("booking_failed", Some(id)), 0);
}

#[tokio::test]
async fn a_retry_after_a_biz_timeout_gets_the_booking_biz_already_made() {
    let app = spawn_with(Options::default().set("MANGO_BIZ_TIMEOUT_MS", 300)).await;
    let draft = create(&app, &haircut("2030-05-01T10:00:00Z")).await;
    let id = draft["id"].as_str().unwrap();
    app.biz.fail_next(Route::Bookings, 1, Failure::Hang);
    assert_problem(confirm(&app, id).await, 502, "upstream_unavailable").await;
    assert_eq!(
        app.biz.created_bookings().len(),
        1,
        "Biz booked; its answer was lost"
    );
    assert_eq!(read(&app, id).await["status"], "draft");

    let (status, _, json) = parts(confirm(&app, id).await).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["data"]["booking"], app.biz.created_bookings()[0]);
    assert_eq!(app.biz.created_bookings().len(), 1, "no second appointment");
    let calls = app.biz.bookings();
    assert_eq!(calls.len(), 2);
    assert!(
        calls
            .iter()
            .all(|c| c.idempotency_key.as_deref() == Some(id))
    );
    assert_eq!(app.count_events("booking_confirmed", Some(id)), 1);
}

#[tokio::test]
async fn a_draft_whose_confirm_went_unanswered_stays_confirmable_past_its_ttl() {
    let app = spawn_with(Options::default().set("MANGO_BIZ_TIMEOUT_MS", 300)).await;
    let draft = create(&app, &haircut("2030-05-01T10:00:00Z")).await;
    let id = draft["id"].as_str().unwrap();
    app.biz.fail_next(Route::Bookings, 1, Failure::Hang);
    assert_problem(confirm(&app, id).await, 502, "upstream_unavailable").await;
    app.clock.advance(TTL + Duration::from_secs(60));

    // Biz may hold the booking, so the draft can neither be cancelled nor expire yet.
    assert_eq!(read(&app, id).await["status"], "draft");
    let cancel = send(&app, Method::DELETE, &draft_path(id)).await;
    assert_problem(cancel, 409, "confirm_outcome_unknown").await;
    mango_store::booking::expire_booking_drafts(app.state.clone())
        .await
        .unwrap();
    let (status, _, json) = parts(confirm(&app, id).await).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["data"]["booking"], app.biz.created_bookings()[0]);
    assert_eq!(app.biz.created_bookings().len(), 1);
}

#[tokio::test]
async fn a_taken_slot_is_409_and_the_draft_fails_once() {
    let app = spawn_app().await;
    let first = create(&app, &haircut("2030-05-01T10:00:00Z")).await;
    let second = create(&app, &haircut("2030-05-01T10:30:00Z")).await;
    let (first, second) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );
    assert_eq!(confirm(&app, first).await.status(), 200);
    assert_problem(confirm(&app, second).await, 409, "slot_unavailable").await;
    assert_eq!(read(&app, second).await["status"], "failed");
    // A repeat answers the same without asking Biz again or counting another failure.
    assert_problem(confirm(&app, second).await, 409, "slot_unavailable").await;
    assert_eq!(app.biz.bookings().len(), 2);
    assert_eq!(app.count_events("booking_failed", Some(second)), 1);
    assert_eq!(app.count_events("booking_confirmed", Some(second)), 0);
    // Nothing left to cancel.
    assert_eq!(
        send(&app, Method::DELETE, &draft_path(second))
            .await
            .status(),
        204
    );
    assert_eq!(read(&app, second).await["status"], "failed");
}

#[tokio::test]
async fn a_biz_rejection_is_422_with_its_reason() {
    let app = spawn_app().await;
    let draft = create(&app, &body("svc_blowdry", None, "2030-05-01T10:00:00Z")).await;
    let id = draft["id"].as_str().unwrap();
    // Biz deactivated the service after the draft was made (and before any webhook).
    let services: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join("services.json")).unwrap(),
    )
    .unwrap();
    let mut blowdry = services
        .into_iter()
        .find(|s| s["id"] == "svc_blowdry")
        .unwrap();
    blowdry["is_active"] = json!(false);
    app.biz.upsert_item(BUSINESS, "services", blowdry);

    let problem = assert_problem(confirm(&app, id).await, 422, "booking_rejected").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("not bookable"),
        "{problem}"
    );
    assert_eq!(read(&app, id).await["status"], "failed");
    assert_problem(confirm(&app, id).await, 422, "booking_rejected").await;
    assert_eq!(app.biz.bookings().len(), 1);
    assert_eq!(app.count_events("booking_failed", Some(id)), 1);
}

#[tokio::test]
async fn an_expired_draft_is_410_and_never_reaches_biz() {
    let app = spawn_app().await;
    let draft = create(&app, &haircut("2030-05-01T10:00:00Z")).await;
    let id = draft["id"].as_str().unwrap();
    app.clock.advance(TTL + Duration::from_secs(1));
    assert_eq!(read(&app, id).await["status"], "expired");
    assert_problem(confirm(&app, id).await, 410, "draft_expired").await;
    assert_eq!(
        send(&app, Method::DELETE, &draft_path(id)).await.status(),
        204
    );
    assert_eq!(read(&app, id).await["status"], "expired");
    assert_eq!(app.biz.calls(Route::Bookings), 0);
}

#[tokio::test]
async fn cancelling_is_204_and_blocks_confirm_but_not_the_other_way_round() {
    let app = spawn_app().await;
    let draft = create(&app, &haircut("2030-05-01T10:00:00Z")).await;
    let id = draft["id"].as_str().unwrap();
    let (status, _, json) = parts(send(&app, Method::DELETE, &draft_path(id)).await).await;
    assert_eq!((status, json), (204, Value::Null));
    assert_eq!(read(&app, id).await["status"], "cancelled");
    assert_eq!(
        send(&app, Method::DELETE, &draft_path(id)).await.status(),
        204
    );
    assert_problem(confirm(&app, id).await, 409, "draft_cancelled").await;

    let kept = create(&app, &haircut("2030-05-01T12:00:00Z")).await;
    let kept = kept["id"].as_str().unwrap();
    assert_eq!(confirm(&app, kept).await.status(), 200);
    let cancel = send(&app, Method::DELETE, &draft_path(kept)).await;
    assert_problem(cancel, 409, "already_confirmed").await;
    assert_eq!(read(&app, kept).await["status"], "confirmed");
    assert_eq!(app.biz.bookings().len(), 1);
}

#[tokio::test]
async fn unknown_foreign_and_absurd_ids_are_404() {
    let app = spawn_app().await;
    app.create_store("spa", BUSINESS).await;
    let draft = create(&app, &haircut("2030-05-01T10:00:00Z")).await;
    let id = draft["id"].as_str().unwrap();
    let unknown = format!("drf_{}", "0".repeat(32));
    let huge = format!("drf_{}", "a".repeat(10 * 1024));
    for (slug, id) in [
        ("spa", id),
        (STORE, unknown.as_str()),
        (STORE, "drf_nope"),
        (STORE, huge.as_str()),
    ] {
        for (method, path) in [
            (Method::GET, draft_path(id)),
            (Method::DELETE, draft_path(id)),
            (Method::POST, confirm_path(id)),
        ] {
            let response = app.storefront(method, slug, &path, None).await;
            assert_problem(response, 404, "not_found").await;
        }
    }
    assert_eq!(
        read(&app, id).await["status"],
        "draft",
        "another store cannot cancel it"
    );
    assert_eq!(app.biz.calls(Route::Bookings), 0);
    let unknown_store = app
        .storefront(Method::GET, "nostore", &draft_path(id), None)
        .await;
    assert_problem(unknown_store, 404, "store_not_found").await;
}

#[tokio::test]
async fn drafts_survive_a_restart() {
    let mut app = spawn_app().await;
    let draft = create(&app, &haircut("2030-05-01T10:00:00Z")).await;
    let id = draft["id"].as_str().unwrap();
    app.restart().await;
    assert_eq!(read(&app, id).await, draft);
    let (status, _, json) = parts(confirm(&app, id).await).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["data"]["status"], "confirmed");
}

#[tokio::test]
async fn a_claim_abandoned_by_a_crashed_instance_is_taken_over_without_a_second_booking() {
    let app = spawn_app().await;
    let draft = create(&app, &haircut("2030-05-01T10:00:00Z")).await;
    let id = draft["id"].as_str().unwrap().to_owned();
    // An instance claimed the draft, reached Biz (which booked), and died before recording it.
    let store = app.state.db.store_by_slug(STORE).await.unwrap().unwrap();
    let now_ms = app.state.clock.now_ms();
    let rules = mango_store::db::ClaimRules {
        now_ms,
        unresolved_grace_ms: 0,
        stale_before_ms: now_ms - 60_000,
    };
    let claim = app
        .state
        .db
        .claim_draft(store.id, &id, rules)
        .await
        .unwrap();
    assert!(matches!(claim, mango_store::db::ClaimOutcome::Claimed(d) if d.confirm_attempts == 1));
    let lost = app
        .client
        .post(format!("{}/biz-api/v1/bookings", app.biz_url))
        .bearer_auth(BIZ_KEY)
        .header("Idempotency-Key", &id)
        .json(&json!({
            "business_id": BUSINESS, "service_id": "svc_haircut_women", "staff_id": "stf_aigerim",
            "start_at": "2030-05-01T10:00:00Z", "end_at": "2030-05-01T11:00:00Z",
            "client": {"name": "Aru Sadykova", "phone": "+77010000000", "email": "aru@example.com"},
            "notes": "first visit", "external_ref": id,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(lost.status(), 201);

    // A fresh claim is waited for, not stolen.
    let (base, client, path) = (app.base.clone(), app.client.clone(), confirm_path(&id));
    let waiting = tokio::spawn(async move {
        client
            .post(format!("{base}{path}"))
            .header("X-Store-Id", STORE)
            .send()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    assert_eq!(app.biz.bookings().len(), 1);
    assert_eq!(
        read(&app, &id).await["status"],
        "draft",
        "confirming shows as draft"
    );

    // Once the claim is older than the Biz timeout plus the margin, it is taken over.
    app.clock.advance(Duration::from_secs(10));
    let (status, _, json) = parts(waiting.await.unwrap()).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["data"]["booking"], app.biz.created_bookings()[0]);
    assert_eq!(app.biz.created_bookings().len(), 1);
    let calls = app.biz.bookings();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].idempotency_key.as_deref(), Some(id.as_str()));
    assert_eq!(app.count_events("booking_confirmed", Some(&id)), 1);
}

#[tokio::test]
async fn the_maintenance_job_expires_drafts_erases_customers_and_forgets_keys() {
    let app = spawn_app().await;
    let job = || mango_store::booking::expire_booking_drafts(app.state.clone());
    let confirmed = create(&app, &haircut("2030-05-01T10:00:00Z")).await;
    let cancelled = create(&app, &haircut("2030-05-01T12:00:00Z")).await;
    let key = [("X-Store-Id", STORE), ("Idempotency-Key", "kept-a-day")];
    let open = create_with(&app, &haircut("2030-05-01T14:00:00Z"), &key).await;
    let ids: Vec<String> = [&confirmed, &cancelled, &open]
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(confirm(&app, &ids[0]).await.status(), 200);
    assert_eq!(
        send(&app, Method::DELETE, &draft_path(&ids[1]))
            .await
            .status(),
        204
    );

    app.clock.advance(TTL + Duration::from_secs(1));
    job().await.unwrap();
    let status_of = |id: &str| -> String {
        app.sql_texts(
            "SELECT status FROM store_booking_drafts WHERE id = ?1",
            &[id.into()],
        )[0]
        .clone()
        .unwrap()
    };
    assert_eq!(status_of(&ids[2]), "expired");
    // Ended less than a day ago: details kept.
    assert_eq!(
        read(&app, &ids[0]).await["customer"]["name"],
        "Aru Sadykova"
    );

    app.clock.advance(DAY);
    assert!(job().await.unwrap() >= 4, "three erasures and one key");
    let erased = json!({"name": null, "phone": null, "email": null});
    for id in &ids {
        let draft = read(&app, id).await;
        assert_eq!(draft["customer"], erased, "{id}");
        assert_eq!(draft["notes"], Value::Null);
    }
    let kept = read(&app, &ids[0]).await;
    assert_eq!(
        (kept["status"].as_str(), kept["booking"].is_object()),
        (Some("confirmed"), true)
    );
    assert_eq!(job().await.unwrap(), 0, "a second run finds nothing to do");

    // The key is gone, so another request may use it.
    let reused = create_with(&app, &haircut("2030-05-02T10:00:00Z"), &key).await;
    assert_ne!(reused["id"], open["id"]);
}

/// Issue 17, point 4: Biz confirmed, but recording it took longer than the stale-claim window
/// and the maintenance job released the claim meanwhile. The booking is a fact: the draft is
/// recorded confirmed with Biz's booking and one event, and it never expires or is erased as
/// an unconfirmed draft.
#[tokio::test]
async fn a_finish_slower_than_the_stale_window_still_records_the_booking() {
    let app = spawn_app().await;
    let draft = create(&app, &haircut("2030-05-01T10:00:00Z")).await;
    let id = draft["id"].as_str().unwrap().to_owned();
    let (state, clock) = (app.state.clone(), app.clock.clone());
    // The failpoint: between Biz's answer and its recording, time passes the stale window and
    // the job releases the claim.
    app.state
        .confirms
        .set_before_finish(Some(std::sync::Arc::new(move || {
            let (state, clock) = (state.clone(), clock.clone());
            Box::pin(async move {
                clock.advance(Duration::from_secs(30));
                mango_store::booking::expire_booking_drafts(state)
                    .await
                    .unwrap();
            })
        })));
    let (status, _, json) = parts(confirm(&app, &id).await).await;
    app.state.confirms.set_before_finish(None);
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["data"]["status"], "confirmed");

    let stored = read(&app, &id).await;
    assert_eq!(stored["status"], "confirmed", "{stored}");
    assert_eq!(stored["booking"], app.biz.created_bookings()[0]);
    assert_eq!(app.count_events("booking_confirmed", Some(&id)), 1);

    // A repeat answers the recorded booking without asking Biz again.
    let (status, _, again) = parts(confirm(&app, &id).await).await;
    assert_eq!(
        (status, &again["data"]["status"]),
        (200, &json!("confirmed"))
    );
    assert_eq!(app.biz.bookings().len(), 1);
    app.clock.advance(TTL + DAY);
    mango_store::booking::expire_booking_drafts(app.state.clone())
        .await
        .unwrap();
    assert_eq!(read(&app, &id).await["status"], "confirmed");
}

/// Issue 17, point 8: a start the service cannot write (its UTC instant is in year 10000) or
/// further ahead than `MANGO_BOOKING_HORIZON_DAYS` (730) is 422 `invalid_start_at`, and
/// nothing is stored; the last day inside the horizon is fine.
#[tokio::test]
async fn far_future_starts_are_invalid() {
    let app = spawn_with(Options::default().set("MANGO_BOOKING_HORIZON_DAYS", "730")).await;
    let now = app.state.clock.now();
    let at = |days: i64| (now + time::Duration::days(days)).format(&Rfc3339).unwrap();
    for start in [
        "9999-12-31T22:00:00-12:00".to_string(),
        "9999-12-31T23:30:00Z".to_string(),
        at(731),
    ] {
        let r = app
            .post_json(DRAFTS, &haircut(&start), &[("X-Store-Id", STORE)])
            .await;
        let body = assert_problem(r, 422, "invalid_start_at").await;
        assert!(
            body["detail"].as_str().unwrap().contains("730 days"),
            "{body}"
        );
    }
    assert_eq!(drafts_stored(&app), 0);
    let draft = create(&app, &haircut(&at(729))).await;
    assert!(draft["end_at"].as_str().unwrap().ends_with('Z'));
}

/// Issue 17, point 1: ended drafts are deleted `MANGO_DRAFT_RETENTION_DAYS` after they ended
/// (erasure alone left every row forever); open drafts and recent ones stay.
#[tokio::test]
async fn ended_drafts_are_deleted_after_the_retention_period() {
    let app = spawn_with(Options::default().set("MANGO_DRAFT_RETENTION_DAYS", "3")).await;
    let job = || mango_store::booking::expire_booking_drafts(app.state.clone());
    let old = create(&app, &haircut("2030-05-01T10:00:00Z")).await;
    let old_id = old["id"].as_str().unwrap().to_owned();
    assert_eq!(confirm(&app, &old_id).await.status(), 200);
    app.clock.advance(2 * DAY);
    job().await.unwrap();
    let recent = create(&app, &haircut("2030-05-01T12:00:00Z")).await;
    assert_eq!(drafts_stored(&app), 2);

    app.clock.advance(DAY + Duration::from_secs(60));
    job().await.unwrap();
    assert_eq!(drafts_stored(&app), 1, "the draft ended 3 days ago is gone");
    let (status, _, _) = parts(send(&app, Method::GET, &draft_path(&old_id)).await).await;
    assert_eq!(status, 404);
    // The one that expired a day ago is kept (erased) until its own retention is over.
    assert_eq!(
        read(&app, recent["id"].as_str().unwrap()).await["status"],
        "expired"
    );
    app.clock.advance(3 * DAY);
    job().await.unwrap();
    assert_eq!(drafts_stored(&app), 0);
}
