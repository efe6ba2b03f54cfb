//! CONTRACT §12: declared resources (read path, webhooks, purge, statistics, metrics) and list
//! queries (filters, ids, pages with cursors), always answered from the one cached list.

mod common;

use common::*;
use mango_store::fakebiz::Route;
use reqwest::Method;
use serde_json::{Value, json};

fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

async fn read(app: &TestApp, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    parts(app.get_as(STORE, path).await).await
}

fn list_calls(app: &TestApp, resource: &str) -> usize {
    app.biz.calls_for(resource, None)
}

#[tokio::test]
async fn a_declared_resource_has_the_whole_read_path() {
    let app = spawn_app().await;
    let (status, headers, body) = read(&app, "/api/v1/categories").await;
    assert_eq!((status, header(&headers, "x-cache")), (200, "MISS"));
    let categories = ids(&body);
    assert!(categories.len() >= 5);
    let (_, headers, again) = read(&app, "/api/v1/categories").await;
    assert_eq!((header(&headers, "x-cache"), &again), ("HIT", &body));
    let first = &categories[0];
    // An item of a complete list is served from the list's SQL rows.
    let (status, headers, item) = read(&app, &format!("/api/v1/categories/{first}")).await;
    assert_eq!((status, header(&headers, "x-cache")), (200, "HIT"));
    assert_eq!(item["data"]["id"], json!(first));
    let (status, _, _) = read(&app, "/api/v1/categories/cat_nope").await;
    assert_eq!(status, 404);

    // A webhook for it invalidates it; a purge of it too; statistics and metrics name it.
    let mut changed = item["data"].clone();
    changed["name"] = json!("Renamed");
    app.biz.upsert_item(&app.business, "categories", changed);
    let r = app
        .webhook("categories", "updated", "evt_cat_1", &app.business, first)
        .await;
    assert_eq!(r.status(), 200);
    let (_, headers, item) = read(&app, &format!("/api/v1/categories/{first}")).await;
    assert_eq!(header(&headers, "x-cache"), "MISS");
    assert_eq!(item["data"]["name"], "Renamed");
    let (_, headers, _) = read(&app, "/api/v1/categories").await;
    assert_eq!(header(&headers, "x-cache"), "MISS");

    let path = format!("/admin/v1/stores/{STORE}/cache/purge");
    let purge = json!({"resource": "categories"});
    let r = app
        .admin(Method::POST, &path, ADMIN_TOKEN, Some(&purge))
        .await;
    assert_eq!(r.status(), 200);
    let (_, headers, _) = read(&app, "/api/v1/categories").await;
    assert_eq!(header(&headers, "x-cache"), "MISS");
    let r = app
        .admin(
            Method::POST,
            &path,
            ADMIN_TOKEN,
            Some(&json!({"resource": "clients"})),
        )
        .await;
    assert_problem(r, 400, "invalid_request").await;

    let r = app
        .admin(
            Method::GET,
            &format!("/admin/v1/stores/{STORE}/cache"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    let stats: Value = r.json().await.unwrap();
    let categories_stats = &stats["data"]["categories"];
    assert!(categories_stats["misses"].as_u64().unwrap() >= 3, "{stats}");
    assert!(
        categories_stats["entries"]["sql"].as_i64().unwrap() >= 5,
        "{stats}"
    );
    for r in ["services", "products", "staff", "packages", "addons"] {
        assert!(stats["data"][r].is_object(), "{r} in {stats}");
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"resource="categories",result="HIT""#)
            || metrics.contains(r#"result="HIT",resource="categories""#),
        "metrics label the declared resource"
    );
}

#[tokio::test]
async fn a_declared_resource_survives_a_restart_in_sql_and_keeps_its_own_ttl() {
    let mut app = spawn_app().await;
    let (_, _, body) = read(&app, "/api/v1/packages").await;
    app.restart().await;
    app.biz.reset_counts();
    let (status, headers, again) = read(&app, "/api/v1/packages").await;
    assert_eq!((status, header(&headers, "x-cache")), (200, "HIT"));
    assert_eq!(again, body);
    assert_eq!(list_calls(&app, "packages"), 0, "served from SQL");
}

#[tokio::test]
async fn filters_ids_and_pages_never_ask_biz_again() {
    let app = spawn_app().await;
    let (_, _, all) = read(&app, "/api/v1/services").await;
    let (_, _, staff) = read(&app, "/api/v1/staff").await;
    let calls = (list_calls(&app, "services"), list_calls(&app, "staff"));

    // A category's services: field equality.
    let (status, headers, hair) = read(&app, "/api/v1/services?category_id=cat_hair").await;
    assert_eq!((status, header(&headers, "x-cache")), (200, "HIT"));
    let expected: Vec<String> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["category_id"] == "cat_hair")
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(expected.len() >= 2);
    assert_eq!(ids(&hair), expected);

    // Who performs a service: array membership.
    let (_, _, performers) = read(&app, "/api/v1/staff?service_ids=svc_haircut_women").await;
    let expected: Vec<String> = staff["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["service_ids"]
                .as_array()
                .unwrap()
                .contains(&json!("svc_haircut_women"))
        })
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(ids(&performers), expected);

    // Booleans compare by their JSON text; several filters must all hold; no match is [].
    let (_, _, inactive) = read(&app, "/api/v1/services?is_active=false").await;
    assert!(!ids(&inactive).is_empty());
    let (_, _, none) = read(
        &app,
        "/api/v1/services?is_active=false&category_id=cat_nope",
    )
    .await;
    assert_eq!(none, json!({"data": []}));

    // ids: in the order asked, once, unknown ones left out; composed with a filter.
    let (_, _, picked) = read(
        &app,
        "/api/v1/services?ids=svc_blowdry,svc_nope,svc_haircut_women,svc_blowdry",
    )
    .await;
    assert_eq!(ids(&picked), ["svc_blowdry", "svc_haircut_women"]);
    let (_, _, narrowed) = read(
        &app,
        "/api/v1/services?ids=svc_blowdry,svc_haircut_women&category_id=cat_hair",
    )
    .await;
    assert_eq!(ids(&narrowed), ids(&picked));

    // Pages: following next_cursor walks the whole list once, in order, then null.
    let mut walked = Vec::new();
    let mut path = "/api/v1/services?limit=7".to_string();
    let mut pages = 0;
    loop {
        let (status, headers, page) = read(&app, &path).await;
        assert_eq!((status, header(&headers, "x-cache")), (200, "HIT"));
        pages += 1;
        walked.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/services?limit=7&cursor={cursor}"),
            None => {
                assert!(page["next_cursor"].is_null());
                break;
            }
        }
    }
    assert_eq!(walked, ids(&all));
    assert_eq!(pages, ids(&all).len().div_ceil(7));

    assert_eq!(
        (list_calls(&app, "services"), list_calls(&app, "staff")),
        calls,
        "no variant asked Biz"
    );
    assert_eq!(app.biz.calls(Route::Item), 0, "nor for an item");
}

