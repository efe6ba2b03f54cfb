//! Webhook throughput and webhook → fresh-read latency, against the real server on SQLite
//! (or on the database `MANGO_BENCH_DATABASE_URL` names).
//!
//! `cargo bench --bench webhooks` (release profile). The service runs in this process on
//! port 0 with a fresh SQLite file and the in-process fake Biz serving `fixtures/`; senders
//! talk real HTTP to it, with signed deliveries carrying unique ids.
//!
//! 1. Throughput: `BENCH_SENDERS` concurrent senders (default 16) push `BENCH_WEBHOOKS`
//!    deliveries (default 20 000) over every service id; each must answer 200 "processed",
//!    i.e. verified, recorded, invalidated in SQL and memory, and marked processed.
//! 2. Latency: `BENCH_ROUNDS` times (default 1 000), the item changes in Biz, its webhook is
//!    sent, and the clock starts at the 2xx; it stops when a read of the item shows the change.
//!
//! Run by `cargo test --bench webhooks` (no `--bench` argument) it does a small smoke run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mango_store::app::{self, AppState};
use mango_store::config::{Config, Settings};
use mango_store::db::{self, NewStore};
use mango_store::fakebiz::FakeBiz;
use mango_store::webhooks::signature::WebhookSecret;
use serde_json::{Value, json};

const SECRET: &str = "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtMzItYnl0ZXMh";
const BIZ_KEY: &str = "bench-biz-key";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Bench {
    base: String,
    client: reqwest::Client,
    biz: FakeBiz,
    business: String,
    secret: WebhookSecret,
    store: String,
    /// Prefix of this run's delivery ids.
    run: String,
}

impl Bench {
    async fn webhook(&self, id: &str, item: &str) -> (u16, Value) {
        let ts = time::OffsetDateTime::now_utc().unix_timestamp();
        let body = json!({
            "id": id, "type": "services.updated", "business_id": self.business,
            "occurred_at": "2026-11-21T10:00:00Z", "data": {"id": item},
        })
        .to_string();
        let signature = self.secret.sign(id, ts, body.as_bytes());
        let response = self
            .client
            .post(format!("{}/webhooks/services/updated", self.base))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .expect("webhook sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn read(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("X-Store-Id", &self.store)
            .send()
            .await
            .expect("read sent");
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.expect("JSON")
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let (total, senders, rounds) = if full {
        (
            env_or("BENCH_WEBHOOKS", 20_000),
            env_or("BENCH_SENDERS", 16),
            env_or("BENCH_ROUNDS", 1_000),
        )
    } else {
        (200, 4, 20)
    };

    // `MANGO_BENCH_DATABASE_URL` (an `mssql://` URL) runs it on that database instead of a
    // fresh SQLite file; ids, the store's slug and key and the business then carry this run's
    // start time, so runs on one database do not meet each other's deliveries or stores.
    let shared = std::env::var("MANGO_BENCH_DATABASE_URL").ok();
    let stamp = shared
        .as_ref()
        .map(|_| mango_store::clock::unix_ms_now().to_string());
    let run = stamp.as_ref().map(|s| format!("{s}_")).unwrap_or_default();
    let store = format!("bench{}", stamp.as_deref().unwrap_or_default());
    let dir = tempfile::tempdir()?;
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/salon");
    let biz = FakeBiz::new(BIZ_KEY);
    // On a shared database the business is this run's own too: every earlier run's store of
    // the fixtures' business would otherwise be invalidated by each webhook of this one.
    let (fixture_business, catalog) = mango_store::fakebiz::BizCatalog::load_dir(&fixtures)?;
    let business = match &stamp {
        None => fixture_business,
        Some(stamp) => format!("{fixture_business}_{stamp}"),
    };
    biz.add_business(&business, catalog);
    let biz_url = biz.spawn().await?;
    let settings = Settings::from_pairs([
        (
            "MANGO_DATABASE_URL",
            shared
                .clone()
                .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display())),
        ),
        ("MANGO_BIZ_API_URL", biz_url),
        ("MANGO_BIZ_API_KEY", BIZ_KEY.to_string()),
        ("MANGO_WEBHOOK_SECRETS", SECRET.to_string()),
        ("MANGO_ADMIN_TOKEN", "bench-admin".to_string()),
    ]);
    let config = Config::from_settings(&settings)?;
    let database = db::connect(&config.database).await?;
    let now = mango_store::clock::unix_ms_now();
    database
        .create_store(NewStore {
            slug: store.clone(),
            name: "Bench".into(),
            biz_business_id: business.clone(),
            template: "classic".into(),
            theme: "{}".into(),
            custom_domain: None,
            allowed_origins: vec![],
            api_key_hash: format!("bench-not-a-real-key-hash-{store}"),
            now_ms: now,
        })
        .await?;
    let state = AppState::new(config, database)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(app::serve(state, listener, std::future::pending()));

