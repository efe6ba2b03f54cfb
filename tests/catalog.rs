//! CONTRACT §5: the catalog read path and its caching rules, each with a test that fails
//! without it.

mod common;

use std::time::Duration;

use common::*;
use futures::future::join_all;
use mango_store::db::Scope;
use mango_store::fakebiz::{Failure, Route};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures_dir().join(name)).unwrap()).unwrap()
}

fn names(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

const SERVICE: &str = "svc_haircut_women";

async fn store_id(app: &TestApp) -> i64 {
    app.state.db.store_by_slug(STORE).await.unwrap().unwrap().id
}

#[tokio::test]
async fn lists_join_every_page_in_biz_order_then_hit() {
    let app = spawn_app().await;
    let (status, headers, body) = parts(app.get("/api/v1/services").await).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-cache"), "MISS");
    assert_eq!(header(&headers, "content-type"), "application/json");
    let services = fixture("services.json");
    assert_eq!(body["data"], services, "every item, unchanged, in order");
    let pages = services.as_array().unwrap().len().div_ceil(8);
    assert!(pages >= 3, "the fixtures span several pages");
    assert_eq!(app.biz.calls_for("services", None), pages);

    let (status, headers, again) = parts(app.get("/api/v1/services").await).await;
    assert_eq!((status, header(&headers, "x-cache")), (200, "HIT"));
    assert_eq!(again, body);
    assert_eq!(
        app.biz.calls_for("services", None),
        pages,
        "a HIT asks Biz nothing"
    );

    for (resource, file) in [("staff", "staff.json"), ("products", "products.json")] {
        let (status, _, body) = parts(app.get(&format!("/api/v1/{resource}")).await).await;
        assert_eq!(status, 200);
        assert_eq!(body["data"], fixture(file));
    }
}

#[tokio::test]
async fn items_pass_through_unchanged() {
    let app = spawn_app().await;
    let expected = fixture("services.json")
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == SERVICE)
        .cloned()
        .unwrap();
    let (status, headers, body) =
        parts(app.get(&format!("/api/v1/services/{SERVICE}")).await).await;
    assert_eq!((status, header(&headers, "x-cache")), (200, "MISS"));
    assert_eq!(body, json!({"data": expected}));
    let (_, headers, _) = parts(app.get(&format!("/api/v1/services/{SERVICE}")).await).await;
    assert_eq!(header(&headers, "x-cache"), "HIT");
    assert_eq!(app.biz.calls_for("services", Some(SERVICE)), 1);
}