#[tokio::test]
async fn each_variant_has_its_own_etag_and_304() {
    let app = spawn_app().await;
    let (_, whole, _) = read(&app, "/api/v1/services").await;
    let (_, hair, body) = read(&app, "/api/v1/services?category_id=cat_hair").await;
    let (_, page, _) = read(&app, "/api/v1/services?limit=3").await;
    let tags = [
        header(&whole, "etag"),
        header(&hair, "etag"),
        header(&page, "etag"),
    ];
    assert!(tags.iter().all(|t| t.starts_with('"')));
    assert_ne!(tags[0], tags[1]);
    assert_ne!(tags[1], tags[2]);
    assert_eq!(header(&hair, "cache-control"), "public, no-cache");
    let r = app
        .get_with(
            "/api/v1/services?category_id=cat_hair",
            &[("X-Store-Id", STORE), ("If-None-Match", tags[1])],
        )
        .await;
    assert_eq!(r.status(), 304);
    assert_eq!(header(r.headers(), "etag"), tags[1]);
    assert_eq!(header(r.headers(), "x-cache"), "HIT");
    let r = app
        .get_with(
            "/api/v1/services?category_id=cat_hair",
            &[("X-Store-Id", STORE), ("If-None-Match", tags[0])],
        )
        .await;
    assert_eq!(r.status(), 200, "another variant's tag does not match");
    assert_eq!(r.json::<Value>().await.unwrap(), body);
}

