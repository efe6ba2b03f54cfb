//! What the command line needs beyond parsing: the shutdown signal and `mango-store demo`.

use std::path::Path;

use anyhow::Context;

use crate::admin::auth::new_api_key;
use crate::app::{self, AppState};
use crate::config::{Config, Settings};
use crate::db::{self, DatabaseUrl, NewStore};
use crate::fakebiz::FakeBiz;

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
}

const DEMO_BIZ_KEY: &str = "demo-biz-api-key";
const DEMO_ADMIN_TOKEN: &str = "demo-admin-token";
/// base64 of "mango-demo-webhook-secret-32byte": fixed, so printed commands keep working.
pub const DEMO_WEBHOOK_SECRET: &str = "whsec_bWFuZ28tZGVtby13ZWJob29rLXNlY3JldC0zMmJ5dGU=";
const DEMO_SLUG: &str = "demo";

/// Embedded SQLite, an in-process fake Biz serving `fixtures`, a demo store, curl lines.
pub async fn demo(bind: &str, fixtures: &Path, database: &Path) -> anyhow::Result<()> {
    let biz = FakeBiz::new(DEMO_BIZ_KEY);
    let business_id = biz
        .load_fixtures(fixtures)
        .with_context(|| format!("demo fixtures in {}", fixtures.display()))?;
    let biz_url = biz.spawn().await?;

    let settings = Settings::from_pairs([
        ("MANGO_BIND", bind.to_string()),
        (
            "MANGO_DATABASE_URL",
            format!("sqlite://{}", database.display()),
        ),
        ("MANGO_BIZ_API_URL", biz_url),
        ("MANGO_BIZ_API_KEY", DEMO_BIZ_KEY.to_string()),
        ("MANGO_WEBHOOK_SECRETS", DEMO_WEBHOOK_SECRET.to_string()),
        ("MANGO_ADMIN_TOKEN", DEMO_ADMIN_TOKEN.to_string()),
        ("MANGO_STOREFRONT", "true".to_string()),
        ("MANGO_STOREFRONT_STORE", DEMO_SLUG.to_string()),
    ]);
    let config = Config::from_settings(&settings)?;
    let DatabaseUrl::Sqlite { .. } = &config.database else {
        anyhow::bail!("the demo runs on SQLite only");
    };
    let db = db::connect(&config.database).await?;
    let (api_key, api_key_hash) = new_api_key();
    let now = crate::clock::unix_ms_now();
    if db.store_by_slug(DEMO_SLUG).await?.is_some() {
        db.set_api_key_hash(DEMO_SLUG, &api_key_hash, now).await?;
    } else {
        db.create_store(NewStore {
            slug: DEMO_SLUG.into(),
            name: "Mango Beauty Studio".into(),
            biz_business_id: business_id.clone(),
            template: "classic".into(),
            theme: r##"{"primary_color":"#f59e0b","font":"Inter"}"##.into(),
            custom_domain: None,
            allowed_origins: Vec::new(),
            api_key_hash,
            now_ms: now,
        })
        .await?;
    }
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (pass --bind to choose another)",
                config.bind
            )
        })?;
    let address = listener.local_addr()?;
    let key = crate::webhooks::signature::WebhookSecret::parse(DEMO_WEBHOOK_SECRET)
        .map_err(anyhow::Error::msg)?;
    println!(
        "{}",
        instructions(
            &address.to_string(),
            &business_id,
            &api_key,
            &hex::encode(key.key())
        )
    );
    let grace = config.shutdown_grace;
    let state = AppState::new(config, db.clone())?;
    app::serve_with_grace(state, listener, shutdown_signal(), grace).await?;
    db.close();
    Ok(())
}

fn instructions(address: &str, business_id: &str, api_key: &str, webhook_key_hex: &str) -> String {
    let base = format!("http://{address}");
    format!(
        r#"
mango-store demo is running on {base} (fake Biz in-process, business {business_id}).

In a browser:
  the reference storefront     {base}/
  the merchant console         {base}/console/   (sign in with the store key below)

Storefront API (the store is chosen by X-Store-Id, or by Host: demo.mango.localhost):
  curl -i {base}/api/v1/store -H 'X-Store-Id: demo'
  curl -i {base}/api/v1/services -H 'X-Store-Id: demo'          # MISS, then HIT
  curl -i {base}/api/v1/services/svc_haircut_women -H 'Host: demo.mango.localhost'
  curl -i {base}/api/v1/staff -H 'X-Store-Id: demo'
  curl -i {base}/api/v1/products -H 'X-Store-Id: demo'

Admin (operator token {DEMO_ADMIN_TOKEN}; the demo store's API key, shown once: {api_key}):
  curl -i -X POST {base}/admin/v1/stores -H 'Authorization: Bearer {DEMO_ADMIN_TOKEN}' \
       -H 'Content-Type: application/json' \
       -d '{{"slug":"second","name":"Second Salon","biz_business_id":"{business_id}"}}'

A signed webhook (Standard Webhooks, secret {DEMO_WEBHOOK_SECRET}); run it, then the services
curl above answers MISS again:
  id="evt_$(date +%s%N)"; ts=$(date +%s)
  body="{{\"id\":\"$id\",\"type\":\"services.updated\",\"business_id\":\"{business_id}\",\"occurred_at\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"data\":{{\"id\":\"svc_haircut_women\"}}}}"
  sig=$(printf '%s' "$id.$ts.$body" | openssl dgst -sha256 -mac HMAC -macopt hexkey:{webhook_key_hex} -binary | base64)
  curl -i -X POST {base}/webhooks/services/updated -H 'Content-Type: application/json' \
       -H "webhook-id: $id" -H "webhook-timestamp: $ts" -H "webhook-signature: v1,$sig" -d "$body"

Operations: curl {base}/healthz   curl {base}/readyz   curl {base}/metrics
Stop with Ctrl-C.
"#
    )
}
