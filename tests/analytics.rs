//! CONTRACT §9 and the analytics summary of §10: cookieless events, visitors and sessions.

mod common;

use std::time::Duration;

use common::*;
use mango_store::db::NewEvent;
use reqwest::Method;
use serde_json::{Value, json};

const EVENTS: &str = "/api/v1/analytics/events";
const UA_A: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0";
const UA_B: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0) Safari/604.1";
const DAY: Duration = Duration::from_secs(86_400);

/// Moves the clock to 01:00 UTC of the next day, so a test that advances it by minutes never
/// crosses midnight (where the salt, and with it every visitor hash, changes).
fn to_early_morning(app: &TestApp) {
    let now_ms = app.state.clock.now_ms();
    let day_ms = DAY.as_millis() as i64;
    let target = (now_ms.div_euclid(day_ms) + 1) * day_ms + 3_600_000;
    app.clock
        .advance(Duration::from_millis((target - now_ms) as u64));
}

async fn post_events(app: &TestApp, body: &Value, ua: &str) -> reqwest::Response {
    app.post_json(EVENTS, body, &[("X-Store-Id", STORE), ("User-Agent", ua)])
        .await
}

async fn accepted(app: &TestApp, body: Value, ua: &str) {
    let (status, _, reply) = parts(post_events(app, &body, ua).await).await;
    assert_eq!(status, 202, "{reply}");
    let n = body.as_array().map_or(1, Vec::len);
    assert_eq!(reply, json!({"data": {"accepted": n}}));
}

