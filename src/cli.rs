//! What the command line needs beyond parsing: the shutdown signal and `mango-store demo`.

use std::path::Path;

use anyhow::Context;

use crate::admin::auth::new_api_key;
use crate::app::{self, AppState};
use crate::config::{Config, Settings};
use crate::db::{self, DatabaseUrl, NewStore};
use crate::domain::Resources;
use crate::fakebiz::{BizCatalog, FakeBiz};

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

/// Embedded SQLite, an in-process fake Biz serving a fixture set, a demo store, curl lines.
/// `settings` (the environment and `--config`) apply, except what the demo must own: the
/// database, Biz and the secrets. `bind` (`--bind`) wins over `MANGO_BIND`.
pub async fn demo(
    mut settings: Settings,
    bind: Option<String>,
    fixtures: &Path,
    database: Option<&Path>,
) -> anyhow::Result<()> {
    let (business_id, catalog) = BizCatalog::load_dir(fixtures)
        .with_context(|| format!("demo fixtures in {}", fixtures.display()))?;
    let biz = FakeBiz::new(DEMO_BIZ_KEY);
    biz.add_business(&business_id, catalog.clone());
    let biz_url = biz.spawn().await?;
    // One file per fixture set: the demo store's business is fixed when it is created.
    let database = database.map(Path::to_path_buf).unwrap_or_else(|| {
        let set = fixtures
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("fixtures");
        std::path::PathBuf::from(format!("./data/demo-{set}.db"))
    });

    if let Some(bind) = bind {
        settings.set("MANGO_BIND", bind);
    }
    let declared = fixtures.join(crate::fakebiz::FIXTURE_RESOURCES_FILE);
    if let Ok(text) = std::fs::read_to_string(&declared) {
        settings
            .declare_resources_toml(&text)
            .with_context(|| format!("{}", declared.display()))?;
    }
    for (key, value) in [
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
    ] {
        settings.set(key, value);
    }
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
            name: catalog.profile["name"]
                .as_str()
                .unwrap_or("Mango Demo Store")
                .into(),
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
        instructions(&Demo {
            address: &address.to_string(),
            business_id: &business_id,
            api_key: &api_key,
            webhook_key_hex: &hex::encode(key.key()),
            resources: &config.resources,
            catalog: &catalog,
        })
    );
    let grace = config.shutdown_grace;
    let state = AppState::new(config, db.clone())?;
    app::serve_with_grace(state, listener, shutdown_signal(), grace).await?;
    db.close();
    Ok(())
}

/// What the printed instructions are about.
struct Demo<'a> {
    address: &'a str,
    business_id: &'a str,
    api_key: &'a str,
    webhook_key_hex: &'a str,
    resources: &'a Resources,
    catalog: &'a BizCatalog,
}

/// The first item id of a resource in the fixture set, for the curl lines.
fn first_id<'a>(catalog: &'a BizCatalog, resources: &Resources, name: &str) -> Option<&'a str> {
    let resource = resources.parse(name)?;
    catalog.items(resource.biz_path()).first()?["id"].as_str()
}

fn instructions(d: &Demo<'_>) -> String {
    let base = format!("http://{}", d.address);
    let (business_id, api_key) = (d.business_id, d.api_key);
    let mut catalog_lines = String::new();
    for r in d.resources.catalog() {
        if d.catalog.items(r.biz_path()).is_empty() {
            continue;
        }
        catalog_lines += &format!("  curl -i {base}/api/v1/{r} -H 'X-Store-Id: demo'\n");
    }
    // An item, a list query and a webhook about the first resource the set really has.
    let (resource, item) = d
        .resources
        .catalog()
        .iter()
        .find_map(|r| Some((r.as_str(), first_id(d.catalog, d.resources, r.as_str())?)))
        .unwrap_or(("services", "none"));
    let mut query_lines = format!(
        "  curl -i '{base}/api/v1/{resource}?limit=5' -H 'X-Store-Id: demo'        # a page; then &cursor=…\n  curl -i '{base}/api/v1/{resource}?ids={item}' -H 'X-Store-Id: demo'\n"
    );
    if let Some(service) = first_id(d.catalog, d.resources, "services") {
        query_lines += &format!(
            "  curl -i '{base}/api/v1/staff?service_ids={service}' -H 'X-Store-Id: demo'   # who performs it\n"
        );
    }
    if let Some(category) = first_id(d.catalog, d.resources, "categories") {
        query_lines += &format!(
            "  curl -i '{base}/api/v1/services?category_id={category}' -H 'X-Store-Id: demo'\n"
        );
    }
    let (key_hex, secret) = (d.webhook_key_hex, DEMO_WEBHOOK_SECRET);
    format!(
        r#"
mango-store demo is running on {base} (fake Biz in-process, business {business_id}).

In a browser:
  the reference storefront     {base}/
  the merchant console         {base}/console/   (sign in with the store key below)

Storefront API (the store is chosen by X-Store-Id, or by Host: demo.mango.localhost):
  curl -i {base}/api/v1/store -H 'X-Store-Id: demo'
{catalog_lines}  curl -i {base}/api/v1/{resource}/{item} -H 'Host: demo.mango.localhost'   # MISS, then HIT
List queries (answered from the one cached list):
{query_lines}
Admin (operator token {DEMO_ADMIN_TOKEN}; the demo store's API key, shown once: {api_key}):
  curl -i {base}/admin/v1/stores/demo/cache -H 'Authorization: Bearer {DEMO_ADMIN_TOKEN}'
  curl -i -X POST {base}/admin/v1/stores -H 'Authorization: Bearer {DEMO_ADMIN_TOKEN}' \
       -H 'Content-Type: application/json' \
       -d '{{"slug":"second","name":"Second Store","biz_business_id":"{business_id}"}}'

A signed webhook (Standard Webhooks, secret {secret}); run it, then the item curl above
answers MISS again:
  id="evt_$(date +%s%N)"; ts=$(date +%s)
  body="{{\"id\":\"$id\",\"type\":\"{resource}.updated\",\"business_id\":\"{business_id}\",\"occurred_at\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"data\":{{\"id\":\"{item}\"}}}}"
  sig=$(printf '%s' "$id.$ts.$body" | openssl dgst -sha256 -mac HMAC -macopt hexkey:{key_hex} -binary | base64)
  curl -i -X POST {base}/webhooks/{resource}/updated -H 'Content-Type: application/json' \
       -H "webhook-id: $id" -H "webhook-timestamp: $ts" -H "webhook-signature: v1,$sig" -d "$body"

Operations: curl {base}/healthz   curl {base}/readyz   curl {base}/metrics
Stop with Ctrl-C.
"#
    )
}
