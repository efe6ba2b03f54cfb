//! Issue 16, fuzzing the parsers that face the internet, as properties (`proptest`, a bounded
//! number of cases each, so the file runs in seconds): webhook verification and body parsing,
//! analytics batches, list-query parameters and the config file. Whatever the input: no
//! panic, and a refusal is an error the client can see as a 4xx (never a 5xx).

use mango_store::analytics::event::parse_batch;
use mango_store::catalog::query::ListQuery;
use mango_store::config::{Config, Settings};
use mango_store::domain::Resources;
use mango_store::webhooks::event::{Topic, WebhookEvent};
use mango_store::webhooks::signature::{SignedDelivery, WebhookSecret, verify};
use proptest::prelude::*;
use serde_json::Value;

const SECRET: &str = "whsec_dGVzdC13ZWJob29rLXNlY3JldC1udW1iZXItb25lISE=";
const NOW: i64 = 1_800_000_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, a few levels deep, with the field names the parsers look for among
/// random ones.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::String),
        "[a-z_]{1,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "id",
            "type",
            "business_id",
            "occurred_at",
            "data",
            "name",
            "url",
            "referrer",
            "props",
            "start_at",
            "staff_id",
        ])
        .prop_map(String::from),
        "\\PC{0,12}",
    ]
}

