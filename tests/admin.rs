//! CONTRACT §10: the admin API for operators and merchants.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const ITEM: &str = "svc_haircut_women";
const OTHER_ITEM: &str = "svc_haircut_men";

/// Every route that takes a `{slug}`, with a body that would succeed.
fn store_routes(slug: &str) -> Vec<(Method, String, Option<Value>)> {
    let base = format!("/admin/v1/stores/{slug}");
    vec![
        (Method::GET, base.clone(), None),
        (
            Method::PATCH,
            base.clone(),
            Some(json!({"name": "Renamed"})),
        ),
        (Method::POST, format!("{base}/api-keys"), None),
        (Method::POST, format!("{base}/cache/purge"), Some(json!({}))),
        (Method::GET, format!("{base}/cache"), None),
        (Method::GET, format!("{base}/webhooks"), None),
        (Method::GET, format!("{base}/analytics"), None),
    ]
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let (got, _, body) = parts(response).await;
    assert_eq!(got, status, "body {body}");
    body
}

#[tokio::test]
async fn every_store_route_refuses_missing_wrong_and_foreign_credentials() {
    let app = spawn_app().await;
    let other_key = app.create_store("other", BUSINESS).await;
    for (method, path, body) in store_routes(STORE) {
        let mut request = app.client.request(method.clone(), app.url(&path));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let missing = request.send().await.unwrap();
        assert_problem(missing, 401, "unauthorized").await;
        for wrong in [
            "nope",
            "msk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            " ",
        ] {
            let r = app.admin(method.clone(), &path, wrong, body.as_ref()).await;
            assert_problem(r, 401, "unauthorized").await;
        }
        // Another store's key: as if the store did not exist.
        let r = app
            .admin(method.clone(), &path, &other_key, body.as_ref())
            .await;
        assert_problem(r, 404, "store_not_found").await;
    }
    for (method, path, body) in store_routes("no-such-store") {
        let r = app
            .admin(method.clone(), &path, ADMIN_TOKEN, body.as_ref())
            .await;
        assert_problem(r, 404, "store_not_found").await;
        let r = app
            .admin(method, &path, &app.store_key, body.as_ref())
            .await;
        assert_problem(r, 404, "store_not_found").await;
    }
    // Nothing the refused requests carried was applied: the key still works, the name stands.
    let r = app
        .admin(Method::GET, "/admin/v1/stores/salon", &app.store_key, None)
        .await;
    assert_eq!(json_of(r, 200).await["data"]["name"], "Store salon");
}

#[tokio::test]
async fn creating_stores_stays_operator_only() {
    let app = spawn_app().await;
    let body = json!({"slug": "new-one", "name": "New", "biz_business_id": BUSINESS});
    let r = app
        .admin(
            Method::POST,
            "/admin/v1/stores",
            &app.store_key,
            Some(&body),
        )
        .await;
    assert_problem(r, 403, "forbidden").await;
    let r = app
        .admin(Method::POST, "/admin/v1/stores", "wrong", Some(&body))
        .await;
    assert_problem(r, 401, "unauthorized").await;
}

#[tokio::test]
async fn the_store_reads_its_settings_with_operator_token_or_own_key() {
    let app = spawn_app().await;
    for token in [ADMIN_TOKEN, app.store_key.as_str()] {
        let r = app
            .admin(Method::GET, "/admin/v1/stores/salon", token, None)
            .await;
        let body = json_of(r, 200).await;
        let store = &body["data"];
        assert_eq!(store["slug"], "salon");
        assert_eq!(store["biz_business_id"], BUSINESS);
        assert_eq!(store["template"], "classic");
        assert_eq!(store["theme"], json!({}));
        assert_eq!(store["custom_domain"], Value::Null);
        assert_eq!(store["is_published"], false);
        assert!(store["created_at"].as_str().unwrap().ends_with('Z'));
        assert!(
            !body.to_string().contains("api_key"),
            "no key material in a read"
        );
    }
}

