//! CONTRACT §5: the catalog read path and its caching rules.

mod common;

use common::*;

#[tokio::test]
async fn lists_join_every_page_in_biz_order() {
    let app = spawn_app().await;
    let (status, headers, body) = parts(app.get("/api/v1/services").await).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-cache"), "MISS");
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join("services.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(body["data"], fixture, "every item, unchanged, in order");
    let pages = fixture.as_array().unwrap().len().div_ceil(8);
    assert!(pages >= 3);
    assert_eq!(app.biz.calls_for("services", None), pages);
}