fn services_topic() -> Topic {
    Topic::parse(&Resources::defaults(), "services", "updated").unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn webhook_verification_never_panics_and_refuses_what_is_not_signed(
        id in "\\PC{0,40}",
        timestamp in prop_oneof!["\\PC{0,20}", any::<i64>().prop_map(|t| t.to_string())],
        signatures in prop_oneof![
            "\\PC{0,120}",
            "(v1,[A-Za-z0-9+/=]{0,60} ?){1,4}",
        ],
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let secrets = vec![WebhookSecret::parse(SECRET).unwrap()];
        let delivery = SignedDelivery { id: &id, timestamp: &timestamp, signatures: &signatures, body: &body };
        prop_assert!(verify(&delivery, &secrets, NOW, 300).is_err());
    }

    #[test]
    fn a_signed_delivery_verifies_and_any_changed_byte_does_not(
        id in "[a-zA-Z0-9_]{1,40}",
        skew in -300i64..=300,
        body in prop::collection::vec(any::<u8>(), 1..512),
        flip in any::<prop::sample::Index>(),
        noise in "(v2,[A-Za-z0-9]{0,10} ){0,2}",
    ) {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let secrets = vec![secret.clone()];
        let ts = NOW + skew;
        let signatures = format!("{noise}{}", secret.sign(&id, ts, &body));
        let timestamp = ts.to_string();
        let delivery = SignedDelivery { id: &id, timestamp: &timestamp, signatures: &signatures, body: &body };
        prop_assert!(verify(&delivery, &secrets, NOW, 300).is_ok());
        let mut changed = body.clone();
        let at = flip.index(changed.len());
        changed[at] ^= 0x01;
        let delivery = SignedDelivery { body: &changed, ..delivery };
        prop_assert!(verify(&delivery, &secrets, NOW, 300).is_err());
    }

    #[test]
    fn webhook_bodies_parse_or_are_refused_without_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        value in json(),
        id in "\\PC{0,20}",
    ) {
        let topic = services_topic();
        let _ = WebhookEvent::parse(&topic, &id, &bytes);
        let _ = WebhookEvent::parse(&topic, &id, value.to_string().as_bytes());
    }

    #[test]
    fn near_valid_webhook_bodies_parse_or_are_refused_without_panic(
        id in prop_oneof!["evt_[a-z0-9]{1,10}", "\\PC{0,140}"],
        event_type in prop_oneof![Just("services.updated".to_string()), "\\PC{0,30}"],
        business in "\\PC{0,30}",
        occurred_at in prop_oneof![
            Just("2026-11-21T10:00:00Z".to_string()),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})?",
            "\\PC{0,30}",
        ],
        data in json(),
        item in "\\PC{0,200}",
    ) {
        let topic = services_topic();
        let mut data = data;
        if let Value::Object(map) = &mut data {
            map.insert("id".into(), Value::String(item));
        }
        let body = serde_json::json!({
            "id": id, "type": event_type, "business_id": business, "occurred_at": occurred_at,
            "data": data,
        });
        let _ = WebhookEvent::parse(&topic, &id, body.to_string().as_bytes());
    }

    #[test]
    fn analytics_batches_are_accepted_or_refused_with_a_4xx(value in json()) {
        if let Err(err) = parse_batch(value) {
            prop_assert!(err.status().is_client_error(), "{}", err.status());
        }
    }

    #[test]
    fn near_valid_analytics_events_are_accepted_or_refused_with_a_4xx(
        events in prop::collection::vec(
            (
                prop_oneof!["[a-z][a-z0-9_]{0,70}", "\\PC{0,20}", Just("booking_x".to_string())],
                prop::option::of("\\PC{0,300}"),
                prop::option::of(json()),
            ),
            0..110,
        ),
    ) {
        let batch = Value::Array(
            events
                .into_iter()
                .map(|(name, url, props)| {
                    let mut event = serde_json::json!({"name": name});
                    if let Some(url) = url { event["url"] = Value::String(url); }
                    if let Some(props) = props { event["props"] = props; }
                    event
                })
                .collect(),
        );
        if let Err(err) = parse_batch(batch) {
            prop_assert!(err.status().is_client_error(), "{}", err.status());
        }
    }

    #[test]
    fn list_queries_parse_or_are_refused_with_a_4xx(
        raw in prop_oneof![
            "\\PC{0,120}",
            "(([a-z_]{1,8}|ids|limit|cursor)=([a-zA-Z0-9_,+%.-]{0,12}|%[0-9A-Fa-f]{0,2})&?){0,6}",
        ],
    ) {
        let services = Resources::defaults().services();
        if let Err(err) = ListQuery::parse(&raw, 1, services) {
            prop_assert!(err.status().is_client_error(), "{}", err.status());
        }
    }

    #[test]
    fn a_cursor_is_good_for_its_own_query_only(
        limit in 1usize..=500,
        offset in 0usize..10_000,
        field in "[a-z_]{1,10}",
        value in "[a-z0-9]{0,10}",
    ) {
        prop_assume!(!["ids", "limit", "cursor"].contains(&field.as_str()));
        let services = Resources::defaults().services();
        let raw = format!("{field}={value}&limit={limit}");
        let query = ListQuery::parse(&raw, 1, services).unwrap();
        let cursor = query.cursor(1, services, offset);
        let encoded: String = url::form_urlencoded::byte_serialize(cursor.as_bytes()).collect();
        let paged = format!("{raw}&cursor={encoded}");
        prop_assert!(ListQuery::parse(&paged, 1, services).is_ok());
        let other = Resources::defaults().staff();
        let refused = ListQuery::parse(&paged, 2, services);
        prop_assert!(refused.is_err_and(|e| e.status().is_client_error()));
        let refused = ListQuery::parse(&paged, 1, other);
        prop_assert!(refused.is_err_and(|e| e.status().is_client_error()));
    }

    #[test]
    fn resource_declarations_are_declared_or_refused_without_panic(
        text in prop_oneof![
            "\\PC{0,200}",
            prop::collection::vec(
                (
                    prop_oneof!["[a-z][a-z0-9_]{0,40}", "\\PC{0,10}", Just("store".to_string())],
                    prop::option::of(prop_oneof!["[a-z0-9/_-]{0,70}", "\\PC{0,10}"]),
                    prop::option::of(prop_oneof![
                        any::<i64>().prop_map(|i| i.to_string()),
                        Just("\"60\"".to_string()),
                        Just("1.5".to_string()),
                        Just("true".to_string()),
                    ]),
                ),
                0..5,
            )
            .prop_map(|entries| {
                entries.into_iter().map(|(name, path, ttl)| {
                    let mut entry = format!("[[resources]]\nname = {name:?}\n");
                    if let Some(path) = path { entry.push_str(&format!("biz_path = {path:?}\n")); }
                    if let Some(ttl) = ttl { entry.push_str(&format!("ttl_secs = {ttl}\n")); }
                    entry
                }).collect::<String>()
            }),
        ],
        variable in "[a-z_,]{0,40}",
    ) {
        let mut settings = required();
        settings.set("MANGO_RESOURCES", variable);
        if settings.declare_resources_toml(&text).is_ok() {
            let _ = Config::from_settings(&settings);
        }
    }

    #[test]
    fn settings_values_are_taken_or_refused_without_panic(
        values in prop::collection::vec(
            (
                prop::sample::select(KEYS.to_vec()),
                prop_oneof![
                    "\\PC{0,40}",
                    "-?[0-9]{0,25}(\\.[0-9]{0,6})?",
                    Just("true".to_string()),
                    Just("0".to_string()),
                    "(sqlite|mssql)://[a-z:@/.?=&0-9_%]{0,40}",
                ],
            ),
            0..8,
        ),
    ) {
        let mut settings = required();
        for (key, value) in values {
            settings.set(key, value);
        }
        let _ = Config::from_settings(&settings);
    }

    #[test]
    fn config_files_are_read_or_refused_without_panic(
        lines in prop::collection::vec(
            prop_oneof![
                "\\PC{0,60}",
                (prop::sample::select(KEYS.to_vec()), "\\PC{0,20}")
                    .prop_map(|(k, v)| format!("{k} = {v:?}")),
                (prop::sample::select(KEYS.to_vec()), any::<i64>())
                    .prop_map(|(k, v)| format!("{} = {v}", k.trim_start_matches("MANGO_").to_lowercase())),
                Just("[[resources]]\nname = \"events\"".to_string()),
            ],
            0..8,
        ),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mango.toml");
        std::fs::write(&path, lines.join("\n")).unwrap();
        if let Ok(settings) = Settings::load(Some(&path)) {
            let _ = Config::from_settings(&settings);
        }
    }
}

