//! The SQL Server backend's own checks (the rest of the suite runs against it too when
//! `MANGO_TEST_MSSQL_URL` is set): concurrent migrations, conflict mapping, generation-guarded
//! cache fills racing invalidations, claims decided by row counts, unavailability, and start-up
//! errors that name the address but never the password.

mod common;

use std::time::Duration;

use common::sqlserver;
use futures::future::join_all;
use mango_store::db::{
    self, CachedItem, ClaimOutcome, ClaimRules, ConfirmFinish, Db, DbError, DraftCreation,
    IdempotencyKey, NewDraft, NewEvent, NewStore, Scope, StorePatch,
};

/// The server under test, or `None` after printing how to run the suite.
fn server() -> Option<String> {
    let url = common::mssql_url();
    if url.is_none() {
        eprintln!(
            "SQL Server suite skipped: set {}=mssql://… to run it",
            sqlserver::VAR
        );
    }
    url
}

/// A fresh database for one test, dropped after it.
struct Fresh {
    url: String,
    name: String,
    base: String,
    opened: Vec<Db>,
}

impl Fresh {
    async fn new(base: &str) -> Self {
        let (name, url) = sqlserver::create_database(base).await;
        Self {
            url,
            name,
            base: base.to_string(),
            opened: Vec::new(),
        }
    }

    /// The backend on it (migrated), through `url` (this database's, or a gate's).
    async fn connect(&mut self, url: &str) -> Db {
        let db = db::connect(&db::DatabaseUrl::parse(url).unwrap())
            .await
            .expect("database opens");
        self.opened.push(db.clone());
        db
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        for db in &self.opened {
            db.close();
        }
        sqlserver::drop_database_later(self.base.clone(), self.name.clone());
    }
}

async fn fresh_db(base: &str) -> (Db, Fresh) {
    let mut fresh = Fresh::new(base).await;
    let url = fresh.url.clone();
    (fresh.connect(&url).await, fresh)
}

fn new_store(slug: &str, domain: Option<&str>) -> NewStore {
    NewStore {
        slug: slug.into(),
        name: format!("Store {slug}"),
        biz_business_id: "biz_demo".into(),
        template: "classic".into(),
        theme: "{}".into(),
        custom_domain: domain.map(Into::into),
        allowed_origins: vec![],
        api_key_hash: format!("{:0>64}", slug),
        now_ms: 1_800_000_000_000,
    }
}

fn item(payload: &str) -> CachedItem {
    CachedItem {
        payload: payload.into(),
        fetched_at_ms: 1,
        expires_at_ms: i64::MAX / 2,
    }
}

#[tokio::test]
async fn migrations_apply_once_even_when_two_instances_start_together() {
    let Some(base) = server() else { return };
    let mut fresh = Fresh::new(&base).await;
    let url = fresh.url.clone();
    let parsed = db::DatabaseUrl::parse(&url).unwrap();
    let both = join_all([db::connect(&parsed), db::connect(&parsed)]).await;
    for outcome in both {
        fresh.opened.push(outcome.expect("each instance starts"));
    }
    fresh.connect(&url).await;
    let applied = sqlserver::query(&url, "SELECT COUNT(*) FROM dbo.schema_migrations", &[]);
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/mssql"))
        .unwrap()
        .count() as i64;
    assert!(matches!(applied[0][0], common::SqlValue::Int(n) if n == files));
}

#[tokio::test]
async fn unique_violations_are_conflicts_naming_the_column() {
    let Some(base) = server() else { return };
    let (db, _fresh) = fresh_db(&base).await;
    db.create_store(new_store("one", Some("shop.example.com")))
        .await
        .unwrap();
    let again = db.create_store(new_store("one", None)).await;
    assert!(
        matches!(&again, Err(DbError::Conflict(m)) if m == "slug is already taken"),
        "{again:?}"
    );
    let two = db.create_store(new_store("two", None)).await.unwrap();
    assert_eq!(two.custom_domain, None, "NULL domains do not clash");
    db.create_store(new_store("three", None)).await.unwrap();
    let patch = StorePatch {
        custom_domain: Some(Some("shop.example.com".into())),
        ..Default::default()
    };
    let taken = db.update_store("two", patch, 1).await;
    assert!(
        matches!(&taken, Err(DbError::Conflict(m)) if m == "custom_domain is already taken"),
        "{taken:?}"
    );
}

