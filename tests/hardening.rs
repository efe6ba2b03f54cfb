//! Issue 17, point 9: host names are case-insensitive, `X-Forwarded-For` is read from the
//! right, and business ids compare exactly on every backend.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn host_names_match_whatever_their_case() {
    let app = spawn_app().await;
    let patch = json!({"custom_domain": "shop.example.com"});
    let r = app
        .admin(
            Method::PATCH,
            "/admin/v1/stores/salon",
            ADMIN_TOKEN,
            Some(&patch),
        )
        .await;
    assert_eq!(r.status(), 200);
    for host in [
        "Salon.mango.localhost",
        "SALON.MANGO.LOCALHOST:8080",
        "salon.Mango.Localhost",
        "Shop.Example.COM",
        "shop.example.com.",
    ] {
        let (status, _, body) = parts(app.get_with("/api/v1/store", &[("Host", host)]).await).await;
        assert_eq!(status, 200, "{host}: {body}");
        assert_eq!(body["data"]["slug"], "salon", "{host}");
    }
    let r = app
        .get_with("/api/v1/store", &[("Host", "Nobody.mango.localhost")])
        .await;
    assert_problem(r, 404, "store_not_found").await;
}

async fn visitors(app: &TestApp) -> Value {
    let path = "/admin/v1/stores/salon/analytics";
    let (status, _, body) = parts(app.admin(Method::GET, path, &app.store_key, None).await).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["visitors"].clone()
}

