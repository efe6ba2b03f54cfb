//! Every route against bad input: malformed and mistyped JSON, wrong content types, huge
//! bodies, hostile ids, unknown stores, with and without credentials. Nothing may answer 5xx
//! (the fake Biz is healthy, so an upstream excuse does not apply), and every error is
//! problem+json with a code.

mod common;

use common::*;
use reqwest::Method;

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

fn concrete(pattern: &str, id: &str) -> String {
    pattern
        .split('/')
        .map(|seg| if seg.starts_with('{') { id } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn no_route_answers_5xx_or_a_non_problem_error_to_hostile_input() {
    let app = spawn_app().await;
    let long_id = "x".repeat(10_000);
    let ids = [
        "probe",
        "salon",
        "services",
        "..%2F..",
        "%00",
        "%FF%FE",
        "a%20b",
        long_id.as_str(),
        "drf_00000000000000000000000000000000",
    ];
    let huge = format!("{{\"name\":\"{}\"}}", "a".repeat(300 * 1024));
    let bodies: Vec<(Option<&str>, String)> = vec![
        (None, String::new()),
        (Some("application/json"), "{not json".into()),
        (Some("application/json"), "[1,2,3]".into()),
        (Some("application/json"), "\"a string\"".into()),
        (
            Some("application/json"),
            "{\"service_id\":5,\"slug\":[],\"name\":{}}".into(),
        ),
        (Some("application/json"), "{}".into()),
        (Some("text/plain"), "{}".into()),
        (Some("application/json"), huge),
    ];
    let auths = [
        None,
        Some(ADMIN_TOKEN),
        Some("wrong-token"),
        Some(app.store_key.as_str()),
    ];
    let stores = [Some(STORE), Some("nobody"), None];
    let mut checked = 0;
    for pattern in mango_store::app::route_paths() {
        for id in ids {
            let path = concrete(pattern, id);
            for method in METHODS {
                for (i, (content_type, body)) in bodies.iter().enumerate() {
                    // Every body with one auth/store pairing, every auth/store with one body.
                    let combos: Vec<(Option<&str>, Option<&str>)> = if i == 0 {
                        auths
                            .iter()
                            .flat_map(|a| stores.iter().map(move |s| (*a, *s)))
                            .collect()
                    } else {
                        vec![(Some(ADMIN_TOKEN), Some(STORE))]
                    };
                    for (auth, store) in combos {
                        let mut request = app.client.request(method.clone(), app.url(&path));
                        if let Some(ct) = content_type {
                            request = request.header("content-type", *ct);
                        }
                        if let Some(token) = auth {
                            request = request.bearer_auth(token);
                        }
                        if let Some(slug) = store {
                            request = request.header("X-Store-Id", slug);
                        }
                        let response = request.body(body.clone()).send().await.unwrap();
                        let status = response.status().as_u16();
                        let ct = header(response.headers(), "content-type").to_string();
                        assert!(!header(response.headers(), "x-request-id").is_empty());
                        let text = response.text().await.unwrap_or_default();
                        assert!(
                            status < 500,
                            "{method} {path} ({content_type:?}, body #{i}) -> {status}: {text}"
                        );
                        if status >= 400 {
                            assert_eq!(
                                ct, "application/problem+json",
                                "{method} {path} -> {status}: {text}"
                            );
                            let problem: serde_json::Value = serde_json::from_str(&text).unwrap();
                            assert!(
                                problem["code"].as_str().is_some_and(|c| !c.is_empty()),
                                "{text}"
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "{checked} requests checked");
    // And the service is still up.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

/// Issue 17, point 7: when Biz answers 401 or 500 with a body, the public problem+json says
/// what the client can do and nothing of Biz's answer or of our Biz credentials.
#[tokio::test]
async fn upstream_failures_tell_the_client_nothing_internal() {
    use mango_store::fakebiz::{Failure, Route};
    use serde_json::json;

    let app = spawn_app().await;
    let draft = json!({
        "service_id": "svc_haircut_women", "start_at": "2030-05-01T10:00:00Z",
        "customer": {"name": "Aru", "phone": "+77010000000"},
    });
    let headers = [("X-Store-Id", STORE)];
    let (status, _, created) = parts(
        app.post_json("/api/v1/booking/draft", &draft, &headers)
            .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let confirm = format!(
        "/api/v1/booking/draft/{}/confirm",
        created["data"]["id"].as_str().unwrap()
    );
    let leaks = [
        "MANGO_",
        "API_KEY",
        "credential",
        "401",
        "500",
        "status",
        "injected",
        "unauthorized",
        BIZ_KEY,
    ];
    for failure in [Failure::Unauthorized, Failure::ServerError] {
        for route in [Route::List, Route::Item, Route::Bookings] {
            app.biz.set_failure(route, failure);
        }
        let answers = [
            (app.get("/api/v1/services").await, 503),
            (app.get("/api/v1/services/svc_haircut_men").await, 503),
            (
                app.post_json(
                    "/api/v1/booking/draft",
                    &json!({
                        "service_id": "svc_haircut_men", "start_at": "2030-05-01T12:00:00Z",
                        "customer": {"name": "Aru", "phone": "+77010000000"},
                    }),
                    &headers,
                )
                .await,
                503,
            ),
            (app.post_json(&confirm, &json!({}), &headers).await, 502),
        ];
        for (response, status) in answers {
            let body = assert_problem(response, status, "upstream_unavailable").await;
            let detail = body["detail"].as_str().unwrap();
            for leak in leaks {
                assert!(
                    !detail.to_lowercase().contains(&leak.to_lowercase()),
                    "{failure:?}: {detail:?} contains {leak:?}"
                );
            }
            assert!(
                detail.contains("try again") || detail.contains("retried"),
                "{detail}"
            );
        }
    }
}
