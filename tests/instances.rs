//! Several stateless instances on one database: an invalidation on one reaches the others'
//! memory through the feed, and a webhook's 2xx waits until it has (`catalog::feed`).

mod common;

use std::time::Duration;

use common::*;
use mango_store::db::Scope;
use serde_json::{Value, json};

const SERVICE: &str = "svc_haircut_women";

#[tokio::test]
async fn an_invalidation_on_one_instance_reaches_the_other_within_a_second() {
    let app = spawn_app().await;
    let peer = app.spawn_peer().await;
    let path = format!("/api/v1/services/{SERVICE}");
    for _ in 0..2 {
        assert_eq!(app.get(&path).await.status(), 200);
        peer.get(&path).await;
    }
    let (_, headers, before) = parts(peer.get(&path).await).await;
    assert_eq!(
        header(&headers, "x-cache"),
        "HIT",
        "the peer serves from its own memory"
    );

    let mut changed = before["data"].clone();
    changed["name"] = json!("Renamed in Biz");
    app.biz.upsert_item(BUSINESS, "services", changed);
    let store = app.state.db.store_by_slug(STORE).await.unwrap().unwrap();
    app.state
        .catalog
        .invalidate(
            store.id,
            &Scope::Item(
                mango_store::domain::Resources::defaults().services(),
                SERVICE.into(),
            ),
        )
        .await
        .unwrap();

    let fresh = eventually(Duration::from_secs(1), || async {
        let body: Value = peer.get(&path).await.json().await.unwrap();
        body["data"]["name"] == "Renamed in Biz"
    })
    .await;
    assert!(fresh, "the peer's memory was invalidated within 1 s");
    let (_, _, on_origin) = parts(app.get(&path).await).await;
    assert_eq!(on_origin["data"]["name"], "Renamed in Biz");
}

#[tokio::test]
async fn a_whole_store_invalidation_reaches_the_peer() {
    let app = spawn_app().await;
    let peer = app.spawn_peer().await;
    peer.get("/api/v1/staff").await;
    assert_eq!(
        header(peer.get("/api/v1/staff").await.headers(), "x-cache"),
        "HIT"
    );
    let store = app.state.db.store_by_slug(STORE).await.unwrap().unwrap();
    app.state
        .catalog
        .invalidate(store.id, &Scope::Store)
        .await
        .unwrap();
    let missed = eventually(Duration::from_secs(1), || async {
        header(peer.get("/api/v1/staff").await.headers(), "x-cache") == "MISS"
    })
    .await;
    assert!(missed);
}

