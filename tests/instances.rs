//! Several stateless instances on one database: an invalidation on one reaches the others'
//! memory within a second.

mod common;

use std::time::Duration;

use common::*;
use mango_store::catalog::Resource;
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
        .invalidate(store.id, &Scope::Item(Resource::Services, SERVICE.into()))
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
