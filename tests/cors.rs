//! CORS (CONTRACT §14): which origins a store's answers are shared with, preflights on a
//! store's host and on a shared host, and no CORS anywhere but the storefront API.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const THEME_SITE: &str = "https://theme.example.com";

async fn allow(app: &TestApp, origins: Value) -> reqwest::Response {
    app.admin(
        Method::PATCH,
        &format!("/admin/v1/stores/{STORE}"),
        ADMIN_TOKEN,
        Some(&json!({ "allowed_origins": origins })),
    )
    .await
}

async fn preflight(app: &TestApp, path: &str, host: &str, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("Host", host)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "x-store-id")
        .send()
        .await
        .unwrap()
}

fn assert_no_cors(headers: &reqwest::header::HeaderMap, what: &str) {
    for (name, _) in headers {
        assert!(
            !name.as_str().starts_with("access-control-"),
            "{what}: unexpected {name}"
        );
    }
}

#[tokio::test]
async fn allowed_origins_are_validated_normalised_shown_and_cleared() {
    let app = spawn_app().await;
    let (status, _, body) = parts(
        allow(
            &app,
            json!(["HTTPS://Theme.Example.com:443", "http://localhost:3000"]),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["allowed_origins"],
        json!(["https://theme.example.com", "http://localhost:3000"])
    );
    let (_, _, shown) = parts(
        app.admin(
            Method::GET,
            &format!("/admin/v1/stores/{STORE}"),
            &app.store_key,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        shown["data"]["allowed_origins"].as_array().unwrap().len(),
        2
    );

    for bad in [
        json!(["https://theme.example.com/"]),
        json!(["https://theme.example.com/shop"]),
        json!(["ftp://theme.example.com"]),
        json!(["theme.example.com"]),
        json!([42]),
        json!("https://theme.example.com"),
        json!(
            (0..21)
                .map(|i| format!("https://s{i}.example.com"))
                .collect::<Vec<_>>()
        ),
    ] {
        assert_problem(allow(&app, bad.clone()).await, 400, "invalid_request").await;
    }

    let (_, _, body) = parts(allow(&app, Value::Null).await).await;
    assert_eq!(body["data"]["allowed_origins"], json!([]));
    allow(&app, json!([THEME_SITE])).await;
    let (_, _, body) = parts(allow(&app, json!([])).await).await;
    assert_eq!(body["data"]["allowed_origins"], json!([]));

    // On create too.
    let response = app
        .admin(
            Method::POST,
            "/admin/v1/stores",
            ADMIN_TOKEN,
            Some(
                &json!({"slug": "other", "name": "Other", "biz_business_id": BUSINESS,
                         "allowed_origins": ["https://x.example.com:8443"]}),
            ),
        )
        .await;
    let (status, _, body) = parts(response).await;
    assert_eq!(status, 201);
    assert_eq!(
        body["data"]["allowed_origins"],
        json!(["https://x.example.com:8443"])
    );
    let response = app
        .admin(
            Method::POST,
            "/admin/v1/stores",
            ADMIN_TOKEN,
            Some(
                &json!({"slug": "bad", "name": "Bad", "biz_business_id": BUSINESS,
                         "allowed_origins": ["https://x.example.com/"]}),
            ),
        )
        .await;
    assert_problem(response, 400, "invalid_request").await;
}

#[tokio::test]
async fn an_allowed_origin_gets_the_headers_on_every_answer_a_foreign_one_none() {
    let app = spawn_app().await;
    assert_eq!(allow(&app, json!([THEME_SITE])).await.status(), 200);

    // Allowed, written with another case and the default port.
    let (status, headers, _) = parts(
        app.get_with(
            "/api/v1/services",
            &[
                ("X-Store-Id", STORE),
                ("Origin", "https://THEME.example.com:443"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        "https://THEME.example.com:443"
    );
    assert_eq!(header(&headers, "vary"), "Origin");
    let exposed = header(&headers, "access-control-expose-headers");
    for name in ["etag", "x-cache", "x-request-id"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    assert!(headers.get("access-control-allow-credentials").is_none());

    // A 304 and an error carry them too.
    let etag = header(&headers, "etag").to_string();
    let (status, headers, _) = parts(
        app.get_with(
            "/api/v1/services",
            &[
                ("X-Store-Id", STORE),
                ("Origin", THEME_SITE),
                ("If-None-Match", &etag),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 304);
    assert_eq!(header(&headers, "access-control-allow-origin"), THEME_SITE);
    let response = app
        .get_with(
            "/api/v1/services/svc_nope",
            &[("X-Store-Id", STORE), ("Origin", THEME_SITE)],
        )
        .await;
    assert_eq!(
        header(response.headers(), "access-control-allow-origin"),
        THEME_SITE
    );
    assert_problem(response, 404, "not_found").await;

    // A booking error and an analytics answer (POSTs) too.
    let response = app
        .client
        .post(app.url("/api/v1/booking/draft"))
        .header("X-Store-Id", STORE)
        .header("Origin", THEME_SITE)
        .json(
            &json!({"service_id": "svc_nope", "start_at": "2030-01-01T10:00:00Z",
                      "customer": {"name": "A", "phone": "+1"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(response.headers(), "access-control-allow-origin"),
        THEME_SITE
    );
    assert_eq!(response.status(), 422);

    // A foreign origin: served, but with no Access-Control-* headers; Vary all the same.
    let (status, headers, _) = parts(
        app.get_with(
            "/api/v1/services",
            &[
                ("X-Store-Id", STORE),
                ("Origin", "https://evil.example.com"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_no_cors(&headers, "foreign origin");
    assert_eq!(header(&headers, "vary"), "Origin");

    // An unknown store: no CORS either.
    let response = app
        .get_with(
            "/api/v1/services",
            &[("X-Store-Id", "nobody"), ("Origin", THEME_SITE)],
        )
        .await;
    assert_no_cors(response.headers(), "unknown store");

    // No Origin: no CORS work at all, not even Vary.
    let response = app.get("/api/v1/services").await;
    assert!(response.headers().get("vary").is_none());
    assert_no_cors(response.headers(), "no origin");
}

#[tokio::test]
async fn the_stores_own_site_is_always_allowed() {
    let app = spawn_app().await;
    let response = app
        .admin(
            Method::PATCH,
            &format!("/admin/v1/stores/{STORE}"),
            ADMIN_TOKEN,
            Some(&json!({"custom_domain": "shop.example.com"})),
        )
        .await;
    assert_eq!(response.status(), 200);
    for origin in [
        "http://salon.mango.localhost:8080",
        "https://salon.mango.localhost",
        "https://shop.example.com",
        "http://Shop.Example.com:3000",
    ] {
        let response = app
            .get_with(
                "/api/v1/store",
                &[("X-Store-Id", STORE), ("Origin", origin)],
            )
            .await;
        assert_eq!(
            header(response.headers(), "access-control-allow-origin"),
            origin
        );
    }
    for origin in [
        "http://other.mango.localhost",
        "https://example.com",
        "null",
    ] {
        let response = app
            .get_with(
                "/api/v1/store",
                &[("X-Store-Id", STORE), ("Origin", origin)],
            )
            .await;
        assert_no_cors(response.headers(), origin);
    }
}

#[tokio::test]
async fn preflights_on_a_store_host_and_on_a_shared_host() {
    let app = spawn_app().await;
    allow(&app, json!([THEME_SITE])).await;
    app.create_store("other", BUSINESS).await;

    // The store the Host names allows the origin.
    let response = preflight(
        &app,
        "/api/v1/services",
        "salon.mango.localhost:8080",
        THEME_SITE,
    )
    .await;
    assert_eq!(response.status(), 204);
    let h = response.headers();
    assert_eq!(header(h, "access-control-allow-origin"), THEME_SITE);
    assert_eq!(
        header(h, "access-control-allow-methods"),
        "GET, POST, DELETE"
    );
    let allowed = header(h, "access-control-allow-headers");
    for name in [
        "content-type",
        "idempotency-key",
        "if-none-match",
        "x-store-id",
        "x-request-id",
    ] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert_eq!(header(h, "access-control-max-age"), "600");
    assert_eq!(header(h, "vary"), "Origin");
    assert!(h.get("access-control-allow-credentials").is_none());

    // Its own site, on a POST route.
    let response = preflight(
        &app,
        "/api/v1/booking/draft",
        "salon.mango.localhost",
        "https://salon.mango.localhost",
    )
    .await;
    assert_eq!(response.status(), 204);

    // Another store's host does not allow it: 403 without CORS headers.
    let response = preflight(
        &app,
        "/api/v1/services",
        "other.mango.localhost",
        THEME_SITE,
    )
    .await;
    assert_no_cors(response.headers(), "other store");
    assert_problem(response, 403, "origin_not_allowed").await;

    // An unknown store's host: 403.
    let response = preflight(
        &app,
        "/api/v1/services",
        "ghost.mango.localhost",
        THEME_SITE,
    )
    .await;
    assert_problem(response, 403, "origin_not_allowed").await;

    // A shared API host (names no store): allowed when some store allows the origin, or it is
    // some store's own site.
    for origin in [THEME_SITE, "http://other.mango.localhost:5173"] {
        let response = preflight(&app, "/api/v1/services/svc_1", "api.example.net", origin).await;
        assert_eq!(response.status(), 204, "{origin}");
        assert_eq!(
            header(response.headers(), "access-control-allow-origin"),
            origin
        );
    }
    let response = preflight(
        &app,
        "/api/v1/services",
        "api.example.net",
        "https://evil.example.com",
    )
    .await;
    assert_no_cors(response.headers(), "shared host, foreign origin");
    assert_problem(response, 403, "origin_not_allowed").await;

    // An OPTIONS that is no preflight stays 405, on storefront and other routes alike.
    let response = app
        .client
        .request(Method::OPTIONS, app.url("/api/v1/services"))
        .header("X-Store-Id", STORE)
        .header("Origin", THEME_SITE)
        .send()
        .await
        .unwrap();
    assert_problem(response, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn admin_webhooks_and_operations_answer_no_cors() {
    let app = spawn_app().await;
    allow(&app, json!([THEME_SITE])).await;
    for (method, path) in [
        (Method::GET, format!("/admin/v1/stores/{STORE}")),
        (Method::POST, "/webhooks/services/updated".to_string()),
        (Method::GET, "/healthz".to_string()),
        (Method::GET, "/readyz".to_string()),
        (Method::GET, "/metrics".to_string()),
        (Method::GET, "/openapi.json".to_string()),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(&path))
            .bearer_auth(ADMIN_TOKEN)
            .header("Origin", THEME_SITE)
            .header("X-Store-Id", STORE)
            .send()
            .await
            .unwrap();
        assert_no_cors(response.headers(), &path);
        let response = app
            .client
            .request(Method::OPTIONS, app.url(&path))
            .header("Origin", THEME_SITE)
            .header("Host", "salon.mango.localhost")
            .header("Access-Control-Request-Method", method.as_str())
            .send()
            .await
            .unwrap();
        assert_no_cors(response.headers(), &path);
        assert_problem(response, 405, "method_not_allowed").await;
    }
}