/// A fake Biz serving the fixtures, and two `serve` processes on one SQLite file (kept while
/// the returned directory lives) with the store `STORE` created through the first.
async fn two_processes_with_a_store() -> (
    mango_store::fakebiz::FakeBiz,
    tempfile::TempDir,
    ServeProcess,
    ServeProcess,
) {
    let biz = mango_store::fakebiz::FakeBiz::new(BIZ_KEY);
    biz.load_fixtures(&fixtures_dir()).unwrap();
    let biz_url = biz.spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let a = ServeProcess::start(&db, &biz_url, &[]).await;
    let b = ServeProcess::start(&db, &biz_url, &[]).await;
    let created = reqwest::Client::new()
        .post(format!("{}/admin/v1/stores", a.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"slug": STORE, "name": "Salon", "biz_business_id": BUSINESS}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    (biz, dir, a, b)
}

/// Two `mango-store serve` processes on one SQLite file: once a webhook is answered by one,
/// the other's very next read sees the new version — no allowance for the feed's polling
/// (CONTRACT §5 rule 2, "anywhere"; the lease and acknowledgements of `catalog::feed`) — and a
/// repeated delivery sent to the other process is a duplicate (the dedupe lives in the shared
/// database).
#[tokio::test]
async fn a_webhook_answered_by_one_process_is_seen_by_the_others_next_read() {
    let (biz, _dir, a, b) = two_processes_with_a_store().await;
    let client = reqwest::Client::new();

    let path = format!("/api/v1/services/{SERVICE}");
    let read = |base: &str| {
        let request = client
            .get(format!("{base}{path}"))
            .header("X-Store-Id", STORE);
        async move {
            let response = request.send().await.unwrap();
            let cache = header(response.headers(), "x-cache").to_string();
            let body: Value = response.json().await.unwrap();
            (
                cache,
                body["data"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        }
    };
    let mut waits = Vec::new();
    for round in 0..10 {
        let event_id = format!("evt_two_{round}");
        let name = format!("Renamed in Biz {round}");
        read(&a.base).await;
        read(&b.base).await;
        assert_eq!(read(&b.base).await.0, "HIT", "B serves from its own memory");
        let changed = json!({"id": SERVICE, "name": name, "duration_minutes": 60,
            "price": {"amount": "1.00", "currency": "KZT"}, "is_active": true, "category": "hair"});
        biz.upsert_item(BUSINESS, "services", changed);
        // Alternate which process answers.
        let (answering, other) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let sent = std::time::Instant::now();
        let answer =
            deliver_services_webhook(&client, &answering.base, BUSINESS, &event_id, SERVICE).await;
        waits.push(sent.elapsed());
        assert_eq!(answer.unwrap(), (200, "processed".into()));
        assert_eq!(
            read(&other.base).await.1,
            name,
            "the other process's first read after the 2xx"
        );
        let answer =
            deliver_services_webhook(&client, &other.base, BUSINESS, &event_id, SERVICE).await;
        assert_eq!(answer.unwrap(), (200, "duplicate".into()));
    }
    waits.sort();
    println!(
        "webhook answer with one peer: median {:?}, max {:?}",
        waits[waits.len() / 2],
        waits[waits.len() - 1]
    );
}

/// A peer that registered and then stopped acknowledging (hung, or cut off from the database)
/// delays an answer by at most its lease: the webhook is still processed, and the peer's
/// lease has run out by then.
#[tokio::test]
async fn a_peer_that_stops_acknowledging_delays_a_webhook_by_at_most_its_lease() {
    if skip_on_mssql("writes the instance row with SQLite's own SQL") {
        return;
    }
    let app = spawn_app().await;
    warm_item(&app).await;
    let conn = rusqlite::Connection::open(&app.db_path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    // Milliseconds, not whole seconds: a heartbeat truncated to the second could look up to
    // 1 s older than it is, and the peer dead before its lease is over.
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    conn.execute(
        "INSERT INTO store_cache_instances (instance_id, applied_id, heartbeat_at)
         VALUES (-7, 0, ?1)",
        [now_ms],
    )
    .unwrap();
    // A real instance takes no lease until its row has been visible for a moment (the
    // tailer's look for peers is trusted that long); so does this one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = std::time::Instant::now();
    let (status, _, body) = parts(
        app.webhook("services", "updated", "evt_hung_peer", BUSINESS, SERVICE)
            .await,
    )
    .await;
    let waited = sent.elapsed();
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (200, Some("processed"))
    );
    assert!(
        waited >= mango_store::catalog::feed::LEASE,
        "the answer waited out the silent peer's lease ({waited:?})"
    );
}

async fn warm_item(app: &TestApp) {
    let path = format!("/api/v1/services/{SERVICE}");
    assert_eq!(app.get(&path).await.status(), 200);
    assert_eq!(header(app.get(&path).await.headers(), "x-cache"), "HIT");
}

#[tokio::test]
async fn a_settings_change_on_one_process_is_in_force_on_the_other_within_a_second() {
    let (_biz, _dir, a, b) = two_processes_with_a_store().await;
    let client = reqwest::Client::new();

    const THEME: &str = "https://theme.example.com";
    let store_on_b = |host: &'static str| {
        let request = client
            .get(format!("{}/api/v1/store", b.base))
            .header("Host", host)
            .header("Origin", THEME);
        async move {
            let response = request.send().await.unwrap();
            let cors = header(response.headers(), "access-control-allow-origin").to_string();
            let (status, _, body) = parts(response).await;
            (
                status,
                body["data"]["name"].as_str().unwrap_or("").to_string(),
                cors,
            )
        }
    };
    // B has both lookups cached: the store by its slug host, and nothing at the new domain.
    assert_eq!(
        store_on_b("salon.mango.localhost").await,
        (200, "Salon".to_string(), String::new())
    );
    assert_eq!(store_on_b("shop.example.com").await.0, 404);

    let changed = client
        .patch(format!("{}/admin/v1/stores/{STORE}", a.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(
            &json!({"name": "Renamed", "custom_domain": "shop.example.com",
                      "allowed_origins": [THEME]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let in_force = eventually(Duration::from_secs(1), || async {
        store_on_b("shop.example.com").await == (200, "Renamed".to_string(), THEME.to_string())
            && store_on_b("salon.mango.localhost").await.2 == THEME
    })
    .await;
    assert!(in_force, "B applies A's settings change within a second");
}
