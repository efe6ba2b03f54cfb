//! Analytics from browsers (CONTRACT §9, §10): `navigator.sendBeacon` bodies and `?store=`,
//! the `daily` series of the summary, and the retention job.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const DAY: Duration = Duration::from_secs(86_400);

/// A POST as `navigator.sendBeacon` sends it: `text/plain`, no custom headers.
async fn beacon(app: &TestApp, query: &str, content_type: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/analytics/events{query}")))
        .header("Content-Type", content_type)
        .header("User-Agent", "Mozilla/5.0 beacon test")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn summary_with(app: &TestApp, query: &str) -> reqwest::Response {
    app.admin(
        Method::GET,
        &format!("/admin/v1/stores/{STORE}/analytics{query}"),
        &app.store_key,
        None,
    )
    .await
}

fn page_view(path: &str) -> Value {
    json!({"name": "page_view", "url": format!("https://salon.example{path}")})
}

/// Moves the clock to 01:00 UTC of the next day.
fn to_early_morning(app: &TestApp) {
    let now_ms = app.state.clock.now_ms();
    let day_ms = DAY.as_millis() as i64;
    let target = (now_ms.div_euclid(day_ms) + 1) * day_ms + 3_600_000;
    app.clock
        .advance(Duration::from_millis((target - now_ms) as u64));
}

fn date_of(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000).unwrap();
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

#[tokio::test]
async fn beacons_send_text_plain_and_name_the_store_in_the_query() {
    let app = spawn_app().await;
    for content_type in [
        "text/plain",
        "text/plain;charset=UTF-8",
        "Text/Plain; charset=utf-8",
    ] {
        let response = beacon(&app, "?store=salon", content_type, &page_view("/")).await;
        assert_eq!(response.status(), 202, "{content_type}");
    }
    // A batch, and `application/json` with the query works too.
    let batch = json!([page_view("/services/svc_1"), {"name": "cta_click"}]);
    let (status, _, body) =
        parts(beacon(&app, "?store=salon", "application/json", &batch).await).await;
    assert_eq!((status, body), (202, json!({"data": {"accepted": 2}})));
    let (_, _, body) = parts(summary_with(&app, "").await).await;
    assert_eq!(body["data"]["page_views"], 4);

    // The headers win over the query; an unknown X-Store-Id is not replaced by it.
    let response = app
        .client
        .post(app.url("/api/v1/analytics/events?store=salon"))
        .header("X-Store-Id", "nobody")
        .header("Content-Type", "text/plain")
        .body(page_view("/").to_string())
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "store_not_found").await;
    // No store anywhere, or an unknown one in the query.
    assert_problem(
        beacon(&app, "", "text/plain", &page_view("/")).await,
        404,
        "store_not_found",
    )
    .await;
    assert_problem(
        beacon(&app, "?store=nobody", "text/plain", &page_view("/")).await,
        404,
        "store_not_found",
    )
    .await;

    // Other content types and bad bodies are still refused, naming the problem.
    assert_problem(
        beacon(&app, "?store=salon", "text/html", &page_view("/")).await,
        400,
        "invalid_request",
    )
    .await;
    let response = app
        .client
        .post(app.url("/api/v1/analytics/events?store=salon"))
        .header("Content-Type", "text/plain")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "invalid_request").await;
    let body = assert_problem(
        beacon(
            &app,
            "?store=salon",
            "text/plain",
            &json!({"name": "booking_confirmed"}),
        )
        .await,
        422,
        "reserved_event_name",
    )
    .await;
    assert!(body["detail"].is_string());
}

#[tokio::test]
async fn daily_has_one_entry_per_utc_day_with_zeros_oldest_first() {
    let app = spawn_app().await;
    to_early_morning(&app);
    let day0 = app.state.clock.now_ms();
    for path in ["/", "/services/svc_1"] {
        assert_eq!(
            beacon(&app, "?store=salon", "text/plain", &page_view(path))
                .await
                .status(),
            202
        );
    }
    app.clock.advance(2 * DAY);
    assert_eq!(
        beacon(&app, "?store=salon", "text/plain", &page_view("/"))
            .await
            .status(),
        202
    );

    let day_ms = DAY.as_millis() as i64;
    let query = format!(
        "?from={}&to={}",
        date_of(day0 - day_ms),
        date_of(day0 + 3 * day_ms)
    );
    let (status, _, body) = parts(summary_with(&app, &query).await).await;
    assert_eq!(status, 200, "{body}");
    let daily = body["data"]["daily"].as_array().unwrap().clone();
    let dates: Vec<String> = (-1..=3).map(|d| date_of(day0 + d * day_ms)).collect();
    assert_eq!(
        daily
            .iter()
            .map(|d| d["date"].as_str().unwrap())
            .collect::<Vec<_>>(),
        dates
    );
    let figures: Vec<(i64, i64, i64)> = daily
        .iter()
        .map(|d| {
            (
                d["page_views"].as_i64().unwrap(),
                d["visitors"].as_i64().unwrap(),
                d["sessions"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        figures,
        [(0, 0, 0), (2, 1, 1), (0, 0, 0), (1, 1, 1), (0, 0, 0)]
    );
    assert_eq!(body["data"]["page_views"], 3);

    // Instants: the days they touch.
    let (_, _, body) = parts(
        summary_with(
            &app,
            &format!("?from={}T12:00:00Z&to={}T01:00:00Z", dates[1], dates[2]),
        )
        .await,
    )
    .await;
    assert_eq!(body["data"]["daily"].as_array().unwrap().len(), 2);

    // The default is the last 30 days; more than 366 days is refused.
    let (_, _, body) = parts(summary_with(&app, "").await).await;
    let n = body["data"]["daily"].as_array().unwrap().len();
    assert!((30..=31).contains(&n), "{n}");
    assert!(
        summary_with(&app, "?from=2025-01-01&to=2025-12-31")
            .await
            .status()
            == 200
    );
    assert_problem(
        summary_with(&app, "?from=2025-01-01&to=2026-01-02").await,
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn the_retention_job_deletes_what_is_older_than_the_retention() {
    let app = spawn_with(Options::default().set("MANGO_ANALYTICS_RETENTION_DAYS", "30")).await;
    let sent = |path: &'static str| {
        let app = &app;
        async move {
            assert_eq!(
                beacon(app, "?store=salon", "text/plain", &page_view(path))
                    .await
                    .status(),
                202
            );
        }
    };
    sent("/old").await;
    sent("/old-too").await;
    app.clock.advance(31 * DAY);
    sent("/new").await;
    let count = |table: &str| app.sql_i64(&format!("SELECT COUNT(*) FROM {table}"), &[]);
    assert_eq!(count("store_analytics_page_views"), 3);

    mango_store::jobs::purge_old_analytics(app.state.clone())
        .await
        .unwrap();
    assert_eq!(count("store_analytics_page_views"), 1);
    assert_eq!(count("store_analytics_events"), 1);
    assert_eq!(count("store_analytics_sessions"), 1);
    // Idempotent.
    assert_eq!(
        mango_store::jobs::purge_old_analytics(app.state.clone())
            .await
            .unwrap(),
        0
    );
}
