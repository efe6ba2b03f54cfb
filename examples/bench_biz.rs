//! A static Biz for the benchmarks: serves `fixtures/bench/services.json` as one page and its
//! items, invents a ~0.5 KB item for any other `svc_gen_N` id (for the memory run), and counts
//! calls per business at `GET /_calls?business_id=B`. Usage: `bench_biz PORT [DELAY_MS]`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

#[derive(Clone)]
struct Biz {
    page: Bytes,
    items: Arc<HashMap<String, Bytes>>,
    calls: Arc<Mutex<HashMap<String, u64>>>,
    delay: Duration,
}

type Params = Query<HashMap<String, String>>;

impl Biz {
    async fn count(&self, params: &Params) {
        let business = params.get("business_id").cloned().unwrap_or_default();
        *self.calls.lock().unwrap().entry(business).or_default() += 1;
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }
}

fn json(bytes: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

async fn list(State(biz): State<Biz>, params: Params) -> Response {
    biz.count(&params).await;
    json(biz.page.clone())
}

async fn item(State(biz): State<Biz>, Path(id): Path<String>, params: Params) -> Response {
    biz.count(&params).await;
    if let Some(bytes) = biz.items.get(&id) {
        return json(bytes.clone());
    }
    match id
        .strip_prefix("svc_gen_")
        .and_then(|n| n.parse::<u64>().ok())
    {
        Some(n) => json(Bytes::from(format!(
            r#"{{"data":{{"id":"{id}","name":"Generated service {n}","category":"hair","description":"A generated service for the memory benchmark, about half a kilobyte once wrapped, with a description long enough to be realistic for a salon catalog entry.","duration_minutes":60,"price":{{"amount":"15000.00","currency":"KZT"}},"is_active":true,"image_url":"https://cdn.mango.example/studio/services/{id}/cover-1200x800.webp"}}}}"#
        ))),
        None => (StatusCode::NOT_FOUND, "{\"error\":\"not_found\"}").into_response(),
    }
}

async fn calls(State(biz): State<Biz>, params: Params) -> String {
    let business = params.get("business_id").cloned().unwrap_or_default();
    biz.calls
        .lock()
        .unwrap()
        .get(&business)
        .copied()
        .unwrap_or(0)
        .to_string()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().unwrap_or_else(|| "18101".into()).parse()?;
    let delay = Duration::from_millis(args.next().unwrap_or_else(|| "0".into()).parse()?);
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bench/services.json");
    let services: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let page = serde_json::to_vec(&serde_json::json!({"data": services, "next_cursor": null}))?;
    let items = services
        .iter()
        .map(|s| {
            let id = s["id"].as_str().unwrap_or_default().to_string();
            (
                id,
                Bytes::from(serde_json::to_vec(&serde_json::json!({"data": s})).unwrap()),
            )
        })
        .collect();
    let biz = Biz {
        page: Bytes::from(page),
        items: Arc::new(items),
        calls: Arc::default(),
        delay,
    };
    let app = Router::new()
        .route("/biz-api/v1/services", get(list))
        .route("/biz-api/v1/services/{id}", get(item))
        .route("/_calls", get(calls))
        .with_state(biz);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