#[tokio::test]
async fn a_fill_that_raced_an_invalidation_is_never_stored() {
    let Some(base) = server() else { return };
    let (db, _fresh) = fresh_db(&base).await;
    let store = db.create_store(new_store("salon", None)).await.unwrap();
    let (s, r) = (
        store.id,
        mango_store::domain::Resources::defaults().services(),
    );
    let scope = Scope::Item(r, "svc_1".into());

    let (none, g0) = db.cache_item(s, r, "svc_1").await.unwrap();
    assert_eq!((none, g0), (None, 0));
    db.invalidate_cache(s, &scope, 7, 1).await.unwrap();
    let stale = db.put_cache_item(s, r, "svc_1", &item("{}"), g0).await;
    assert!(!stale.unwrap(), "a stale generation is refused");
    assert!(
        db.put_cache_item(s, r, "svc_1", &item("{\"v\":1}"), g0 + 1)
            .await
            .unwrap()
    );
    let (cached, g1) = db.cache_item(s, r, "svc_1").await.unwrap();
    assert_eq!(
        (cached.unwrap().payload.as_str(), g1),
        ("{\"v\":1}", g0 + 1)
    );
    let list = [("svc_1".to_string(), "{}".to_string())];
    assert!(
        !db.put_cache_list(s, r, &list, 1, i64::MAX / 2, g0)
            .await
            .unwrap()
    );

    // Racing for real: whichever commits first, the row cannot survive both.
    for round in 0..10 {
        let (_, generation) = db.cache_item(s, r, "svc_1").await.unwrap();
        let (a, b) = (db.clone(), db.clone());
        let scope = scope.clone();
        let fill = tokio::spawn(async move {
            a.put_cache_item(s, r, "svc_1", &item("{}"), generation)
                .await
        });
        let invalidation = tokio::spawn(async move { b.invalidate_cache(s, &scope, 7, 1).await });
        fill.await.unwrap().unwrap();
        invalidation.await.unwrap().unwrap();
        let (left, now) = db.cache_item(s, r, "svc_1").await.unwrap();
        assert_eq!(left, None, "round {round}");
        assert_eq!(now, generation + 1);
    }
    let feed = db.invalidations_since(0, 100).await.unwrap();
    let ids: Vec<i64> = feed.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        (1..=11).collect::<Vec<_>>(),
        "feed ids are dense and ordered"
    );
}

#[tokio::test]
async fn claims_and_idempotent_creates_are_decided_by_row_counts() {
    let Some(base) = server() else { return };
    let (db, _fresh) = fresh_db(&base).await;
    let store = db.create_store(new_store("salon", None)).await.unwrap();
    let now = 1_800_000_000_000;
    let draft = |id: &str| NewDraft {
        id: id.into(),
        store_id: store.id,
        service_id: "svc_1".into(),
        staff_id: None,
        start_at_ms: now + 3_600_000,
        end_at_ms: now + 7_200_000,
        duration_minutes: 60,
        price: Some("{\"amount\":\"45.00\",\"currency\":\"KZT\"}".into()),
        customer: Default::default(),
        notes: None,
        expires_at_ms: now + 900_000,
        created_at_ms: now,
    };
    let event = |name: &str, id: &str| NewEvent {
        store_id: store.id,
        name: name.into(),
        draft_id: Some(id.into()),
        occurred_at_ms: now,
        ..Default::default()
    };
    let key = IdempotencyKey {
        key: "retry-me".into(),
        request_hash: "h".into(),
        not_before_ms: now - 86_400_000,
    };
    let creates = join_all((0..6).map(|i| {
        let (db, id) = (db.clone(), format!("drf_{i}"));
        let (d, k, e) = (draft(&id), key.clone(), event("booking_draft_created", &id));
        async move { db.create_draft(d, Some(k), e).await.unwrap() }
    }))
    .await;
    let created: Vec<String> = creates
        .iter()
        .filter_map(|c| match c {
            DraftCreation::Created(d) => Some(d.id.clone()),
            DraftCreation::Existing(_) => None,
        })
        .collect();
    assert_eq!(created.len(), 1, "one create wins the key");
    for c in &creates {
        if let DraftCreation::Existing(held) = c {
            assert_eq!(held.draft.id, created[0], "the others answer the winner");
        }
    }

    let id = created[0].clone();
    let rules = ClaimRules {
        now_ms: now,
        unresolved_grace_ms: 0,
        stale_before_ms: now - 60_000,
    };
    let claims = join_all((0..8).map(|_| {
        let (db, id) = (db.clone(), id.clone());
        async move { db.claim_draft(store.id, &id, rules).await.unwrap() }
    }))
    .await;
    let winners = claims
        .iter()
        .filter(|c| matches!(c, ClaimOutcome::Claimed(_)))
        .count();
    assert_eq!(winners, 1, "exactly one claim counts a row");
    let finish = |attempt| {
        let db = db.clone();
        let (id, event) = (id.clone(), event("booking_confirmed", &id));
        async move {
            let booking = "{\"id\":\"bk_1\",\"client\":{\"name\":\"A\"}}".to_string();
            let finish = ConfirmFinish::Confirmed { booking, event };
            db.finish_confirm(store.id, &id, attempt, finish, now).await
        }
    };
    let released = db
        .finish_confirm(store.id, &id, 2, ConfirmFinish::Released, now)
        .await
        .unwrap();
    assert!(released.is_none(), "a release is fenced by its attempt");
    // Biz's definite answer is recorded even when the fence moved (a stale-claim release or
    // a takeover while the answer travelled), and a repeat answers what is stored.
    let done = finish(2)
        .await
        .unwrap()
        .expect("a definite answer is recorded");
    assert_eq!(done.status.as_str(), "confirmed");
    let again = finish(1)
        .await
        .unwrap()
        .expect("a repeat answers the stored draft");
    assert_eq!(again.status.as_str(), "confirmed");
    let cancelled = db.cancel_draft(store.id, &id, now).await.unwrap().unwrap();
    assert_eq!(cancelled.status.as_str(), "confirmed");

    // Erasure keeps Biz's answer but drops the client echo (JSON_MODIFY on both servers).
    assert_eq!(db.erase_ended_drafts(now + 1, now, 10).await.unwrap(), 1);
    let erased = db.draft(store.id, &id).await.unwrap().unwrap();
    let booking: serde_json::Value = serde_json::from_str(&erased.booking.unwrap()).unwrap();
    assert_eq!(booking, serde_json::json!({"id": "bk_1"}));
}

