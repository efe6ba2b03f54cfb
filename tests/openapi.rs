//! `/openapi.json` is OpenAPI 3.1 and covers exactly the routes the router has: this fails
//! when a route is added without its `#[utoipa::path]` (or a documented route disappears).

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request};
use common::*;

use tower::ServiceExt;

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// Which methods each route answers, found by asking the real router: anything but 405 means
/// the method is routed.
async fn routed(app: &TestApp) -> BTreeSet<(String, String)> {
    let router = mango_store::app::router(app.state.clone());
    let mut found = BTreeSet::new();
    for path in mango_store::app::route_paths() {
        let concrete: String = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "probe" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in METHODS {
            let request = Request::builder()
                .method(method.clone())
                .uri(&concrete)
                .body(Body::empty())
                .unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            if response.status() != 405 {
                found.insert((method.as_str().to_lowercase(), path.to_string()));
            }
        }
    }
    found
}

#[tokio::test]
async fn the_document_covers_every_route_and_only_those() {
    let app = spawn_app().await;
    let (status, headers, doc) = parts(app.get("/openapi.json").await).await;
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").starts_with("application/json"));
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "OpenAPI 3.1"
    );

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if METHODS
                .iter()
                .any(|m| m.as_str().eq_ignore_ascii_case(method))
            {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    let routed = routed(&app).await;
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from /openapi.json: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
    for required in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/api/v1/{resource}",
    ] {
        assert!(doc["paths"].get(required).is_some(), "{required}");
    }
}

#[tokio::test]
async fn every_operation_documents_its_error_answers() {
    let app = spawn_app().await;
    let (_, _, doc) = parts(app.get("/openapi.json").await).await;
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}");
            let public_ops = ["/healthz", "/metrics", "/openapi.json"];
            if !public_ops.contains(&path.as_str()) {
                let has_error = responses
                    .keys()
                    .any(|code| code.starts_with('4') || code.starts_with('5'));
                assert!(has_error, "{method} {path} documents no error answer");
            }
        }
    }
}

/// Issue 17, point 10: operationIds are unique (client generators and spec validators refuse
/// repeats; `create` and `get` were used twice each) and the document is valid against the
/// official OpenAPI 3.1 schema (`tests/openapi-3.1-schema.json`, the 2022-10-07 JSON Schema
/// published with the specification), checked with the `boon` JSON Schema 2020-12 validator.
#[tokio::test]
async fn the_document_is_valid_openapi_3_1_with_unique_operation_ids() {
    let app = spawn_app().await;
    let (_, _, doc) = parts(app.get("/openapi.json").await).await;

    let mut seen = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(
                id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && id.chars().all(|c| c.is_ascii_alphanumeric()),
                "{method} {path}: operationId {id:?} is not camelCase"
            );
            assert!(
                seen.insert(id.to_string()),
                "operationId {id:?} is used twice"
            );
        }
    }

    let schema: serde_json::Value =
        serde_json::from_str(include_str!("openapi-3.1-schema.json")).unwrap();
    let url = schema["$id"].as_str().unwrap().to_string();
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.add_resource(&url, schema).unwrap();
    let index = compiler.compile(&url, &mut schemas).unwrap();
    if let Err(err) = schemas.validate(&doc, index) {
        panic!("/openapi.json is not valid OpenAPI 3.1:\n{err:#}");
    }
    // The check can fail: a response without its description is refused.
    let mut broken = doc.clone();
    let op = &mut broken["paths"]["/healthz"]["get"];
    op["responses"]["200"]
        .as_object_mut()
        .unwrap()
        .remove("description");
    assert!(schemas.validate(&broken, index).is_err());
}

