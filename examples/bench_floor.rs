//! The floor for this stack: a bare axum handler answering the benchmark's bytes from memory
//! (the same `{"data": …}` bodies mango-store serves), with an ETag. Usage: `bench_floor PORT`.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use serde_json::Value;

fn answer(body: Bytes) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{:x}\"", body.len())).unwrap();
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, no-cache"),
            ),
        ],
        body,
    )
        .into_response()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "18102".into())
        .parse()?;
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bench/services.json");
    let services: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let list = Bytes::from(serde_json::to_vec(&serde_json::json!({"data": services}))?);
    let item = Bytes::from(serde_json::to_vec(
        &serde_json::json!({"data": services[0]}),
    )?);
    let app = Router::new()
        .route(
            "/api/v1/services",
            get(move || async move { answer(list.clone()) }),
        )
        .route(
            "/api/v1/services/{id}",
            get(move || async move { answer(item.clone()) }),
        );
    // TCP_NODELAY, as nginx and mango-store set it: the floor is the best this stack can do.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    axum::serve(listener, app).await?;
    Ok(())
}
