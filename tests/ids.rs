//! Ids an anonymous client controls must not reach Biz when the store already knows the
//! answer: dot segments (which a URL builder would drop, reaching Biz's list endpoint), and
//! ids that a fresh, complete cached list does not name (which would spend the shared Biz
//! quota).

mod common;

use std::time::Duration;

use common::*;
use mango_store::fakebiz::Route;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One raw HTTP/1.1 request (the path exactly as given: clients normalise dot segments),
/// answering the status code and the whole response text.
async fn raw_get(app: &TestApp, path: &str) -> (u16, String) {
    let address = app.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nX-Store-Id: {STORE}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn dot_ids_are_404_without_asking_biz_or_caching_anything() {
    let app = spawn_app().await;
    for path in [
        "/api/v1/services/.",
        "/api/v1/services/..",
        "/api/v1/services/%2E",
        "/api/v1/services/%2e",
        "/api/v1/services/%2E%2E",
        "/api/v1/services/.%2E",
        "/api/v1/services/%2e.",
    ] {
        let (status, text) = raw_get(&app, path).await;
        // `..` may be resolved by the router itself (then it is no item at all); either way
        // nothing is a 200 and nothing reaches Biz.
        assert!(matches!(status, 404 | 400), "{path}: {text}");
        assert!(text.contains("application/problem+json"), "{path}: {text}");
    }
    assert_eq!(app.biz.calls(Route::List) + app.biz.calls(Route::Item), 0);
    if !skip_on_mssql("counts rows in the SQLite file") {
        let rows: i64 = app
            .sql()
            .query_row("SELECT COUNT(*) FROM store_cache_items", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0, "no cache row for a dot id");
    }
}

#[tokio::test]
async fn ids_missing_from_a_fresh_complete_list_are_404_without_a_biz_call() {
    let app = spawn_app().await;
    assert_eq!(app.get("/api/v1/services").await.status(), 200);
    app.biz.reset_counts();
    for n in 0..300 {
        let r = app.get(&format!("/api/v1/services/svc_random_{n}")).await;
        assert_problem(r, 404, "not_found").await;
    }
    assert_eq!(app.biz.calls(Route::Item), 0, "300 random ids, no Biz call");
    // A real id is still answered.
    assert_eq!(app.get("/api/v1/services/svc_keratin").await.status(), 200);

    // Once the list is past its TTL, an unknown id is Biz's to answer again.
    app.clock.advance(Duration::from_secs(301));
    app.biz.reset_counts();
    let r = app.get("/api/v1/services/svc_random_new").await;
    assert_problem(r, 404, "not_found").await;
    assert_eq!(app.biz.calls(Route::Item), 1);
}