async fn page_view_from(app: &TestApp, forwarded: &str) {
    let r = app
        .client
        .post(app.url("/api/v1/analytics/events"))
        .header("X-Store-Id", STORE)
        .header("User-Agent", "Mozilla/5.0 (same browser)")
        .header("X-Forwarded-For", forwarded)
        .json(&json!({"name": "page_view", "url": "/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

/// Behind one proxy that appends, the leftmost entries are the client's to forge: a client
/// that sends a new made-up address each time is still one visitor.
#[tokio::test]
async fn forwarded_for_is_read_from_the_rightmost_untrusted_hop() {
    let app = spawn_with(Options::default().set("MANGO_TRUST_FORWARDED_FOR", "true")).await;
    page_view_from(&app, "1.1.1.1, 203.0.113.7").await;
    page_view_from(&app, "2.2.2.2, 203.0.113.7").await;
    page_view_from(&app, "203.0.113.7").await;
    assert_eq!(visitors(&app).await, 1);
    page_view_from(&app, "1.1.1.1, 198.51.100.9").await;
    assert_eq!(visitors(&app).await, 2);

    // Two proxies: the outer proxy's own address (rightmost) is skipped.
    let app = spawn_with(
        Options::default()
            .set("MANGO_TRUST_FORWARDED_FOR", "true")
            .set("MANGO_TRUSTED_PROXIES", "2"),
    )
    .await;
    page_view_from(&app, "1.1.1.1, 203.0.113.7, 10.0.0.1").await;
    page_view_from(&app, "2.2.2.2, 203.0.113.7, 10.0.0.2").await;
    assert_eq!(visitors(&app).await, 1);
}

/// SQLite compares business ids exactly; SQL Server's default collation would not (run this
/// suite with `MANGO_TEST_MSSQL_URL` to hold the T-SQL to it).
#[tokio::test]
async fn business_ids_compare_exactly() {
    let app = spawn_app().await;
    let other_case = BUSINESS.to_uppercase();
    let r = app
        .webhook(
            "services",
            "updated",
            "evt_case_1",
            &other_case,
            "svc_haircut_men",
        )
        .await;
    let (status, _, body) = parts(r).await;
    assert_eq!((status, &body["data"]["status"]), (200, &json!("ignored")));
    let r = app
        .webhook(
            "services",
            "updated",
            "evt_case_2",
            BUSINESS,
            "svc_haircut_men",
        )
        .await;
    let (status, _, body) = parts(r).await;
    assert_eq!(
        (status, &body["data"]["status"]),
        (200, &json!("processed"))
    );
}

async fn post_event_as(app: &TestApp, client: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/analytics/events"))
        .header("X-Store-Id", STORE)
        .header("X-Forwarded-For", client)
        .json(&json!({"name": "page_view", "url": "/"}))
        .send()
        .await
        .unwrap()
}

/// Issue 17, point 1: the public write routes are rate-limited per client and per store;
/// past the limit the answer is 429 `rate_limited` with `Retry-After`, and nothing is stored.
#[tokio::test]
async fn public_writes_are_rate_limited_per_client_and_per_store() {
    let app = spawn_with(
        Options::default()
            .set("MANGO_TRUST_FORWARDED_FOR", "true")
            .set("MANGO_RATE_LIMIT_PER_CLIENT", "3")
            .set("MANGO_RATE_LIMIT_PER_STORE", "5"),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(post_event_as(&app, "203.0.113.7").await.status(), 202);
    }
    let r = post_event_as(&app, "203.0.113.7").await;
    // The next token is at most 20 s away (3 a minute), less if the writes took a while.
    let retry: u64 = header(r.headers(), "retry-after").parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert_problem(r, 429, "rate_limited").await;
    // The client's bucket covers every write route.
    let draft = json!({
        "service_id": "svc_haircut_women", "start_at": "2030-05-01T10:00:00Z",
        "customer": {"name": "Aru", "phone": "+77010000000"},
    });
    let r = app
        .post_json(
            "/api/v1/booking/draft",
            &draft,
            &[("X-Store-Id", STORE), ("X-Forwarded-For", "203.0.113.7")],
        )
        .await;
    assert_problem(r, 429, "rate_limited").await;

    // Other clients share the store's bucket: two more, then the store is full.
    assert_eq!(post_event_as(&app, "198.51.100.1").await.status(), 202);
    assert_eq!(post_event_as(&app, "198.51.100.2").await.status(), 202);
    let r = post_event_as(&app, "198.51.100.3").await;
    assert_problem(r, 429, "rate_limited").await;
    assert_eq!(visitors(&app).await, 3);

    // The buckets refill with time.
    app.clock.advance(std::time::Duration::from_secs(60));
    assert_eq!(post_event_as(&app, "203.0.113.7").await.status(), 202);
}

async fn post_batch(app: &TestApp, n: usize) -> reqwest::Response {
    let batch: Vec<Value> = (0..n)
        .map(|i| json!({"name": "page_view", "url": format!("/p/{i}")}))
        .collect();
    app.post_json(
        "/api/v1/analytics/events",
        &json!(batch),
        &[("X-Store-Id", STORE)],
    )
    .await
}

async fn page_views(app: &TestApp) -> Value {
    let path = "/admin/v1/stores/salon/analytics";
    let (_, _, body) = parts(app.admin(Method::GET, path, &app.store_key, None).await).await;
    body["data"]["page_views"].clone()
}

/// Issue 17, point 1: a store records at most `MANGO_ANALYTICS_DAILY_QUOTA` events per UTC
/// day, in the database (so across instances); a batch that would pass it is refused whole
/// with 429 and `Retry-After` up to the next day.
#[tokio::test]
async fn analytics_events_have_a_daily_quota_per_store() {
    let app = spawn_with(Options::default().set("MANGO_ANALYTICS_DAILY_QUOTA", "5")).await;
    assert_eq!(post_batch(&app, 3).await.status(), 202);
    let r = post_batch(&app, 3).await;
    let retry_after: u64 = header(r.headers(), "retry-after").parse().unwrap();
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");
    assert_problem(r, 429, "rate_limited").await;
    assert_eq!(post_batch(&app, 2).await.status(), 202);
    assert_eq!(post_batch(&app, 1).await.status(), 429);
    // Another instance on the same database sees the same count.
    let peer = app.spawn_peer().await;
    let r = app
        .client
        .post(format!("{}/api/v1/analytics/events", peer.base))
        .header("X-Store-Id", STORE)
        .json(&json!({"name": "page_view", "url": "/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(page_views(&app).await, 5);

    app.clock
        .advance(std::time::Duration::from_secs(retry_after + 1));
    assert_eq!(post_batch(&app, 5).await.status(), 202);
    assert_eq!(
        mango_store::jobs::purge_daily_usage(app.state.clone())
            .await
            .unwrap(),
        0
    );
    app.clock
        .advance(std::time::Duration::from_secs(2 * 86_400));
    assert_eq!(
        mango_store::jobs::purge_daily_usage(app.state.clone())
            .await
            .unwrap(),
        2
    );
}

/// Issue 17, point 1: page-view URLs and referrers are stored once (in the page-view row), and
/// every stored URL keeps only `utm_*` query parameters: a query string can carry an email or
/// a token.
#[tokio::test]
async fn urls_are_stored_once_and_without_private_query_parameters() {
    let app = spawn_app().await;
    let events = json!([
        {"name": "page_view",
         "url": "https://salon.example/services/svc_1?email=aru%40example.com&utm_source=ig#top",
         "referrer": "https://mail.example/inbox?token=s3cret"},
        {"name": "share", "url": "/services?reset=abc&utm_campaign=spring"},
    ]);
    let r = app
        .post_json(
            "/api/v1/analytics/events",
            &events,
            &[("X-Store-Id", STORE)],
        )
        .await;
    assert_eq!(r.status(), 202);
    let stored = app.sql_texts("SELECT url FROM store_analytics_events ORDER BY id", &[]);
    assert_eq!(
        stored,
        vec![None, Some("/services?utm_campaign=spring".to_string())],
        "a page view's URL is in its page-view row only"
    );
    let page_view = app.sql_texts("SELECT url FROM store_analytics_page_views", &[]);
    assert_eq!(
        page_view,
        vec![Some(
            "https://salon.example/services/svc_1?utm_source=ig".to_string()
        )]
    );
    let referrer = app.sql_texts("SELECT referrer FROM store_analytics_page_views", &[]);
    assert_eq!(
        referrer,
        vec![Some("https://mail.example/inbox".to_string())]
    );
    let referrers = app.sql_texts("SELECT referrer FROM store_analytics_events", &[]);
    assert!(referrers.iter().all(Option::is_none), "{referrers:?}");
    // The funnel still sees the service view.
    let (_, _, body) = parts(
        app.admin(
            Method::GET,
            "/admin/v1/stores/salon/analytics",
            &app.store_key,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(body["data"]["funnel"]["service_views"], 1, "{body}");
}

/// Issue 17, point 1: the flood (32 clients posting 80-event `page_view` batches with a
/// new User-Agent each time) for 3 s, and on until the limiter has refused one (a slow database
/// may not get through the burst in 3 s), with the default limits. One address gets its burst
/// of 120 requests a minute plus 2 a second; the rest are 429 and store nothing.
#[tokio::test]
async fn a_page_view_flood_from_one_address_is_bounded() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let app = spawn_app().await;
    let batch: Vec<Value> = (0..80)
        .map(|i| json!({"name": "page_view", "url": format!("/p/{i}?utm_source=x&q={i}")}))
        .collect();
    let batch = std::sync::Arc::new(json!(batch));
    let started = Instant::now();
    let (until, give_up) = (
        started + Duration::from_secs(3),
        started + Duration::from_secs(120),
    );
    let refused = std::sync::Arc::new(AtomicBool::new(false));
    let flooders = (0..32).map(|n| {
        let (client, url, batch, refused) = (
            app.client.clone(),
            app.url("/api/v1/analytics/events"),
            batch.clone(),
            refused.clone(),
        );
        tokio::spawn(async move {
            let (mut accepted, mut limited, mut i) = (0u64, 0u64, 0u64);
            while Instant::now() < give_up
                && (Instant::now() < until || !refused.load(Ordering::Relaxed))
            {
                i += 1;
                let r = client
                    .post(&url)
                    .header("X-Store-Id", STORE)
                    .header("User-Agent", format!("flood/{n}/{i}"))
                    .json(&*batch)
                    .send()
                    .await
                    .unwrap();
                match r.status().as_u16() {
                    202 => accepted += 1,
                    429 => {
                        limited += 1;
                        refused.store(true, Ordering::Relaxed);
                    }
                    other => panic!("{other}"),
                }
            }
            (accepted, limited)
        })
    });
    let (mut accepted, mut limited) = (0, 0);
    for r in futures::future::join_all(flooders).await {
        let (a, l) = r.unwrap();
        accepted += a;
        limited += l;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let events = app.sql_i64("SELECT COUNT(*) FROM store_analytics_events", &[]);
    eprintln!(
        "flood: {accepted} batches accepted, {limited} refused, {events} events stored in {elapsed:.1} s"
    );
    assert!(limited > 0, "the limiter refused some");
    // The burst of 120, plus 2 a second refilled while the flood lasted.
    let bound = 120 + (2.0 * elapsed).ceil() as u64;
    assert!((120..=bound).contains(&accepted), "{accepted} > {bound}");
    assert_eq!(events, accepted as i64 * 80);
}