#[tokio::test]
async fn a_filtered_read_is_fresh_after_a_webhook() {
    let app = spawn_app().await;
    let (_, _, before) = read(&app, "/api/v1/services?category_id=cat_nails").await;
    assert!(!ids(&before).contains(&"svc_blowdry".to_string()));
    let (_, _, item) = read(&app, "/api/v1/services/svc_blowdry").await;
    let mut moved = item["data"].clone();
    moved["category_id"] = json!("cat_nails");
    app.biz.upsert_item(&app.business, "services", moved);
    let r = app
        .webhook(
            "services",
            "updated",
            "evt_moved",
            &app.business,
            "svc_blowdry",
        )
        .await;
    assert_eq!(r.status(), 200);
    let (_, headers, after) = read(&app, "/api/v1/services?category_id=cat_nails").await;
    assert_eq!(header(&headers, "x-cache"), "MISS");
    assert!(ids(&after).contains(&"svc_blowdry".to_string()));
}

#[tokio::test]
async fn bad_list_queries_are_400_naming_the_parameter() {
    let app = spawn_app().await;
    for (query, code, named) in [
        ("limit=0", "invalid_request", "limit"),
        ("limit=501", "invalid_request", "limit"),
        ("limit=ten", "invalid_request", "limit"),
        ("cursor=abc", "invalid_request", "cursor"),
        ("ids=a,,b", "invalid_request", "ids"),
        (
            "category_id=a&category_id=b",
            "invalid_request",
            "category_id",
        ),
        ("Category=a", "invalid_request", "Category"),
        ("limit=5&cursor=garbled", "invalid_cursor", "cursor"),
    ] {
        let r = app
            .get_as(STORE, &format!("/api/v1/services?{query}"))
            .await;
        let body = assert_problem(r, 400, code).await;
        assert!(
            body["detail"].as_str().unwrap().contains(named),
            "{query}: {body}"
        );
    }
    let long = "v".repeat(257);
    let r = app
        .get_as(STORE, &format!("/api/v1/services?name={long}"))
        .await;
    assert_problem(r, 400, "invalid_request").await;
    let many = vec!["x"; 101].join(",");
    let r = app
        .get_as(STORE, &format!("/api/v1/services?ids={many}"))
        .await;
    assert_problem(r, 400, "invalid_request").await;

    // A cursor is bound to its store, resource, filters, ids and limit.
    let (_, _, page) = read(&app, "/api/v1/services?limit=3&category_id=cat_hair").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    app.create_store("other", &app.business).await;
    for (slug, path) in [
        (
            STORE,
            format!("/api/v1/services?limit=4&category_id=cat_hair&cursor={cursor}"),
        ),
        (
            STORE,
            format!("/api/v1/services?limit=3&category_id=cat_nails&cursor={cursor}"),
        ),
        (STORE, format!("/api/v1/services?limit=3&cursor={cursor}")),
        (
            STORE,
            format!("/api/v1/products?limit=3&category_id=cat_hair&cursor={cursor}"),
        ),
        (
            "other",
            format!("/api/v1/services?limit=3&category_id=cat_hair&cursor={cursor}"),
        ),
    ] {
        assert_problem(app.get_as(slug, &path).await, 400, "invalid_cursor").await;
    }
    let ok = format!("/api/v1/services?category_id=cat_hair&limit=3&cursor={cursor}");
    assert_eq!(app.get_as(STORE, &ok).await.status(), 200);
}

#[tokio::test]
async fn other_fixture_sets_serve_their_own_resources() {
    let app = spawn_with(Options::default().fixture_set("local-business")).await;
    // `hours` is read from Biz's `working-hours` (its declared biz_path).
    let (status, _, hours) = read(&app, "/api/v1/hours").await;
    assert_eq!(status, 200);
    assert_eq!(ids(&hours).len(), 7);
    assert_eq!(app.biz.calls_for("working-hours", None), 1);

    let app = spawn_with(Options::default().fixture_set("events")).await;
    let (_, _, schedules) = read(&app, "/api/v1/schedules").await;
    let first = &schedules["data"][0];
    let event = first["event_id"].as_str().unwrap();
    let (_, _, of_event) = read(&app, &format!("/api/v1/schedules?event_id={event}")).await;
    assert!(ids(&of_event).contains(&first["id"].as_str().unwrap().to_string()));
    let (status, _, services) = read(&app, "/api/v1/services").await;
    assert_eq!((status, services), (200, json!({"data": []})));
}
