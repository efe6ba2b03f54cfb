//! A static Biz for the benchmarks. Usage: `bench_biz PORT [DELAY_MS]`.
//!
//! - Any business: `fixtures/bench/services.json` as one page and its items, and a ~0.5 KB
//!   item for any other `svc_gen_N` id (for the memory run).
//! - Business `gen_N` (for the list-size runs): N generated services `svc_gen_0…`, paged 100 to
//!   a page with cursors (so a cold fill walks N/100 pages), each with `category_id` `cat_0…9`.
//! - `GET /biz-api/v1/availability?service_id&date[&days]`: eight slots a day, from `date`.
//! - `GET /_calls?business_id=B`: calls counted per business.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// Items per page of a generated list.
const PAGE: usize = 100;

#[derive(Clone)]
struct Biz {
    page: Bytes,
    items: Arc<HashMap<String, Bytes>>,
    /// Pages of generated lists, by `(N, page index)`, built on first use.
    generated: Arc<Mutex<HashMap<(usize, usize), Bytes>>>,
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

    fn generated_page(&self, n: usize, index: usize) -> Bytes {
        let mut pages = self.generated.lock().unwrap();
        pages
            .entry((n, index))
            .or_insert_with(|| {
                let end = n.min((index + 1) * PAGE);
                let data: Vec<Value> = (index * PAGE..end).map(generated_item).collect();
                let next = (end < n).then(|| format!("p{}", index + 1));
                Bytes::from(
                    serde_json::to_vec(&json!({"data": data, "next_cursor": next})).unwrap(),
                )
            })
            .clone()
    }
}

/// A ~0.5 KB service, as Biz would describe it.
fn generated_item(n: usize) -> Value {
    let id = format!("svc_gen_{n}");
    json!({
        "id": id, "name": format!("Generated service {n}"), "category": "hair",
        "category_id": format!("cat_{}", n % 10),
        "description": "A generated service for the benchmarks, about half a kilobyte once wrapped, with a description long enough to be realistic for a salon catalog entry.",
        "duration_minutes": 60, "price": {"amount": "15000.00", "currency": "KZT"},
        "is_active": true,
        "image_url": format!("https://cdn.mango.example/studio/services/{id}/cover-1200x800.webp"),
    })
}

fn json_response(bytes: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// `gen_N` → N.
fn generated_size(params: &Params) -> Option<usize> {
    params
        .get("business_id")?
        .strip_prefix("gen_")?
        .parse()
        .ok()
}

async fn list(State(biz): State<Biz>, params: Params) -> Response {
    biz.count(&params).await;
    let Some(n) = generated_size(&params) else {
        return json_response(biz.page.clone());
    };
    let index = match params.get("cursor") {
        None => 0,
        Some(c) => match c.strip_prefix('p').and_then(|i| i.parse().ok()) {
            Some(i) => i,
            None => return (StatusCode::BAD_REQUEST, "{\"error\":\"bad cursor\"}").into_response(),
        },
    };
    json_response(biz.generated_page(n, index))
}

async fn item(State(biz): State<Biz>, Path(id): Path<String>, params: Params) -> Response {
    biz.count(&params).await;
    if let Some(bytes) = biz.items.get(&id) {
        return json_response(bytes.clone());
    }
    match id
        .strip_prefix("svc_gen_")
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) => json_response(Bytes::from(
            serde_json::to_vec(&json!({"data": generated_item(n)})).unwrap(),
        )),
        None => (StatusCode::NOT_FOUND, "{\"error\":\"not_found\"}").into_response(),
    }
}

/// Eight one-hour slots a day from 10:00 at +05:00, for `days` days from `date` (the date is
/// taken as given; the bench asks for valid ones).
async fn availability(State(biz): State<Biz>, params: Params) -> Response {
    biz.count(&params).await;
    let date = params.get("date").cloned().unwrap_or_default();
    let days: usize = params.get("days").and_then(|d| d.parse().ok()).unwrap_or(1);
    let staff = params
        .get("staff_id")
        .cloned()
        .unwrap_or_else(|| "stf_0".into());
    let mut slots = Vec::new();
    for day in 0..days.min(14) {
        // The bench asks for the first days of a month, so day arithmetic stays in it.
        let Some((prefix, dd)) = date.rsplit_once('-') else {
            break;
        };
        let dd: usize = dd.parse().unwrap_or(1) + day;
        for hour in 10..18 {
            slots.push(json!({
                "start_at": format!("{prefix}-{dd:02}T{hour:02}:00:00+05:00"),
                "end_at": format!("{prefix}-{dd:02}T{:02}:00:00+05:00", hour + 1),
                "staff_id": staff,
            }));
        }
    }
    json_response(Bytes::from(
        serde_json::to_vec(&json!({"data": {"slots": slots}})).unwrap(),
    ))
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
    let page = serde_json::to_vec(&json!({"data": services, "next_cursor": null}))?;
    let items = services
        .iter()
        .map(|s| {
            let id = s["id"].as_str().unwrap_or_default().to_string();
            (
                id,
                Bytes::from(serde_json::to_vec(&json!({"data": s})).unwrap()),
            )
        })
        .collect();
    let biz = Biz {
        page: Bytes::from(page),
        items: Arc::new(items),
        generated: Arc::default(),
        calls: Arc::default(),
        delay,
    };
    let app = Router::new()
        .route("/biz-api/v1/services", get(list))
        .route("/biz-api/v1/services/{id}", get(item))
        .route("/biz-api/v1/availability", get(availability))
        .route("/_calls", get(calls))
        .with_state(biz);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