#[tokio::test]
async fn patch_changes_only_the_fields_sent() {
    let app = spawn_app().await;
    let theme = json!({"colors": {"primary": "#e4572e"}, "logo": "https://cdn.example/logo.png"});
    let patch = json!({"name": "  Salon Mango ", "template": "spa_2", "theme": theme, "is_published": true});
    let r = app
        .admin(
            Method::PATCH,
            "/admin/v1/stores/salon",
            &app.store_key,
            Some(&patch),
        )
        .await;
    let store = json_of(r, 200).await["data"].clone();
    assert_eq!(store["name"], "Salon Mango");
    assert_eq!(store["template"], "spa_2");
    assert_eq!(store["theme"], theme);
    assert_eq!(store["is_published"], true);

    // A later patch of one field leaves the others; echoing the unchanged slug is fine.
    let patch = json!({"slug": "salon", "is_published": false});
    let r = app
        .admin(
            Method::PATCH,
            "/admin/v1/stores/salon",
            ADMIN_TOKEN,
            Some(&patch),
        )
        .await;
    let store = json_of(r, 200).await["data"].clone();
    assert_eq!(store["is_published"], false);
    assert_eq!(store["name"], "Salon Mango");
    assert_eq!(store["theme"], theme);

    // The storefront sees the new public settings.
    let (status, _, body) = parts(app.get("/api/v1/store").await).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["template"], "spa_2");
    assert_eq!(body["data"]["theme"], theme);
}

#[tokio::test]
async fn patch_refuses_invalid_settings_and_changes_nothing() {
    let app = spawn_app().await;
    let big_theme = json!({"css": "x".repeat(32 * 1024)});
    let cases = [
        (json!({"slug": "renamed"}), "slug"),
        (json!({"biz_business_id": "biz_other"}), "biz_business_id"),
        (json!({"name": ""}), "name"),
        (json!({"name": null}), "name"),
        (json!({"template": "Not Valid"}), "template"),
        (json!({"theme": ["not", "an", "object"]}), "theme"),
        (json!({"theme": big_theme}), "theme"),
        (json!({"custom_domain": "not a host"}), "custom_domain"),
        (json!({"custom_domain": "localhost"}), "custom_domain"),
        (
            json!({"custom_domain": "other.mango.localhost"}),
            "custom_domain",
        ),
        (json!({"is_published": "yes"}), "is_published"),
        (json!({"nmae": "typo"}), "nmae"),
    ];
    for (patch, field) in cases {
        let r = app
            .admin(
                Method::PATCH,
                "/admin/v1/stores/salon",
                ADMIN_TOKEN,
                Some(&patch),
            )
            .await;
        let problem = assert_problem(r, 400, "invalid_request").await;
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{patch}: {problem}"
        );
    }
    let r = app
        .client
        .patch(app.url("/admin/v1/stores/salon"))
        .bearer_auth(ADMIN_TOKEN)
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "invalid_request").await;
    let r = app
        .admin(Method::GET, "/admin/v1/stores/salon", ADMIN_TOKEN, None)
        .await;
    let store = json_of(r, 200).await["data"].clone();
    assert_eq!(store["slug"], "salon");
    assert_eq!(store["name"], "Store salon");
    assert_eq!(store["template"], "classic");
}

#[tokio::test]
async fn a_new_custom_domain_resolves_on_the_very_next_request_and_null_clears_it() {
    let app = spawn_app().await;
    let host = [("Host", "Shop.Example.com")];
    // Looked up (and remembered as unknown) before the change.
    assert_problem(
        app.get_with("/api/v1/store", &host).await,
        404,
        "store_not_found",
    )
    .await;

    let patch = json!({"custom_domain": "Shop.Example.com"});
    let r = app
        .admin(
            Method::PATCH,
            "/admin/v1/stores/salon",
            &app.store_key,
            Some(&patch),
        )
        .await;
    assert_eq!(
        json_of(r, 200).await["data"]["custom_domain"],
        "shop.example.com"
    );
    let (status, _, body) = parts(app.get_with("/api/v1/store", &host).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["slug"], "salon");
    assert_eq!(body["data"]["custom_domain"], "shop.example.com");

    let r = app
        .admin(
            Method::PATCH,
            "/admin/v1/stores/salon",
            &app.store_key,
            Some(&json!({"custom_domain": null})),
        )
        .await;
    assert_eq!(json_of(r, 200).await["data"]["custom_domain"], Value::Null);
    assert_problem(
        app.get_with("/api/v1/store", &host).await,
        404,
        "store_not_found",
    )
    .await;
}

