//! The bodies the service accepts and answers, as JSON Schema 2020-12 (what OpenAPI 3.1
//! speaks), written out rather than derived: the parsers in `admin/settings.rs`,
//! `booking/draft.rs` and `analytics/event.rs` trim, count and refuse in ways a derive cannot
//! say (`not`, `if`/`then`, patterns built from the same rules), and a schema that is looser
//! or stricter than its parser is exactly what Schemathesis reports. The limits come from the
//! parsers' own constants.
//!
//! Each schema is a unit type implementing `ToSchema`, so `#[utoipa::path]` annotations refer
//! to it by name (`body = Draft`); its text replaces utoipa's placeholder when the document
//! is finished ([`all`]).

use serde_json::{Value, json};

use crate::admin::settings::{MAX_STORE_NAME, MAX_THEME_BYTES};
use crate::analytics::event::{
    MAX_BATCH, MAX_PROP_KEY_CHARS, MAX_PROP_STRING_CHARS, MAX_PROPS, MAX_URL_CHARS, RESERVED_PREFIX,
};
use crate::booking::draft::{MAX_EMAIL, MAX_NAME, MAX_NOTES, MAX_PHONE};
use crate::domain::MAX_ID_LEN;
use crate::origin::MAX_ALLOWED_ORIGINS;

/// `[a-z0-9][a-z0-9-]{1,62}` (`tenant::is_valid_slug`).
pub const SLUG: &str = "^[a-z0-9][a-z0-9-]{1,62}$";
/// `drf_` and 32 lowercase hex digits (`booking::draft::is_draft_id`).
pub const DRAFT_ID: &str = "^drf_[0-9a-f]{32}$";
/// 1–255 visible ASCII characters (`booking::draft::idempotency_key`).
pub const IDEMPOTENCY_KEY: &str = "^[!-~]{1,255}$";
/// A declared resource's name (CONTRACT §12).
pub const RESOURCE_NAME: &str = "^[a-z][a-z0-9_]{0,31}$";
const TEMPLATE: &str = "^[a-z0-9][a-z0-9_-]{0,63}$";
const EVENT_NAME: &str = "^[a-z][a-z0-9_]{0,63}$";
const API_KEY: &str = "^msk_[A-Za-z0-9_-]{43}$";

/// Whitespace that both Rust's `str::trim` and ECMA-262's `\s` know (Python's `\s` also
/// matches U+001C–U+001F, which `trim` keeps, so the class is spelt out).
const WS: &str = r"\t\n\u000b\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// `char::is_control`: the C0 and C1 controls and DEL.
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";

/// A printable ASCII id of at most `MAX_ID_LEN`, not `.` or `..` (`domain::is_plausible_id`).
fn plausible_id() -> Value {
    json!({"type": "string", "pattern": format!("^[!-~]{{1,{MAX_ID_LEN}}}$"),
           "not": {"enum": [".", ".."]}})
}

/// `admin::settings::parse_name`: 1–200 characters once trimmed, none of them a control.
fn store_name() -> Value {
    let edge = format!("[^{WS}{CONTROL}]");
    let inner = format!("[^{CONTROL}]{{0,{}}}", MAX_STORE_NAME - 2);
    json!({"type": "string", "pattern": format!("^[{WS}]*{edge}(?:{inner}{edge})?[{WS}]*$"),
           "description": format!("1 to {MAX_STORE_NAME} characters once trimmed, no control characters")})
}

/// `admin::settings::parse_custom_domain`: at least two labels of letters, digits and inner
/// hyphens, a last label that is not all digits; not `MANGO_BASE_DOMAIN` or under it.
fn host_name() -> Value {
    let label = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    json!({"type": "string", "maxLength": 253,
           "pattern": format!(r"^{label}(?:\.{label})+\.*$"),
           "not": {"pattern": r"\.[0-9]+\.*$"},
           "description": "A host name such as shop.example.com (stored in lower case); not MANGO_BASE_DOMAIN or a name under it"})
}

