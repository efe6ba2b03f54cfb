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