#[tokio::test]
async fn custom_domains_are_unique_across_stores() {
    let app = spawn_app().await;
    let other_key = app.create_store("other", BUSINESS).await;
    let patch = json!({"custom_domain": "shop.example.com"});
    let r = app
        .admin(
            Method::PATCH,
            "/admin/v1/stores/salon",
            ADMIN_TOKEN,
            Some(&patch),
        )
        .await;
    json_of(r, 200).await;
    let taken = json!({"custom_domain": "SHOP.example.com."});
    let r = app
        .admin(
            Method::PATCH,
            "/admin/v1/stores/other",
            &other_key,
            Some(&taken),
        )
        .await;
    let problem = assert_problem(r, 409, "conflict").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("custom_domain")
    );
    // Creating a store with a taken domain is refused the same way.
    let body = json!({"slug": "third", "name": "Third", "biz_business_id": BUSINESS, "custom_domain": "shop.example.com"});
    let r = app
        .admin(Method::POST, "/admin/v1/stores", ADMIN_TOKEN, Some(&body))
        .await;
    assert_problem(r, 409, "conflict").await;
    // The domain still belongs to the first store; setting it again on it is no conflict.
    let r = app
        .admin(
            Method::PATCH,
            "/admin/v1/stores/salon",
            ADMIN_TOKEN,
            Some(&patch),
        )
        .await;
    json_of(r, 200).await;
    let (_, _, body) = parts(
        app.get_with("/api/v1/store", &[("Host", "shop.example.com")])
            .await,
    )
    .await;
    assert_eq!(body["data"]["slug"], "salon");
}