/// An IPv6 address in hexadecimal groups, `::` for one or more zero groups (what
/// `std::net::Ipv6Addr` reads, without an embedded IPv4 part).
fn ipv6() -> String {
    let h = "[0-9A-Fa-f]{1,4}";
    [
        format!("(?:{h}:){{7}}{h}"),
        format!("(?:{h}:){{1,7}}:"),
        format!("(?:{h}:){{1,6}}:{h}"),
        format!("(?:{h}:){{1,5}}(?::{h}){{1,2}}"),
        format!("(?:{h}:){{1,4}}(?::{h}){{1,3}}"),
        format!("(?:{h}:){{1,3}}(?::{h}){{1,4}}"),
        format!("(?:{h}:){{1,2}}(?::{h}){{1,5}}"),
        format!("{h}:(?::{h}){{1,6}}"),
        format!(":(?:(?::{h}){{1,7}}|:)"),
    ]
    .join("|")
}

/// `origin::parse`: `http(s)://host[:port]`, no path, no trailing slash.
fn origin() -> Value {
    let port = "[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]\
                |0[1-9][0-9]{0,3}|00[1-9][0-9]{0,2}|000[1-9][0-9]?|0000[1-9]";
    // 1 to 253 letters, digits, hyphens and dots, no dot first or last, no `..` (the `not`).
    let host = format!(
        r"[A-Za-z0-9-](?:[A-Za-z0-9.-]{{0,251}}[A-Za-z0-9-])?|\[(?:{})\]",
        ipv6()
    );
    json!({"type": "string",
           "pattern": format!("^[Hh][Tt][Tt][Pp][Ss]?://(?:{host})(?::(?:{port}))?$"),
           "not": {"pattern": r"\.\."},
           "examples": ["https://shop.example.com"]})
}

fn allowed_origins() -> Value {
    json!({"type": ["array", "null"], "maxItems": MAX_ALLOWED_ORIGINS, "items": origin(),
           "description": "Origins allowed to call the storefront API from a browser, besides the store's own site (CONTRACT §14); answered normalised. `null` or `[]` clears the list"})
}

fn theme() -> Value {
    json!({"type": "object", "additionalProperties": true,
           "description": format!("Free-form settings for the theme; at most {MAX_THEME_BYTES} bytes as compact JSON")})
}

fn date_time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn nullable_string() -> Value {
    json!({"type": ["string", "null"]})
}

fn envelope(schema: &str) -> Value {
    json!({"type": "object", "required": ["data"],
           "properties": {"data": {"$ref": format!("#/components/schemas/{schema}")}}})
}

