//! Micro-benchmarks (criterion): Standard Webhooks verification, and the catalog cache's HIT
//! path (`CatalogCache::get` on a warm key: one moka lookup and one atomic generation check).
//! `cargo bench --bench micro`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mango_store::biz::BizClient;
use mango_store::catalog::{CacheKey, CatalogCache, Tenant};
use mango_store::clock::SystemClock;
use mango_store::config::{BizConfig, CacheConfig, Secret};
use mango_store::fakebiz::{BizCatalog, FakeBiz};
use mango_store::webhooks::signature::{SignedDelivery, WebhookSecret, verify};

fn signature(c: &mut Criterion) {
    let secrets = vec![
        WebhookSecret::parse("whsec_b2xkLXNlY3JldC1mb3Itcm90YXRpb24tMzItYnl0ZXM=").unwrap(),
        WebhookSecret::parse("whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtMzItYnl0ZXMh").unwrap(),
    ];
    let body = format!(
        r#"{{"id":"evt_1","type":"services.updated","business_id":"biz_demo","occurred_at":"2026-11-21T10:00:00Z","data":{{"id":"svc_1","pad":"{}"}}}}"#,
        "x".repeat(800)
    );
    let now = 1_795_000_000;
    let header = secrets[1].sign("evt_1", now, body.as_bytes());
    let delivery = SignedDelivery {
        id: "evt_1",
        timestamp: &now.to_string(),
        signatures: &header,
        body: body.as_bytes(),
    };
    // The matching secret is the second one: the worst case for a two-secret rotation.
    c.bench_function("webhook signature verify (1 KB, 2 secrets)", |b| {
        b.iter(|| verify(std::hint::black_box(&delivery), &secrets, now, 300).unwrap())
    });
}

fn cache_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cache, tenant) = rt.block_on(async {
        let biz = FakeBiz::new("k");
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/salon");
        let (business, catalog): (String, BizCatalog) = BizCatalog::load_dir(&fixtures).unwrap();
        biz.add_business(&business, catalog);
        let url = biz.spawn().await.unwrap();
        let db = mango_store::db::connect(&mango_store::db::DatabaseUrl::Sqlite {
            path: dir.path().join("bench.db"),
            busy_timeout: Duration::from_secs(5),
            pool_size: 4,
        })
        .await
        .unwrap();
        let store = db
            .create_store(mango_store::db::NewStore {
                slug: "bench".into(),
                name: "Bench".into(),
                biz_business_id: business.clone(),
                template: "classic".into(),
                theme: "{}".into(),
                custom_domain: None,
                allowed_origins: vec![],
                api_key_hash: "x".into(),
                now_ms: 0,
            })
            .await
            .unwrap();
        let client = BizClient::new(&BizConfig {
            base_url: url.parse().unwrap(),
            api_key: Secret::new("k"),
            timeout: Duration::from_secs(3),
            max_concurrency: BizConfig::DEFAULT_MAX_CONCURRENCY,
            queue_timeout: BizConfig::DEFAULT_QUEUE_TIMEOUT,
        })
        .unwrap();
        let cache = CatalogCache::new(
            db,
            client,
            Arc::new(SystemClock),
            CacheConfig::default(),
            mango_store::domain::Resources::defaults(),
        );
        // Memory is served only under the feed lease, as in `serve`: join, and keep tailing.
        mango_store::catalog::feed::join(&cache).await;
        tokio::spawn(mango_store::catalog::feed::tail(cache.clone()));
        let tenant = Tenant {
            store_id: store.id,
            business_id: business.as_str().into(),
        };
        cache
            .get(
                &tenant,
                CacheKey::list(
                    store.id,
                    mango_store::domain::Resources::defaults().services(),
                ),
            )
            .await
            .unwrap();
        cache
            .get(
                &tenant,
                CacheKey::item(
                    store.id,
                    mango_store::domain::Resources::defaults().services(),
                    "svc_haircut_women",
                ),
            )
            .await
            .unwrap();
        (cache, tenant)
    });
    // What follows measures HITs only: a bench that silently measured misses would mislead.
    rt.block_on(async {
        let key = CacheKey::list(
            tenant.store_id,
            mango_store::domain::Resources::defaults().services(),
        );
        let lookup = cache.get(&tenant, key).await.unwrap();
        assert_eq!(
            lookup.status.as_str(),
            "HIT",
            "the bench's warm key must be a HIT"
        );
    });
    let list = CacheKey::list(
        tenant.store_id,
        mango_store::domain::Resources::defaults().services(),
    );
    c.bench_function("cache HIT: list", |b| {
        b.to_async(&rt).iter(|| cache.get(&tenant, list.clone()))
    });
    c.bench_function("cache HIT: item", |b| {
        b.to_async(&rt).iter(|| {
            cache.get(
                &tenant,
                CacheKey::item(
                    tenant.store_id,
                    mango_store::domain::Resources::defaults().services(),
                    "svc_haircut_women",
                ),
            )
        })
    });
    // The SQLite pool inside the cache must be dropped where a Tokio runtime is running.
    rt.block_on(async move { drop(cache) });
}

criterion_group!(benches, signature, cache_hit);
criterion_main!(benches);