const KEYS: &[&str] = &[
    "MANGO_BIND",
    "MANGO_DATABASE_URL",
    "MANGO_BIZ_API_URL",
    "MANGO_BIZ_TIMEOUT_MS",
    "MANGO_WEBHOOK_SECRETS",
    "MANGO_WEBHOOK_TOLERANCE_SECS",
    "MANGO_CACHE_TTL_SECS",
    "MANGO_CACHE_STALE_SECS",
    "MANGO_CACHE_MAX_ENTRIES",
    "MANGO_RESOURCES",
    "MANGO_AVAILABILITY_TTL_SECS",
    "MANGO_DRAFT_TTL_SECS",
    "MANGO_BOOKING_HORIZON_DAYS",
    "MANGO_BASE_DOMAIN",
    "MANGO_HEADER_READ_TIMEOUT_SECS",
    "MANGO_BODY_READ_TIMEOUT_SECS",
    "MANGO_KEEP_ALIVE_TIMEOUT_SECS",
    "MANGO_MAX_CONNECTIONS",
    "MANGO_SHUTDOWN_GRACE_SECS",
    "MANGO_ANALYTICS_RETENTION_DAYS",
    "MANGO_TRUST_FORWARDED_FOR",
    "MANGO_STOREFRONT",
    "MANGO_LOG_FORMAT",
    "MANGO_BIZ_MAX_CONCURRENCY",
];

fn required() -> Settings {
    Settings::from_pairs([
        ("MANGO_DATABASE_URL", "sqlite://./x.db"),
        ("MANGO_BIZ_API_URL", "http://127.0.0.1:9"),
        ("MANGO_BIZ_API_KEY", "k"),
        ("MANGO_WEBHOOK_SECRETS", SECRET),
        ("MANGO_ADMIN_TOKEN", "t"),
    ])
}