#[tokio::test]
async fn a_rotated_key_replaces_the_old_one_at_once() {
    let app = spawn_app().await;
    let old = app.store_key.clone();
    let r = app
        .admin(Method::POST, "/admin/v1/stores/salon/api-keys", &old, None)
        .await;
    let body = json_of(r, 201).await;
    let new = body["api_key"].as_str().unwrap().to_string();
    assert!(new.starts_with("msk_") && new != old);
    assert_eq!(body["data"]["slug"], "salon");

    let r = app
        .admin(Method::GET, "/admin/v1/stores/salon", &old, None)
        .await;
    assert_problem(r, 401, "unauthorized").await;
    let r = app
        .admin(Method::GET, "/admin/v1/stores/salon", &new, None)
        .await;
    json_of(r, 200).await;

    // The operator can rotate too (a merchant who lost the key).
    let r = app
        .admin(
            Method::POST,
            "/admin/v1/stores/salon/api-keys",
            ADMIN_TOKEN,
            None,
        )
        .await;
    let newest = json_of(r, 201).await["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .admin(Method::GET, "/admin/v1/stores/salon", &new, None)
        .await;
    assert_problem(r, 401, "unauthorized").await;
    let r = app
        .admin(Method::GET, "/admin/v1/stores/salon/cache", &newest, None)
        .await;
    json_of(r, 200).await;
}

/// Issue 17, point 3: parallel rotations with one store key (the owner's and a leaked copy's)
/// have one winner; every other answer is 409 `conflict` (or 401 once the winner has
/// committed), so nobody is handed a key that is already dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_rotations_with_one_key_have_one_winner() {
    let app = spawn_app().await;
    let mut key = app.store_key.clone();
    // Several rounds, since a round's requests do not always overlap.
    for _ in 0..8 {
        // Open connections first, so that the rotations really overlap.
        futures::future::join_all((0..12).map(|_| app.get("/healthz"))).await;
        let rotations =
            (0..12).map(|_| app.admin(Method::POST, "/admin/v1/stores/salon/api-keys", &key, None));
        let mut winners = Vec::new();
        for response in futures::future::join_all(rotations).await {
            let (status, _, body) = parts(response).await;
            match status {
                201 => winners.push(body["api_key"].as_str().unwrap().to_string()),
                409 => assert_eq!(body["code"], "conflict", "{body}"),
                401 => assert_eq!(body["code"], "unauthorized", "{body}"),
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert_eq!(winners.len(), 1, "one rotation wins, not {winners:?}");
        key = winners.remove(0);
        let r = app
            .admin(Method::GET, "/admin/v1/stores/salon", &key, None)
            .await;
        json_of(r, 200).await;
    }

    // The operator's rotations are each conditional on the key they replace: any that
    // overlapped another answers 409, and the key the last winner answered is the live one.
    let rotations = (0..6).map(|_| {
        app.admin(
            Method::POST,
            "/admin/v1/stores/salon/api-keys",
            ADMIN_TOKEN,
            None,
        )
    });
    let mut live = 0;
    for response in futures::future::join_all(rotations).await {
        let (status, _, body) = parts(response).await;
        if status == 409 {
            assert_eq!(body["code"], "conflict", "{body}");
            continue;
        }
        assert_eq!(status, 201, "{body}");
        let key = body["api_key"].as_str().unwrap();
        let r = app
            .admin(Method::GET, "/admin/v1/stores/salon", key, None)
            .await;
        live += usize::from(r.status() == 200);
    }
    assert_eq!(live, 1);
}

async fn cached_read(app: &TestApp, path: &str) -> String {
    let (status, headers, body) = parts(app.get(path).await).await;
    assert_eq!(status, 200, "{path}: {body}");
    header(&headers, "x-cache").to_string()
}

async fn purge(app: &TestApp, body: Value) -> Value {
    let r = app
        .admin(
            Method::POST,
            "/admin/v1/stores/salon/cache/purge",
            &app.store_key,
            Some(&body),
        )
        .await;
    json_of(r, 200).await
}

#[tokio::test]
async fn purging_an_item_sends_its_next_read_back_to_biz() {
    let app = spawn_app().await;
    let item = format!("/api/v1/services/{ITEM}");
    let other = format!("/api/v1/services/{OTHER_ITEM}");
    assert_eq!(cached_read(&app, &item).await, "MISS");
    assert_eq!(cached_read(&app, &other).await, "MISS");
    assert_eq!(cached_read(&app, &item).await, "HIT");
    assert_eq!(app.biz.calls_for("services", Some(ITEM)), 1);

    let body = purge(&app, json!({"resource": "services", "id": ITEM})).await;
    assert_eq!(
        body["data"]["purged"],
        json!({"scope": "item", "resource": "services", "id": ITEM})
    );
    assert_eq!(cached_read(&app, &item).await, "MISS");
    assert_eq!(app.biz.calls_for("services", Some(ITEM)), 2);
    assert_eq!(
        cached_read(&app, &other).await,
        "HIT",
        "other items stay cached"
    );
    assert_eq!(app.biz.calls_for("services", Some(OTHER_ITEM)), 1);

    // Also gone from SQL: a restart (memory lost) still asks Biz for the purged item only.
    purge(&app, json!({"resource": "services", "id": ITEM})).await;
    let mut app = app;
    app.restart().await;
    assert_eq!(cached_read(&app, &other).await, "HIT");
    assert_eq!(cached_read(&app, &item).await, "MISS");
    assert_eq!(app.biz.calls_for("services", Some(ITEM)), 3);
}

#[tokio::test]
async fn purging_a_resource_or_the_store_covers_everything_in_it() {
    let app = spawn_app().await;
    let item = format!("/api/v1/services/{ITEM}");
    // The item first: a list fill also stores its items, which would make the item a HIT.
    for path in [item.as_str(), "/api/v1/services", "/api/v1/staff"] {
        assert_eq!(cached_read(&app, path).await, "MISS");
        assert_eq!(cached_read(&app, path).await, "HIT");
    }
    let body = purge(&app, json!({"resource": "services"})).await;
    assert_eq!(
        body["data"]["purged"],
        json!({"scope": "resource", "resource": "services"})
    );
    assert_eq!(cached_read(&app, &item).await, "MISS");
    assert_eq!(cached_read(&app, "/api/v1/services").await, "MISS");
    assert_eq!(cached_read(&app, "/api/v1/staff").await, "HIT");

    let body = purge(&app, json!({})).await;
    assert_eq!(body["data"]["purged"], json!({"scope": "store"}));
    let staff_pages = app.biz.calls_for("staff", None);
    assert_eq!(cached_read(&app, "/api/v1/staff").await, "MISS");
    assert!(app.biz.calls_for("staff", None) > staff_pages);
    assert_eq!(app.biz.calls_for("services", Some(ITEM)), 2);
    assert_eq!(cached_read(&app, &item).await, "MISS");
    assert_eq!(app.biz.calls_for("services", Some(ITEM)), 3);
}

#[tokio::test]
async fn purge_refuses_what_it_cannot_name() {
    let app = spawn_app().await;
    assert_eq!(
        cached_read(&app, &format!("/api/v1/services/{ITEM}")).await,
        "MISS"
    );
    for body in [
        json!({"resource": "clients"}),
        json!({"resource": "Services"}),
        json!({"id": ITEM}),
        json!({"resource": "services", "id": ""}),
        json!({"resource": "services", "id": "has space"}),
        json!({"everything": true}),
        json!([]),
    ] {
        let r = app
            .admin(
                Method::POST,
                "/admin/v1/stores/salon/cache/purge",
                ADMIN_TOKEN,
                Some(&body),
            )
            .await;
        assert_problem(r, 400, "invalid_request").await;
    }
    assert_eq!(
        cached_read(&app, &format!("/api/v1/services/{ITEM}")).await,
        "HIT",
        "nothing purged"
    );
}

#[tokio::test]
async fn cache_statistics_reflect_hits_misses_and_entries() {
    let app = spawn_app().await;
    let other_key = app.create_store("other", BUSINESS).await;
    let item = format!("/api/v1/services/{ITEM}");
    assert_eq!(cached_read(&app, &item).await, "MISS");
    assert_eq!(cached_read(&app, &item).await, "HIT");
    assert_eq!(cached_read(&app, &item).await, "HIT");
    assert_eq!(cached_read(&app, "/api/v1/staff").await, "MISS");

    let r = app
        .admin(
            Method::GET,
            "/admin/v1/stores/salon/cache",
            &app.store_key,
            None,
        )
        .await;
    let stats = json_of(r, 200).await["data"].clone();
    assert_eq!(stats["services"]["hits"], 2, "{stats}");
    assert_eq!(stats["services"]["misses"], 1);
    assert_eq!(stats["services"]["stale"], 0);
    assert_eq!(stats["services"]["entries"], json!({"memory": 1, "sql": 1}));
    let staff = std::fs::read_to_string(fixtures_dir().join("staff.json")).unwrap();
    let staff_count = serde_json::from_str::<Vec<Value>>(&staff).unwrap().len();
    assert_eq!(stats["staff"]["misses"], 1);
    assert_eq!(
        stats["staff"]["entries"],
        json!({"memory": 1, "sql": staff_count})
    );
    assert_eq!(
        stats["products"],
        json!({"entries": {"memory": 0, "sql": 0}, "hits": 0, "misses": 0, "stale": 0})
    );

    // Another store's statistics are its own.
    let r = app
        .admin(
            Method::GET,
            "/admin/v1/stores/other/cache",
            &other_key,
            None,
        )
        .await;
    let stats = json_of(r, 200).await["data"].clone();
    assert_eq!(stats["services"]["hits"], 0);
    assert_eq!(stats["services"]["entries"]["sql"], 0);

    // A purge empties the entries.
    purge(&app, json!({"resource": "services"})).await;
    let r = app
        .admin(
            Method::GET,
            "/admin/v1/stores/salon/cache",
            ADMIN_TOKEN,
            None,
        )
        .await;
    let stats = json_of(r, 200).await["data"].clone();
    assert_eq!(stats["services"]["entries"], json!({"memory": 0, "sql": 0}));
}

#[tokio::test]
async fn webhook_deliveries_are_listed_newest_first() {
    let app = spawn_app().await;
    app.create_store("other", "biz_other").await;
    // Real deliveries, two seconds apart on the server's clock.
    for (id, resource, event, business) in [
        ("evt_1", "services", "updated", BUSINESS),
        ("evt_2", "products", "created", BUSINESS),
        ("evt_x", "services", "updated", "biz_other"),
        ("evt_3", "staff", "deleted", BUSINESS),
    ] {
        let r = app.webhook(resource, event, id, business, "item_1").await;
        assert_eq!(r.status(), 200);
        app.clock.advance(std::time::Duration::from_secs(2));
    }
    let r = app
        .admin(
            Method::GET,
            "/admin/v1/stores/salon/webhooks",
            &app.store_key,
            None,
        )
        .await;
    let list = json_of(r, 200).await["data"].clone();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["evt_3", "evt_2", "evt_1"],
        "newest first, this store only"
    );
    assert_eq!(list[1]["type"], "products.created");
    assert_eq!(list[1]["status"], "processed");
    let received = list[1]["received_at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(received, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{received}"
    );

    let r = app
        .admin(
            Method::GET,
            "/admin/v1/stores/salon/webhooks?limit=2",
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(json_of(r, 200).await["data"].as_array().unwrap().len(), 2);
    for bad in ["0", "201", "-1", "many"] {
        let path = format!("/admin/v1/stores/salon/webhooks?limit={bad}");
        let r = app.admin(Method::GET, &path, ADMIN_TOKEN, None).await;
        assert_problem(r, 400, "invalid_request").await;
    }
}