    let services: Vec<String> = biz_services(&fixtures);
    let bench = Arc::new(Bench {
        base,
        client: reqwest::Client::new(),
        biz,
        business,
        secret: WebhookSecret::parse(SECRET).map_err(anyhow::Error::msg)?,
        store,
        run,
    });
    // Everything cached, so that invalidations have something to drop.
    bench.read("/api/v1/services").await;
    for id in &services {
        bench.read(&format!("/api/v1/services/{id}")).await;
    }

    // 1. Throughput.
    let next = Arc::new(AtomicUsize::new(0));
    let services = Arc::new(services);
    let started = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let (bench, next, services) = (bench.clone(), next.clone(), services.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return latencies;
                    }
                    let item = &services[i % services.len()];
                    let sent = Instant::now();
                    let (status, body) = bench
                        .webhook(&format!("evt_bench_{}{i}", bench.run), item)
                        .await;
                    latencies.push(sent.elapsed());
                    assert_eq!(status, 200, "{body}");
                    assert_eq!(body["data"]["status"], "processed");
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for task in tasks {
        latencies.extend(task.await?);
    }
    let elapsed = started.elapsed();
    latencies.sort();

    // 2. Webhook 2xx → fresh read.
    let item = services[0].clone();
    let path = format!("/api/v1/services/{item}");
    let mut original = bench.read(&path).await["data"].clone();
    let mut fresh = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let name = format!("Bench v{round}");
        original["name"] = json!(name);
        bench
            .biz
            .upsert_item(&bench.business, "services", original.clone());
        let (status, body) = bench
            .webhook(&format!("evt_latency_{}{round}", bench.run), &item)
            .await;
        assert_eq!(
            (status, &body["data"]["status"]),
            (200, &json!("processed"))
        );
        let answered = Instant::now();
        let read = bench.read(&path).await;
        fresh.push(answered.elapsed());
        assert_eq!(
            read["data"]["name"],
            json!(name),
            "the read after the 2xx is fresh"
        );
    }
    fresh.sort();

    let backend = if shared.is_some() {
        "SQL Server"
    } else {
        "SQLite"
    };
    println!("mango-store webhook bench ({backend}, real HTTP, fake Biz in-process)");
    println!(
        "throughput: {total} signed webhooks, {senders} concurrent senders, {:.2} s → {:.0} webhooks/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  per-webhook latency under that load: p50 {} p99 {} max {}",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap())
    );
    println!(
        "webhook 2xx → fresh read ({rounds} rounds, sequential): p50 {} p99 {} max {}",
        ms(percentile(&fresh, 0.50)),
        ms(percentile(&fresh, 0.99)),
        ms(*fresh.last().unwrap())
    );
    Ok(())
}

fn biz_services(fixtures: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(fixtures.join("services.json")).expect("fixtures");
    let items: Vec<Value> = serde_json::from_str(&text).expect("services.json");
    items
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect()
}