/// Issue 18: every operation has a summary and a tag; every error answer is problem+json
/// with its `code` values listed; every answer documents `x-request-id`.
#[tokio::test]
async fn every_operation_is_summarised_and_lists_its_problem_codes() {
    let app = spawn_app().await;
    let (_, _, doc) = parts(app.get("/openapi.json").await).await;
    let known_tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{at} has no summary"
            );
            let tags = op["tags"]
                .as_array()
                .unwrap_or_else(|| panic!("{at}: tags"));
            assert!(
                tags.iter()
                    .all(|t| known_tags.contains(t.as_str().unwrap())),
                "{at}: {tags:?}"
            );
            for (status, response) in op["responses"].as_object().unwrap() {
                assert!(
                    response["headers"]["x-request-id"]["required"] == true,
                    "{at} {status}: x-request-id"
                );
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                let schema = &response["content"]["application/problem+json"]["schema"];
                let codes = schema["allOf"][1]["properties"]["code"]["enum"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{at} {status} lists no problem codes"));
                assert!(!codes.is_empty(), "{at} {status}");
                if ["429", "503"].contains(&status.as_str()) {
                    assert_eq!(
                        response["headers"]["Retry-After"]["required"], true,
                        "{at} {status}"
                    );
                }
            }
        }
    }
    let draft = &doc["paths"]["/api/v1/booking/draft"]["post"]["responses"]["422"];
    let codes = draft["content"]["application/problem+json"]["schema"]["allOf"][1]["properties"]
        ["code"]["enum"]
        .to_string();
    for code in [
        "service_not_found",
        "start_in_past",
        "idempotency_key_reused",
    ] {
        assert!(codes.contains(code), "{code} in {codes}");
    }
}

/// Issue 18: the request bodies say what the service accepts; the catalog's answers name
/// their headers; links lead from what creates a store or a draft to what uses it; the CORS
/// preflights are documented.
#[tokio::test]
async fn schemas_headers_links_and_preflights_are_documented() {
    let app = spawn_app().await;
    let (_, _, doc) = parts(app.get("/openapi.json").await).await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["CreateStore"]["properties"]["slug"]["pattern"],
        "^[a-z0-9][a-z0-9-]{1,62}$"
    );
    assert_eq!(schemas["UpdateStore"]["additionalProperties"], false);
    assert_eq!(schemas["AnalyticsEvent"]["additionalProperties"], false);
    assert_eq!(
        schemas["AnalyticsEvent"]["properties"]["name"]["pattern"],
        "^[a-z][a-z0-9_]{0,63}$"
    );
    assert_eq!(
        schemas["UpdateStore"]["properties"]["custom_domain"]["anyOf"][1]["type"],
        "null"
    );
    assert!(
        schemas["CreateStore"]["properties"]["theme"]["description"]
            .as_str()
            .unwrap()
            .contains("32768 bytes")
    );
    for (name, schema) in schemas.as_object().unwrap() {
        assert!(
            schema.as_object().is_some_and(|s| !s.is_empty()),
            "{name} is a placeholder"
        );
    }

    let list = &doc["paths"]["/api/v1/{resource}"]["get"];
    let limit = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(
        (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
        (&serde_json::json!(1), &serde_json::json!(500))
    );
    let resources = list["parameters"][0]["schema"]["enum"].to_string();
    for declared in ["services", "products", "staff"] {
        assert!(resources.contains(declared), "{declared} in {resources}");
    }
    let headers = &list["responses"]["200"]["headers"];
    assert_eq!(
        headers["x-cache"]["schema"]["enum"],
        serde_json::json!(["HIT", "MISS", "STALE"])
    );
    assert!(headers["ETag"].is_object() && list["responses"]["304"].is_object());

    let link = |path: &str, method: &str, status: &str, to: &str| {
        doc["paths"][path][method]["responses"][status]["links"][to]["operationId"].clone()
    };
    assert_eq!(
        link("/admin/v1/stores", "post", "201", "getAdminStore"),
        "getAdminStore"
    );
    assert_eq!(
        link(
            "/api/v1/booking/draft",
            "post",
            "201",
            "confirmBookingDraft"
        ),
        "confirmBookingDraft"
    );

    for path in doc["paths"].as_object().unwrap().keys() {
        let preflight = &doc["paths"][path]["options"];
        assert_eq!(
            preflight.is_object(),
            path.starts_with("/api/v1/"),
            "OPTIONS {path}"
        );
    }
    let preflight = &doc["paths"]["/api/v1/store"]["options"]["responses"];
    assert!(preflight["204"]["headers"]["Access-Control-Allow-Origin"].is_object());
    assert!(preflight["403"].is_object());
}