#[tokio::test]
async fn concurrent_misses_make_one_biz_call() {
    let app = spawn_app().await;
    // Slow enough that all 200 requests arrive while the first fill is in flight.
    app.biz.set_delay(Route::List, Duration::from_millis(300));
    let requests = (0..200).map(|_| app.get("/api/v1/products"));
    let responses = join_all(requests).await;
    let mut bodies = Vec::new();
    for response in responses {
        let (status, _, body) = parts(response).await;
        assert_eq!(status, 200);
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    let pages = fixture("products.json")
        .as_array()
        .unwrap()
        .len()
        .div_ceil(8);
    assert_eq!(
        app.biz.calls_for("products", None),
        pages,
        "one fill for 200 misses"
    );

    // Same for an item.
    app.biz.set_delay(Route::Item, Duration::from_millis(300));
    let responses = join_all((0..200).map(|_| app.get("/api/v1/staff/stf_aigerim"))).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert!(statuses.iter().all(|s| *s == statuses[0]));
    assert_eq!(app.biz.calls_for("staff", Some("stf_aigerim")), 1);
}

#[tokio::test]
async fn a_client_that_gives_up_does_not_stall_the_key() {
    let app = spawn_app().await;
    app.biz.set_delay(Route::List, Duration::from_millis(400));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let gave_up = impatient
        .get(app.url("/api/v1/services"))
        .header("X-Store-Id", STORE)
        .send()
        .await;
    assert!(gave_up.is_err(), "the first client times out");
    // The fill goes on without it; the next reader joins or finds its result.
    let (status, _, body) = parts(app.get("/api/v1/services").await).await;
    assert_eq!(status, 200);
    assert!(!body["data"].as_array().unwrap().is_empty());
    let pages = fixture("services.json")
        .as_array()
        .unwrap()
        .len()
        .div_ceil(8);
    assert_eq!(
        app.biz.calls_for("services", None),
        pages,
        "the abandoned fill was not restarted"
    );
}

/// Rule 2: a fill that began before an invalidation is never served or stored after it —
/// in memory, and in SQL (checked after a restart with Biz down).
#[tokio::test]
async fn a_fill_racing_an_invalidation_is_never_stored() {
    let mut app = spawn_app().await;
    let id = store_id(&app).await;
    app.biz.set_delay(Route::List, Duration::from_millis(800));
    let slow = {
        let (client, url) = (app.client.clone(), app.url("/api/v1/services"));
        tokio::spawn(async move {
            client
                .get(url)
                .header("X-Store-Id", STORE)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    assert!(
        eventually(Duration::from_secs(2), || async {
            app.biz.calls_for("services", None) >= 1
        })
        .await
    );

    // Biz changes while the slow fill is in flight, and says so.
    let mut changed = fixture("services.json")[0].clone();
    changed["name"] = json!("Renamed while the fill was in flight");
    app.biz.upsert_item(BUSINESS, "services", changed.clone());
    app.biz.set_delay(Route::List, Duration::ZERO);
    app.state
        .catalog
        .invalidate(
            id,
            &Scope::Item(
                mango_store::domain::Resources::defaults().services(),
                changed["id"].as_str().unwrap().into(),
            ),
        )
        .await
        .unwrap();

    let (_, headers, fresh) = parts(app.get("/api/v1/services").await).await;
    assert_eq!(
        header(&headers, "x-cache"),
        "MISS",
        "a new read does not join the old fill"
    );
    assert_eq!(names(&fresh)[0], "Renamed while the fill was in flight");

    let old = slow.await.unwrap();
    assert_ne!(
        names(&old)[0],
        "Renamed while the fill was in flight",
        "the slow read began before"
    );
    // The slow fill finished after the invalidation: it must not have replaced the fresh copy.
    let (_, headers, after) = parts(app.get("/api/v1/services").await).await;
    assert_eq!(header(&headers, "x-cache"), "HIT");
    assert_eq!(after, fresh);

    // Nor in SQL: with memory gone and Biz down, what SQL serves is the fresh list.
    app.restart().await;
    app.biz.set_failure(Route::List, Failure::ServerError);
    let (status, headers, from_sql) = parts(app.get("/api/v1/services").await).await;
    assert_eq!((status, header(&headers, "x-cache")), (200, "HIT"));
    assert_eq!(from_sql, fresh);
}

#[tokio::test]
async fn invalidation_drops_item_and_list_for_that_store_only() {
    let app = spawn_app().await;
    let other_key = app.create_store("other", BUSINESS).await;
    assert!(other_key.starts_with("msk_"));
    for slug in [STORE, "other"] {
        app.get_as(slug, "/api/v1/services").await;
        app.get_as(slug, &format!("/api/v1/services/{SERVICE}"))
            .await;
    }
    let list_calls = app.biz.calls_for("services", None);
    let item_calls = app.biz.calls_for("services", Some(SERVICE));

    let id = store_id(&app).await;
    app.state
        .catalog
        .invalidate(
            id,
            &Scope::Item(
                mango_store::domain::Resources::defaults().services(),
                SERVICE.into(),
            ),
        )
        .await
        .unwrap();
    let cache = |r: reqwest::Response| header(r.headers(), "x-cache").to_string();
    assert_eq!(
        cache(app.get(&format!("/api/v1/services/{SERVICE}")).await),
        "MISS"
    );
    assert_eq!(cache(app.get("/api/v1/services").await), "MISS");
    assert_eq!(
        cache(app.get_as("other", "/api/v1/services").await),
        "HIT",
        "another store is untouched"
    );
    assert_eq!(
        cache(
            app.get_as("other", &format!("/api/v1/services/{SERVICE}"))
                .await
        ),
        "HIT"
    );
    assert!(app.biz.calls_for("services", None) > list_calls);
    assert_eq!(app.biz.calls_for("services", Some(SERVICE)), item_calls + 1);

    // A whole-store invalidation reaches every resource.
    app.get("/api/v1/staff").await;
    app.state
        .catalog
        .invalidate(id, &Scope::Store)
        .await
        .unwrap();
    assert_eq!(cache(app.get("/api/v1/staff").await), "MISS");
}

#[tokio::test]
async fn biz_down_after_warm_up_serves_stale_then_gives_up_past_the_window() {
    let app = spawn_with(
        Options::default()
            .set("MANGO_CACHE_TTL_SECS", 60)
            .set("MANGO_CACHE_STALE_SECS", 600),
    )
    .await;
    let (_, _, warm) = parts(app.get("/api/v1/services").await).await;
    app.biz.set_failure(Route::List, Failure::ServerError);

    app.clock.advance(Duration::from_secs(61));
    let before = app.biz.calls(Route::List);
    let (status, headers, stale) = parts(app.get("/api/v1/services").await).await;
    assert_eq!((status, header(&headers, "x-cache")), (200, "STALE"));
    assert_eq!(stale, warm);
    assert_eq!(app.biz.calls(Route::List), before + 1, "Biz was asked once");
    // Right after a failed refresh, readers get the stale copy without waiting on Biz again.
    let (_, headers, _) = parts(app.get("/api/v1/services").await).await;
    assert_eq!(header(&headers, "x-cache"), "STALE");
    assert_eq!(app.biz.calls(Route::List), before + 1);

    // Past TTL + stale window there is nothing to serve.
    app.clock.advance(Duration::from_secs(600));
    let body = assert_problem(
        app.get("/api/v1/services").await,
        503,
        "upstream_unavailable",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("cannot be reached")
    );

    // Biz back: fresh again.
    app.biz.set_failure(Route::List, Failure::None);
    let (status, headers, _) = parts(app.get("/api/v1/services").await).await;
    assert_eq!((status, header(&headers, "x-cache")), (200, "MISS"));
}

#[tokio::test]
async fn every_kind_of_biz_failure_serves_stale() {
    let app = spawn_with(
        Options::default()
            .set("MANGO_CACHE_TTL_SECS", 1)
            .set("MANGO_BIZ_TIMEOUT_MS", 300),
    )
    .await;
    app.get(&format!("/api/v1/services/{SERVICE}")).await;
    for failure in [
        Failure::ServerError,
        Failure::Unavailable,
        Failure::Hang,
        Failure::Garbage,
        Failure::Unauthorized,
    ] {
        app.clock.advance(Duration::from_secs(10));
        app.biz.fail_next(Route::Item, 1, failure);
        let (status, headers, body) =
            parts(app.get(&format!("/api/v1/services/{SERVICE}")).await).await;
        assert_eq!(
            (status, header(&headers, "x-cache")),
            (200, "STALE"),
            "{failure:?}"
        );
        assert_eq!(body["data"]["id"], SERVICE);
    }
}

#[tokio::test]
async fn nothing_cached_and_biz_down_is_503_with_retry_after() {
    let app = spawn_with(Options::default().set("MANGO_BIZ_TIMEOUT_MS", 200)).await;
    app.biz.set_failure(Route::List, Failure::Hang);
    let response = app.get("/api/v1/staff").await;
    let retry_after = header(response.headers(), "retry-after").to_string();
    assert_problem(response, 503, "upstream_unavailable").await;
    assert!(retry_after.parse::<u64>().unwrap() > 0);
    // Not remembered: when Biz is back, the next read works.
    app.biz.set_failure(Route::List, Failure::None);
    assert_eq!(app.get("/api/v1/staff").await.status(), 200);
}

#[tokio::test]
async fn biz_404_is_remembered_briefly() {
    let app = spawn_app().await;
    assert_problem(app.get("/api/v1/services/svc_nope").await, 404, "not_found").await;
    let response = app.get("/api/v1/services/svc_nope").await;
    assert_eq!(header(response.headers(), "x-cache"), "HIT");
    assert_problem(response, 404, "not_found").await;
    assert_eq!(app.biz.calls_for("services", Some("svc_nope")), 1);

    // The item appears in Biz; after the negative entry's ~30 s it is found.
    let mut item = fixture("services.json")[0].clone();
    item["id"] = json!("svc_nope");
    app.biz.upsert_item(BUSINESS, "services", item);
    app.clock.advance(Duration::from_secs(31));
    let (status, _, body) = parts(app.get("/api/v1/services/svc_nope").await).await;
    assert_eq!(
        (status, body["data"]["id"].as_str()),
        (200, Some("svc_nope"))
    );
    assert_eq!(app.biz.calls_for("services", Some("svc_nope")), 2);
}

#[tokio::test]
async fn restart_with_biz_down_serves_from_sql_without_asking_biz() {
    let mut app = spawn_app().await;
    let (_, _, list) = parts(app.get("/api/v1/services").await).await;
    let (_, _, item) = parts(app.get("/api/v1/staff/stf_aigerim").await).await;
    app.restart().await;
    app.biz.set_failure(Route::List, Failure::ServerError);
    app.biz.set_failure(Route::Item, Failure::ServerError);
    app.biz.reset_counts();

    let (status, headers, from_sql) = parts(app.get("/api/v1/services").await).await;
    assert_eq!((status, header(&headers, "x-cache")), (200, "HIT"));
    assert_eq!(from_sql, list);
    let (status, _, from_sql) = parts(app.get("/api/v1/staff/stf_aigerim").await).await;
    assert_eq!(status, 200);
    assert_eq!(from_sql, item);
    // An item of a complete list is served from the list's rows too.
    let (status, _, _) = parts(app.get(&format!("/api/v1/services/{SERVICE}")).await).await;
    assert_eq!(status, 200);
    assert_eq!(app.biz.calls(Route::List) + app.biz.calls(Route::Item), 0);
}

#[tokio::test]
async fn an_evicted_key_is_served_from_sql_not_biz() {
    let app = spawn_with(Options::default().set("MANGO_CACHE_MAX_ENTRIES", 2)).await;
    let ids: Vec<String> = fixture("services.json")
        .as_array()
        .unwrap()
        .iter()
        .take(12)
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        assert_eq!(
            app.get(&format!("/api/v1/services/{id}")).await.status(),
            200
        );
    }
    app.state.catalog.run_pending_tasks().await;
    let before = app.biz.calls(Route::Item);
    assert_eq!(before, ids.len());
    for id in &ids {
        let response = app.get(&format!("/api/v1/services/{id}")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(response.headers(), "x-cache"), "HIT");
    }
    assert_eq!(
        app.biz.calls(Route::Item),
        before,
        "evicted keys came back from SQL"
    );
    app.state.catalog.run_pending_tasks().await;
    assert!(
        app.state
            .catalog
            .stats(store_id(&app).await)
            .iter()
            .map(|s| s.memory_entries)
            .sum::<u64>()
            <= 2
    );
}

#[tokio::test]
async fn etag_and_if_none_match() {
    let app = spawn_app().await;
    let (_, headers, body) = parts(app.get("/api/v1/products").await).await;
    let etag = header(&headers, "etag").to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"),
        "strong: {etag}"
    );
    assert_eq!(header(&headers, "cache-control"), "public, no-cache");

    let response = app
        .get_with(
            "/api/v1/products",
            &[("X-Store-Id", STORE), ("If-None-Match", &etag)],
        )
        .await;
    assert_eq!(response.status(), 304);
    assert_eq!(header(response.headers(), "etag"), etag);
    assert_eq!(
        header(response.headers(), "cache-control"),
        "public, no-cache"
    );
    assert!(response.bytes().await.unwrap().is_empty());

    let response = app
        .get_with(
            "/api/v1/products",
            &[("X-Store-Id", STORE), ("If-None-Match", "\"other\"")],
        )
        .await;
    assert_eq!(response.status(), 200);

    // The same bytes after a restart (rebuilt from SQL) carry the same ETag.
    let mut app = app;
    app.restart().await;
    let (_, headers, again) = parts(app.get("/api/v1/products").await).await;
    assert_eq!(header(&headers, "etag"), etag);
    assert_eq!(again, body);

    // A change in Biz, once invalidated, changes the ETag.
    let id = store_id(&app).await;
    let mut product = fixture("products.json")[0].clone();
    product["stock"] = json!(0);
    app.biz.upsert_item(BUSINESS, "products", product);
    app.state
        .catalog
        .invalidate(
            id,
            &Scope::Resource(mango_store::domain::Resources::defaults().products()),
        )
        .await
        .unwrap();
    let response = app
        .get_with(
            "/api/v1/products",
            &[("X-Store-Id", STORE), ("If-None-Match", &etag)],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_ne!(header(response.headers(), "etag"), etag);
}

#[tokio::test]
async fn tenants_resolve_from_host_custom_domain_and_header() {
    let app = spawn_app().await;
    let created = app
        .admin(
            reqwest::Method::POST,
            "/admin/v1/stores",
            ADMIN_TOKEN,
            Some(&json!({"slug": "spa", "name": "Spa", "biz_business_id": BUSINESS, "custom_domain": "Shop.Example.com"})),
        )
        .await;
    assert_eq!(created.status(), 201);

    let store = |headers: &[(&str, &str)]| {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let app = &app;
        async move {
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let (status, _, body) = parts(app.get_with("/api/v1/store", &h).await).await;
            (
                status,
                body["data"]["slug"].as_str().unwrap_or("").to_string(),
            )
        }
    };
    assert_eq!(
        store(&[("Host", "salon.mango.localhost")]).await,
        (200, "salon".into())
    );
    assert_eq!(
        store(&[("Host", "salon.mango.localhost:8080")]).await,
        (200, "salon".into())
    );
    assert_eq!(
        store(&[("Host", "shop.example.com")]).await,
        (200, "spa".into())
    );
    assert_eq!(
        store(&[("Host", "shop.example.com:443")]).await,
        (200, "spa".into())
    );
    assert_eq!(
        store(&[("Host", "shop.example.com"), ("X-Store-Id", "salon")]).await,
        (200, "salon".into()),
        "the header wins"
    );

    for headers in [
        vec![("Host", "nobody.mango.localhost")],
        vec![("Host", "unknown.example.org")],
        vec![("X-Store-Id", "nobody")],
        vec![("X-Store-Id", "../etc")],
        vec![("Host", "salon.mango.localhost"), ("X-Store-Id", "nobody")],
    ] {
        assert_problem(
            app.get_with("/api/v1/services", &headers).await,
            404,
            "store_not_found",
        )
        .await;
    }
    let (status, _, body) = parts(
        app.get_with("/api/v1/store", &[("Host", "shop.example.com")])
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["custom_domain"], "shop.example.com");
    assert_eq!(body["data"]["template"], "classic");
    assert!(body["data"]["theme"].is_object());
    assert!(
        body["data"].get("biz_business_id").is_none(),
        "public settings only"
    );
}

#[tokio::test]
async fn bad_paths_and_ids_are_clean_problems() {
    let app = spawn_app().await;
    assert_problem(app.get("/api/v1/clients").await, 404, "not_found").await;
    assert_problem(app.get("/api/v1/clients/c1").await, 404, "not_found").await;
    let long = "x".repeat(10_000);
    assert_problem(
        app.get(&format!("/api/v1/services/{long}")).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get("/api/v1/services/%FF%FE").await,
        400,
        "invalid_request",
    )
    .await;
    assert_problem(app.get("/api/v1/services/a%20b").await, 404, "not_found").await;
    assert_eq!(
        app.biz.calls(Route::Item),
        0,
        "implausible ids never reach Biz"
    );
    // Ids that need encoding upstream are passed as one path segment.
    assert_problem(
        app.get("/api/v1/services/..%2F..%2Fadmin").await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(app.biz.calls_for("services", Some("../../admin")), 1);

    assert_problem(app.get("/nowhere").await, 404, "not_found").await;
    let response = app
        .client
        .delete(app.url("/api/v1/services"))
        .header("X-Store-Id", STORE)
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("allow").is_some());
    assert_problem(response, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = spawn_app().await;
    let response = app
        .get_with(
            "/api/v1/services",
            &[("X-Store-Id", STORE), ("x-request-id", "abc-123")],
        )
        .await;
    assert_eq!(header(response.headers(), "x-request-id"), "abc-123");
    let response = app.get("/nowhere").await;
    let generated = header(response.headers(), "x-request-id").to_string();
    assert_eq!(generated.len(), 32);
    let response = app
        .get_with("/healthz", &[("x-request-id", &"y".repeat(500))])
        .await;
    assert_eq!(
        header(response.headers(), "x-request-id").len(),
        32,
        "an oversized id is replaced"
    );
}

#[tokio::test]
async fn admin_create_store_refuses_bad_input_without_a_500() {
    let app = spawn_app().await;
    let post = |body: String, token: &'static str, content_type: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/admin/v1/stores"))
                .bearer_auth(token)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let ok = json!({"slug": "new-salon", "name": "New", "biz_business_id": "biz_x"}).to_string();
    assert_problem(
        post(ok.clone(), "wrong", "application/json").await,
        401,
        "unauthorized",
    )
    .await;
    assert_problem(
        post("{not json".into(), ADMIN_TOKEN, "application/json").await,
        400,
        "invalid_request",
    )
    .await;
    assert_problem(
        post(ok.clone(), ADMIN_TOKEN, "text/plain").await,
        400,
        "invalid_request",
    )
    .await;
    let missing = assert_problem(
        post(r#"{"slug":"abc"}"#.into(), ADMIN_TOKEN, "application/json").await,
        400,
        "invalid_request",
    )
    .await;
    assert!(
        missing["detail"].as_str().unwrap().contains("name"),
        "{missing}"
    );
    assert_problem(
        post(
            r#"{"slug":5,"name":"x","biz_business_id":"b"}"#.into(),
            ADMIN_TOKEN,
            "application/json",
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    for bad in [
        json!({"slug": "Bad Slug", "name": "x", "biz_business_id": "b"}),
        json!({"slug": "ok-slug", "name": "", "biz_business_id": "b"}),
        json!({"slug": "ok-slug", "name": "x", "biz_business_id": "b", "theme": [1, 2]}),
        json!({"slug": "ok-slug", "name": "x", "biz_business_id": "b", "custom_domain": "not a host"}),
        json!({"slug": "ok-slug", "name": "x", "biz_business_id": "b", "theme": {"big": "x".repeat(33 * 1024)}}),
    ] {
        assert_problem(
            post(bad.to_string(), ADMIN_TOKEN, "application/json").await,
            400,
            "invalid_request",
        )
        .await;
    }
    let huge = json!({"slug": "ok-slug", "name": "x", "biz_business_id": "b", "theme": {"big": "x".repeat(300 * 1024)}});
    assert_problem(
        post(huge.to_string(), ADMIN_TOKEN, "application/json").await,
        413,
        "payload_too_large",
    )
    .await;

    assert_eq!(
        post(ok.clone(), ADMIN_TOKEN, "application/json")
            .await
            .status(),
        201
    );
    assert_problem(
        post(ok, ADMIN_TOKEN, "application/json").await,
        409,
        "conflict",
    )
    .await;
    // A store key may not create stores.
    let created = json!({"slug": "by-key", "name": "x", "biz_business_id": "b"}).to_string();
    let key: &'static str = Box::leak(app.store_key.clone().into_boxed_str());
    assert_eq!(post(created, key, "application/json").await.status(), 403);
}

#[tokio::test]
async fn stores_sharing_a_business_have_separate_caches() {
    let app = spawn_app().await;
    app.create_store("twin", BUSINESS).await;
    app.get("/api/v1/services").await;
    let (_, headers, _) = parts(app.get_as("twin", "/api/v1/services").await).await;
    assert_eq!(
        header(&headers, "x-cache"),
        "MISS",
        "every cache key is scoped by store"
    );
}