/// Declares the schemas: a unit type per name, and [`all`] with their text.
macro_rules! schemas {
    ($resources:ident => { $($(#[$meta:meta])* $name:ident = $json:expr;)+ }) => {
        $(
            $(#[$meta])*
            pub struct $name;

            impl utoipa::PartialSchema for $name {
                /// A placeholder; [`all`] has the real text.
                fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                    utoipa::openapi::ObjectBuilder::new().into()
                }
            }

            impl utoipa::ToSchema for $name {}
        )+

        /// Every schema by name; `resources` are the declared catalog resources.
        pub fn all($resources: &[&str]) -> Vec<(&'static str, Value)> {
            vec![$((stringify!($name), $json)),+]
        }
    };
}

schemas!(resources => {
    // Storefront (CONTRACT §5, §12, §13).
    /// A store's public settings.
    PublicStore = json!({"type": "object",
        "required": ["slug", "name", "template", "theme", "custom_domain"],
        "properties": {"slug": {"type": "string", "pattern": SLUG}, "name": {"type": "string"},
            "template": {"type": "string"}, "theme": {"type": "object", "additionalProperties": true},
            "custom_domain": nullable_string()}});
    PublicStoreAnswer = envelope("PublicStore");
    /// A Biz item, passed through unchanged.
    CatalogItem = json!({"type": "object", "required": ["id"], "additionalProperties": true,
        "properties": {"id": {"type": "string"}},
        "description": "Biz's item as Biz has it; every item has an `id`"});
    CatalogItemAnswer = envelope("CatalogItem");
    CatalogListAnswer = json!({"type": "object", "required": ["data"],
        "properties": {
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/CatalogItem"}},
            "next_cursor": {"type": ["string", "null"],
                "description": "With `limit` only: the next page's `cursor`, or null on the last page"}}});
    Slot = json!({"type": "object", "required": ["start_at", "end_at"],
        "properties": {"start_at": date_time(), "end_at": date_time(), "staff_id": nullable_string()}});
    Availability = json!({"type": "object",
        "required": ["service_id", "staff_id", "date", "days", "slots"],
        "properties": {"service_id": {"type": "string"}, "staff_id": nullable_string(),
            "date": {"type": "string", "format": "date"},
            "days": {"type": "integer", "minimum": 1, "maximum": crate::availability::MAX_DAYS},
            "slots": {"type": "array", "items": {"$ref": "#/components/schemas/Slot"}}}});
    AvailabilityAnswer = envelope("Availability");

    // Booking drafts (CONTRACT §8).
    DraftCustomer = json!({"type": "object", "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
            "phone": {"type": ["string", "null"], "maxLength": MAX_PHONE},
            "email": {"type": ["string", "null"], "maxLength": MAX_EMAIL}},
        "description": "A name and a phone or an email (else 422 `invalid_customer`)"});
    /// `POST /api/v1/booking/draft`; unknown fields are ignored.
    DraftRequest = json!({"type": "object", "required": ["service_id", "start_at", "customer"],
        "properties": {
            "service_id": {"type": "string"},
            "staff_id": {"type": ["string", "null"], "description": "Empty or null: any staff member"},
            "start_at": {"type": "string", "format": "date-time",
                "description": "RFC 3339 with an explicit offset, in the future and within the booking horizon"},
            "customer": {"$ref": "#/components/schemas/DraftCustomer"},
            "notes": {"type": ["string", "null"], "maxLength": MAX_NOTES}}});
    Draft = json!({"type": "object",
        "required": ["id", "status", "service_id", "staff_id", "start_at", "end_at", "price",
                     "customer", "notes", "expires_at", "booking"],
        "properties": {
            "id": {"type": "string", "pattern": DRAFT_ID},
            "status": {"enum": ["draft", "confirmed", "failed", "expired", "cancelled"]},
            "service_id": {"type": "string"}, "staff_id": nullable_string(),
            "start_at": date_time(), "end_at": date_time(),
            "price": {"description": "The service's `price` when the draft was made"},
            "customer": {"type": "object", "required": ["name", "phone", "email"],
                "description": "Erased (all null) a day after the appointment",
                "properties": {"name": nullable_string(), "phone": nullable_string(), "email": nullable_string()}},
            "notes": nullable_string(), "expires_at": date_time(),
            "booking": {"type": ["object", "null"], "additionalProperties": true,
                "description": "Biz's answer, once confirmed"}}});
    DraftAnswer = envelope("Draft");

    // Analytics (CONTRACT §9); the caps are `analytics::event`'s.
    AnalyticsEvent = json!({"type": "object", "required": ["name"], "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "pattern": EVENT_NAME,
                "not": {"pattern": format!("^{RESERVED_PREFIX}")},
                "description": "`booking_*` names are recorded by the server (422 `reserved_event_name`)"},
            "url": {"type": ["string", "null"], "maxLength": MAX_URL_CHARS},
            "referrer": {"type": ["string", "null"], "maxLength": MAX_URL_CHARS},
            "props": {"type": ["object", "null"], "maxProperties": MAX_PROPS,
                "propertyNames": {"minLength": 1, "maxLength": MAX_PROP_KEY_CHARS},
                "additionalProperties": {"anyOf": [
                    {"type": "string", "maxLength": MAX_PROP_STRING_CHARS},
                    {"type": ["number", "boolean", "null"]}]}}}});
    AnalyticsBatch = json!({"oneOf": [
        {"$ref": "#/components/schemas/AnalyticsEvent"},
        {"type": "array", "minItems": 1, "maxItems": MAX_BATCH,
         "items": {"$ref": "#/components/schemas/AnalyticsEvent"}}]});
    AnalyticsAccepted = json!({"type": "object", "required": ["data"],
        "properties": {"data": {"type": "object", "required": ["accepted"],
            "properties": {"accepted": {"type": "integer", "minimum": 1, "maximum": MAX_BATCH}}}}});

    // Webhooks (CONTRACT §6).
    WebhookEvent = json!({"type": "object",
        "required": ["id", "type", "business_id", "occurred_at", "data"],
        "properties": {
            "id": plausible_id(), "type": {"type": "string", "description": "`{resource}.{event}` of the path"},
            "business_id": plausible_id(), "occurred_at": date_time(),
            "data": {"type": "object", "required": ["id"], "properties": {"id": plausible_id(),
                "start_at": date_time(), "staff_id": {"type": "string"}}}}});
    WebhookAnswer = json!({"type": "object", "required": ["data"],
        "properties": {"data": {"type": "object", "required": ["status"],
            "properties": {"status": {"enum": ["processed", "duplicate", "ignored"]}}}}});

    // Admin (CONTRACT §10).
    /// `POST /admin/v1/stores`; unknown fields are ignored.
    CreateStore = json!({"type": "object", "required": ["slug", "name", "biz_business_id"],
        "properties": {
            "slug": {"type": "string", "pattern": SLUG, "description": "Immutable"},
            "name": store_name(),
            "biz_business_id": {"type": "string", "pattern": "^[!-~]{1,128}$"},
            "template": {"type": ["string", "null"], "pattern": TEMPLATE, "default": "classic"},
            "theme": {"type": ["object", "null"], "additionalProperties": true,
                "description": theme()["description"]},
            "custom_domain": {"anyOf": [host_name(), {"type": "null"}]},
            "allowed_origins": allowed_origins()}});
    /// `PATCH /admin/v1/stores/{slug}`: only what changes; `slug` and `biz_business_id` may
    /// be echoed unchanged but are not part of a change.
    UpdateStore = json!({"type": "object", "additionalProperties": false,
        "properties": {
            "name": store_name(),
            "template": {"type": "string", "pattern": TEMPLATE},
            "theme": theme(),
            "custom_domain": {"anyOf": [host_name(), {"type": "null"}], "description": "`null` clears it"},
            "is_published": {"type": "boolean"},
            "allowed_origins": allowed_origins()}});
    AdminStore = json!({"type": "object",
        "required": ["slug", "name", "biz_business_id", "template", "theme", "custom_domain",
                     "is_published", "allowed_origins", "created_at", "updated_at"],
        "properties": {"slug": {"type": "string", "pattern": SLUG}, "name": {"type": "string"},
            "biz_business_id": {"type": "string"}, "template": {"type": "string"},
            "theme": {"type": "object", "additionalProperties": true},
            "custom_domain": nullable_string(),
            "is_published": {"type": "boolean"},
            "allowed_origins": {"type": "array", "items": {"type": "string"}},
            "created_at": date_time(), "updated_at": date_time()}});
    AdminStoreAnswer = envelope("AdminStore");
    /// A store with its new API key, shown once.
    StoreWithKey = json!({"type": "object", "required": ["data", "api_key"],
        "properties": {"data": {"$ref": "#/components/schemas/AdminStore"},
            "api_key": {"type": "string", "pattern": API_KEY}}});
    /// `{}` (everything), `{"resource"}` or `{"resource", "id"}`.
    CachePurge = json!({"type": "object", "additionalProperties": false,
        "properties": {
            "resource": {"enum": resources.iter().map(|r| json!(r)).chain([Value::Null]).collect::<Vec<_>>()},
            "id": {"anyOf": [plausible_id(), {"type": "null"}]}},
        "if": {"required": ["id"], "properties": {"id": {"type": "string"}}},
        "then": {"required": ["resource"], "properties": {"resource": {"type": "string"}}}});
    CachePurged = json!({"type": "object", "required": ["data"],
        "properties": {"data": {"type": "object", "required": ["purged"],
            "properties": {"purged": {"type": "object", "required": ["scope"],
                "properties": {"scope": {"enum": ["store", "resource", "item"]},
                    "resource": {"type": "string"}, "id": {"type": "string"}}}}}}});
    CacheStats = json!({"type": "object", "required": ["data"],
        "properties": {"data": {"type": "object",
            "description": "Per declared resource",
            "additionalProperties": {"type": "object",
                "required": ["entries", "hits", "misses", "stale"],
                "properties": {
                    "entries": {"type": "object", "required": ["memory", "sql"],
                        "properties": {"memory": {"type": "integer", "minimum": 0},
                                       "sql": {"type": "integer", "minimum": 0}}},
                    "hits": {"type": "integer", "minimum": 0},
                    "misses": {"type": "integer", "minimum": 0},
                    "stale": {"type": "integer", "minimum": 0}}}}}});
    WebhookDeliveries = json!({"type": "object", "required": ["data"],
        "properties": {"data": {"type": "array", "items": {"type": "object",
            "required": ["id", "type", "received_at", "status"],
            "properties": {"id": {"type": "string"}, "type": {"type": "string"},
                "received_at": date_time(),
                "status": {"enum": ["processing", "processed", "ignored"]}}}}}});
    AnalyticsSummary = json!({"type": "object", "required": ["data"],
        "properties": {"data": {"type": "object",
            "required": ["page_views", "visitors", "sessions", "events", "funnel", "daily", "from", "to"],
            "properties": {
                "page_views": {"type": "integer", "minimum": 0},
                "visitors": {"type": "integer", "minimum": 0},
                "sessions": {"type": "integer", "minimum": 0},
                "events": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
                "funnel": {"type": "object",
                    "required": ["service_views", "drafts_created", "bookings_confirmed"],
                    "additionalProperties": {"type": "integer", "minimum": 0}},
                "daily": {"type": "array", "items": {"type": "object",
                    "required": ["date", "page_views", "visitors", "sessions"],
                    "properties": {"date": {"type": "string", "format": "date"},
                        "page_views": {"type": "integer"}, "visitors": {"type": "integer"},
                        "sessions": {"type": "integer"}}}},
                "from": date_time(), "to": date_time()}}}});

    /// A bound of an analytics range: an RFC 3339 instant, or a whole UTC day.
    TimeBound = json!({"type": "string", "anyOf": [{"format": "date-time"}, {"format": "date"}],
        "examples": ["2026-11-01", "2026-11-21T10:00:00Z"]});

    // Operations (CONTRACT §11).
    Health = json!({"type": "object", "required": ["data"],
        "properties": {"data": {"type": "object", "required": ["status"],
            "properties": {"status": {"enum": ["ok", "ready"]}}}}});
});

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `schema` accepts the string `text` (boon reads ECMA-262 patterns).
    fn matches(schema: &Value, text: &str) -> bool {
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler.add_resource("urn:schema", schema.clone()).unwrap();
        let index = compiler.compile("urn:schema", &mut schemas).unwrap();
        schemas.validate(&json!(text), index).is_ok()
    }

    #[test]
    fn the_name_pattern_is_parse_name() {
        use crate::admin::settings::parse_name;
        let schema = store_name();
        for name in [
            "Salon",
            " Salon ",
            "a",
            "\tA b\n",
            &"x".repeat(200),
            &format!(" {} ", "x".repeat(200)),
        ] {
            assert!(
                parse_name(name).is_ok() && matches(&schema, name),
                "{name:?}"
            );
        }
        for name in ["", "  ", "a\u{1}b", &"x".repeat(201), "\u{1c}a"] {
            assert!(
                parse_name(name).is_err() && !matches(&schema, name),
                "{name:?}"
            );
        }
    }

    #[test]
    fn the_origin_pattern_is_origin_parse() {
        let schema = origin();
        for o in [
            "http://a.b",
            "HTTPS://Shop.Example.com:443",
            "http://[::1]:8080",
            "http://[::]",
            "http://[1:2:3:4:5:6:7::]",
            "http://[::1:2:3:4:5:6:7]",
            "http://[fe80::1:2]",
            "http://[1:2:3:4:5:6:7:8]",
            "http://x:00080",
            &format!("http://{}:1", "a".repeat(253)),
        ] {
            assert!(
                crate::origin::normalise(o).is_some() && matches(&schema, o),
                "{o}"
            );
        }
        for o in [
            "http://a.b/",
            "ftp://a.b",
            "http://a..b",
            "http://a:0",
            "http://a:65536",
            "http://a:000080",
            "http://a:",
            "http://[cd41e9dce2]",
            "http://[1:2]",
            "http://[1:::2]",
            "http://[1:2:3:4:5:6:7:8:9]",
            &format!("http://{}", "a".repeat(254)),
        ] {
            assert!(
                crate::origin::normalise(o).is_none() && !matches(&schema, o),
                "{o}"
            );
        }
    }
}