/// While the server refuses connections a checkout fails as soon as an attempt to connect
/// does, not after the connect timeout (30 s here); once it is back, the next operation
/// connects at once instead of after a retry backoff.
#[tokio::test]
async fn a_database_that_goes_away_is_unavailable_then_comes_back() {
    let Some(base) = server() else { return };
    let mut fresh = Fresh::new(&base).await;
    let url = fresh.url.clone();
    let (mut gated, open) = common::gate::behind_gate(&url);
    let connect_timeout = Duration::from_secs(30);
    gated.query_pairs_mut().append_pair(
        "connect_timeout_ms",
        &connect_timeout.as_millis().to_string(),
    );
    let db = fresh.connect(gated.as_str()).await;
    db.ping().await.expect("ready through the gate");

    open.send_replace(false);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let down = db.ping().await;
        assert!(matches!(down, Err(DbError::Unavailable(_))), "{down:?}");
    }
    // Not a speed goal: waiting for the connect timeout would take 90 s.
    assert!(
        started.elapsed() < connect_timeout / 2,
        "failed fast: {:?}",
        started.elapsed()
    );

    open.send_replace(true);
    let started = std::time::Instant::now();
    let mut answers = Vec::new();
    // A connection cut within the last second may be handed out unchecked and fail once.
    for _ in 0..3 {
        answers.push(db.ping().await);
        if answers.last().unwrap().is_ok() {
            break;
        }
    }
    assert!(
        answers.last().unwrap().is_ok(),
        "the pool reconnects once the database is back: {answers:?}"
    );
    assert!(
        started.elapsed() < connect_timeout / 2,
        "without a retry backoff: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_server_that_cannot_be_reached_stops_start_up_naming_it_but_not_the_password() {
    // Runs without a server: port 1 refuses connections.
    let url = "mssql://sa:Sup3r-secret-pw@127.0.0.1:1/mango?encrypt=danger_plaintext";
    let err = db::connect(&db::DatabaseUrl::parse(url).unwrap())
        .await
        .err()
        .expect("no server there");
    let message = format!("{err:#}");
    assert!(message.contains("MANGO_DATABASE_URL"), "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(!message.contains("Sup3r-secret-pw"), "{message}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mango-store"))
        .arg("migrate")
        .env_clear()
        .env("MANGO_DATABASE_URL", url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("mango-store: MANGO_DATABASE_URL"),
        "{stderr}"
    );
    assert!(!stderr.contains("Sup3r-secret-pw"), "{stderr}");
}