async fn summary_with(app: &TestApp, query: &str) -> Value {
    let path = format!("/admin/v1/stores/salon/analytics{query}");
    let (status, _, body) = parts(app.admin(Method::GET, &path, &app.store_key, None).await).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

async fn summary(app: &TestApp) -> Value {
    summary_with(app, "").await
}

fn page_view(url: &str) -> Value {
    json!({"name": "page_view", "url": url, "referrer": "https://search.example/?q=salon"})
}

fn count_rows(app: &TestApp, sql: &str) -> i64 {
    app.sql_i64(sql, &[])
}

#[tokio::test]
async fn one_event_or_a_batch_is_accepted_and_counted() {
    let app = spawn_app().await;
    accepted(&app, page_view("https://salon.example/"), UA_A).await;
    let batch = json!([
        page_view("/about"),
        {"name": "add_to_cart", "props": {"item": "svc_1", "qty": 2, "gift": false, "note": null}},
        {"name": "add_to_cart"},
    ]);
    accepted(&app, batch, UA_A).await;
    let s = summary(&app).await;
    assert_eq!(s["page_views"], 2);
    assert_eq!(s["visitors"], 1);
    assert_eq!(s["sessions"], 1);
    assert_eq!(s["events"], json!({"page_view": 2, "add_to_cart": 2}));
    assert!(s["from"].is_string() && s["to"].is_string());
}

#[tokio::test]
async fn a_batch_with_one_bad_event_stores_nothing() {
    let app = spawn_app().await;
    let too_many: Vec<Value> = (0..101).map(|_| json!({"name": "x"})).collect();
    let many_props: serde_json::Map<String, Value> =
        (0..31).map(|i| (format!("k{i}"), json!(i))).collect();
    let cases = [
        (
            json!([{"name": "ok"}, {"name": "ok", "url": "u".repeat(2_001)}]),
            "events[1].url",
        ),
        (
            json!([{"name": "ok"}, {"name": "ok", "referrer": "r".repeat(2_001)}]),
            "events[1].referrer",
        ),
        (
            json!([{"name": "ok"}, {"name": "Bad-Name"}]),
            "events[1].name",
        ),
        (json!({"name": "x".repeat(65)}), "events[0].name"),
        (json!({"url": "/"}), "events[0]"),
        (
            json!({"name": "ok", "props": {"nested": {"a": 1}}}),
            "events[0].props.nested",
        ),
        (
            json!({"name": "ok", "props": {"list": [1]}}),
            "events[0].props.list",
        ),
        (
            json!({"name": "ok", "props": {"long": "s".repeat(257)}}),
            "events[0].props.long",
        ),
        (
            json!({"name": "ok", "props": many_props}),
            "events[0].props",
        ),
        (json!({"name": "ok", "props": "text"}), "events[0].props"),
        (json!({"name": "ok", "cookie": "id"}), "events[0]"),
        (json!([]), "1 to 100"),
        (json!(too_many), "1 to 100"),
        (json!("page_view"), "event object"),
    ];
    for (body, detail) in cases {
        let problem =
            assert_problem(post_events(&app, &body, UA_A).await, 400, "invalid_request").await;
        let text = problem["detail"].as_str().unwrap();
        assert!(text.contains(detail), "{detail} not in {text}");
    }
    // Server-owned names, even behind a valid first event.
    for name in [
        "booking_confirmed",
        "booking_draft_created",
        "booking_anything",
    ] {
        let body = json!([page_view("/"), {"name": name, "props": {"draft_id": "d1"}}]);
        let problem = assert_problem(
            post_events(&app, &body, UA_A).await,
            422,
            "reserved_event_name",
        )
        .await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("events[1].name")
        );
    }
    let s = summary(&app).await;
    assert_eq!(
        (s["page_views"].clone(), s["sessions"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(s["events"], json!({}));
    // Exactly at the caps is fine.
    let props: serde_json::Map<String, Value> = (0..30)
        .map(|i| (format!("{i:0>64}"), json!("s".repeat(256))))
        .collect();
    accepted(
        &app,
        json!({"name": "x".repeat(64), "url": "u".repeat(2_000), "props": props}),
        UA_A,
    )
    .await;
    let hundred: Vec<Value> = (0..100).map(|_| json!({"name": "tick"})).collect();
    accepted(&app, json!(hundred), UA_A).await;
    assert_eq!(summary(&app).await["events"]["tick"], 100);
}

#[tokio::test]
async fn events_for_an_unknown_store_are_refused() {
    let app = spawn_app().await;
    let r = app
        .post_json(EVENTS, &json!({"name": "x"}), &[("X-Store-Id", "nowhere")])
        .await;
    assert_problem(r, 404, "store_not_found").await;
    let r = app
        .post_json(
            EVENTS,
            &json!({"name": "x"}),
            &[("Host", "unknown.example.com")],
        )
        .await;
    assert_problem(r, 404, "store_not_found").await;
}

#[tokio::test]
async fn visitors_and_sessions_across_user_agents_and_the_idle_boundary() {
    let app = spawn_app().await;
    to_early_morning(&app);
    accepted(&app, page_view("/"), UA_A).await;
    accepted(&app, page_view("/"), UA_B).await;
    app.clock.advance(Duration::from_secs(29 * 60));
    accepted(&app, page_view("/services"), UA_A).await; // 29 min later: same session
    app.clock.advance(Duration::from_secs(29 * 60));
    accepted(&app, json!({"name": "scroll"}), UA_A).await; // 29 min after the last: still
    let s = summary(&app).await;
    assert_eq!(
        (s["visitors"].clone(), s["sessions"].clone()),
        (json!(2), json!(2)),
        "{s}"
    );

    app.clock.advance(Duration::from_secs(31 * 60));
    accepted(&app, page_view("/"), UA_A).await; // 31 min idle: a new session, same visitor
    accepted(&app, page_view("/"), UA_B).await; // B idle for 89 min: new session too
    let s = summary(&app).await;
    assert_eq!(s["visitors"], 2, "{s}");
    assert_eq!(s["sessions"], 4);
    assert_eq!(s["page_views"], 5);
    assert_eq!(s["events"], json!({"page_view": 5, "scroll": 1}));

    // Another store sees the same person as a different visitor, and none of this.
    let other_key = app.create_store("other", BUSINESS).await;
    let r = app
        .post_json(
            EVENTS,
            &page_view("/"),
            &[("X-Store-Id", "other"), ("User-Agent", UA_A)],
        )
        .await;
    assert_eq!(r.status(), 202);
    let r = app
        .admin(
            Method::GET,
            "/admin/v1/stores/other/analytics",
            &other_key,
            None,
        )
        .await;
    let other = parts(r).await.2["data"].clone();
    assert_eq!(
        (other["visitors"].clone(), other["sessions"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(summary(&app).await["sessions"], 4);
}

#[tokio::test]
async fn concurrent_requests_of_one_visitor_share_one_session() {
    let app = spawn_app().await;
    to_early_morning(&app);
    let bodies: Vec<Value> = (0..12).map(|i| page_view(&format!("/p/{i}"))).collect();
    let requests = bodies.iter().map(|body| post_events(&app, body, UA_A));
    for r in futures::future::join_all(requests).await {
        assert_eq!(r.status(), 202);
    }
    let s = summary(&app).await;
    assert_eq!(
        (
            s["visitors"].clone(),
            s["sessions"].clone(),
            s["page_views"].clone()
        ),
        (json!(1), json!(1), json!(12))
    );
}

#[tokio::test]
async fn forwarded_for_is_the_client_only_when_trusted() {
    for (trusted, visitors) in [(false, 1), (true, 2)] {
        let app = spawn_with(Options::default().set("MANGO_TRUST_FORWARDED_FOR", trusted)).await;
        to_early_morning(&app);
        for client in ["203.0.113.7, 10.0.0.1", "198.51.100.9, 10.0.0.1"] {
            let headers = [
                ("X-Store-Id", STORE),
                ("User-Agent", UA_A),
                ("X-Forwarded-For", client),
            ];
            assert_eq!(
                app.post_json(EVENTS, &page_view("/"), &headers)
                    .await
                    .status(),
                202
            );
        }
        // The proxy's own entry (the second) does not split a visitor.
        let headers = [
            ("X-Store-Id", STORE),
            ("User-Agent", UA_A),
            ("X-Forwarded-For", "203.0.113.7, 10.9.9.9"),
        ];
        assert_eq!(
            app.post_json(EVENTS, &page_view("/"), &headers)
                .await
                .status(),
            202
        );
        assert_eq!(
            summary(&app).await["visitors"],
            visitors,
            "trusted: {trusted}"
        );
    }
}

#[tokio::test]
async fn salts_rotate_daily_are_purged_after_48_hours_and_nothing_identifying_is_stored() {
    let app = spawn_app().await;
    to_early_morning(&app);
    accepted(&app, page_view("/"), UA_A).await;
    app.clock.advance(DAY);
    accepted(&app, page_view("/"), UA_A).await;
    // The same person on two days is two visitors: yesterday's hash cannot be linked to today's.
    assert_eq!(summary(&app).await["visitors"], 2);
    let salts = "SELECT COUNT(*) FROM store_analytics_salts";
    assert_eq!(count_rows(&app, salts), 2);

    // Yesterday's salt is kept for now (its day began 25 h ago).
    mango_store::analytics::purge_old_salts(app.state.clone())
        .await
        .unwrap();
    assert_eq!(count_rows(&app, salts), 2);
    app.clock.advance(DAY);
    accepted(&app, page_view("/"), UA_A).await;
    mango_store::jobs::run_logged(
        "purge_analytics_salts",
        mango_store::analytics::purge_old_salts(app.state.clone()),
    )
    .await;
    // Day 1 began 49 h ago: gone. Days 2 and 3 remain; a second run changes nothing.
    assert_eq!(count_rows(&app, salts), 2);
    let removed = mango_store::analytics::purge_old_salts(app.state.clone())
        .await
        .unwrap();
    assert_eq!(removed, 0);
    let today = app.state.clock.now_ms().div_euclid(DAY.as_millis() as i64);
    let oldest = count_rows(&app, "SELECT MIN(day) FROM store_analytics_salts");
    assert_eq!(oldest, today - 1);

    // Neither the address nor the user agent reaches the database.
    for table in [
        "store_analytics_events",
        "store_analytics_page_views",
        "store_analytics_sessions",
    ] {
        let mut stored = app.sql_texts(&format!("SELECT visitor_hash FROM {table}"), &[]);
        stored.extend(app.sql_texts(&format!("SELECT session_id FROM {table}"), &[]));
        let dump = stored.into_iter().flatten().collect::<Vec<_>>().join(" ");
        assert!(!dump.is_empty());
        assert!(
            !dump.contains("127.0.0.1") && !dump.contains("Firefox"),
            "{table}: {dump}"
        );
    }
    for column in ["url", "referrer", "props"] {
        let sql = format!("SELECT {column} FROM store_analytics_events");
        for value in app.sql_texts(&sql, &[]).into_iter().flatten() {
            assert!(
                !value.contains("Firefox") && !value.contains("127.0.0.1"),
                "{column}: {value}"
            );
        }
    }
}

#[tokio::test]
async fn the_funnel_follows_service_views_drafts_and_confirmed_bookings() {
    let app = spawn_app().await;
    let store_id = app.state.db.store_by_slug(STORE).await.unwrap().unwrap().id;
    let now = app.state.clock.now_ms();
    accepted(
        &app,
        json!([
            page_view("https://salon.example/services/svc_haircut_women?utm=x"),
            page_view("/en/services/svc_haircut_men"),
            page_view("/services"),
            page_view("/services/"),
            page_view("/about"),
            {"name": "service_view", "props": {"service_id": "svc_haircut_kids"}},
        ]),
        UA_A,
    )
    .await;
    let event = |name: &str, draft: &str, at: i64| NewEvent {
        store_id,
        name: name.to_string(),
        draft_id: Some(draft.to_string()),
        occurred_at_ms: at,
        ..Default::default()
    };
    let long_ago = now - 40 * DAY.as_millis() as i64;
    app.state
        .db
        .insert_events(vec![
            event("booking_draft_created", "d1", now - 3_000),
            event("booking_draft_created", "d2", now - 2_000),
            event("booking_draft_created", "d3", now - 1_000),
            event("booking_confirmed", "d1", now - 500),
            event("booking_confirmed", "d1", now - 400), // a repeat counts once
            event("booking_failed", "d2", now - 300),
            event("booking_confirmed", "d9", now - 200), // no draft event at all
            event("booking_draft_created", "d0", long_ago), // draft before the range…
            event("booking_confirmed", "d0", now - 100), // …so its confirmation is not counted
        ])
        .await
        .unwrap();
    let s = summary(&app).await;
    assert_eq!(
        s["funnel"],
        json!({"service_views": 3, "drafts_created": 3, "bookings_confirmed": 1}),
        "{s}"
    );
    assert_eq!(s["events"]["booking_confirmed"], 4);
    assert_eq!(s["events"]["booking_failed"], 1);
    assert_eq!(s["page_views"], 5);

    // Widen the range to include d0's draft: its confirmation now counts.
    let from = time::OffsetDateTime::from_unix_timestamp((long_ago / 1000) - 86_400)
        .unwrap()
        .date();
    let s = summary_with(&app, &format!("?from={from}")).await;
    assert_eq!(s["funnel"]["drafts_created"], 4);
    assert_eq!(s["funnel"]["bookings_confirmed"], 2);
}

#[tokio::test]
async fn the_summary_range_is_validated_and_bounds_what_is_counted() {
    let app = spawn_app().await;
    to_early_morning(&app);
    accepted(&app, page_view("/"), UA_A).await;
    let today = app.state.clock.now().date();
    let yesterday = today.previous_day().unwrap();
    let tomorrow = today.next_day().unwrap();
    // Plain dates include the whole `to` day.
    let s = summary_with(&app, &format!("?from={today}&to={today}")).await;
    assert_eq!(s["page_views"], 1);
    let s = summary_with(&app, &format!("?from={yesterday}&to={yesterday}")).await;
    assert_eq!(s["page_views"], 0);
    assert_eq!(s["visitors"], 0);
    let s = summary_with(&app, &format!("?from={yesterday}&to={tomorrow}")).await;
    assert_eq!(s["page_views"], 1);
    // RFC 3339 with an offset.
    let to = app.state.clock.now() + time::Duration::hours(1);
    let to = to.to_offset(time::macros::offset!(+05:00));
    let to = to
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let s = summary_with(&app, &format!("?to={}", to.replace('+', "%2B"))).await;
    assert_eq!(s["page_views"], 1);
    for query in [
        format!("?from={today}&to={yesterday}"),
        format!("?from={tomorrow}"), // after the default `to`, which is now
        "?from=2026-11-02T00:00:01Z&to=2026-11-02T00:00:00Z".to_string(),
        "?from=last-week".to_string(),
        "?to=2026-02-30".to_string(),
        "?from=2026-11-01T10:00:00".to_string(),
    ] {
        let path = format!("/admin/v1/stores/salon/analytics{query}");
        let r = app.admin(Method::GET, &path, ADMIN_TOKEN, None).await;
        assert_problem(r, 400, "invalid_request").await;
    }

    // Thirty-one days later the event has left the default window.
    app.clock.advance(31 * DAY);
    assert_eq!(summary(&app).await["page_views"], 0);
    let s = summary_with(&app, &format!("?from={today}")).await;
    assert_eq!(s["page_views"], 1);
}
