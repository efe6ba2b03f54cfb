//! What a storefront may post as an analytics event, parsed into types that are valid by
//! construction. The whole batch is checked before anything is stored (all or nothing), and
//! every refusal names the event's index and the field.

use serde::Deserialize;
use serde_json::Value;

use crate::db::ClientEvent;
use crate::error::ApiError;

pub const MAX_BATCH: usize = 100;
// The caps count characters (Unicode scalar values), as JSON Schema's `maxLength` does, so
// the OpenAPI document states them exactly.
pub const MAX_URL_CHARS: usize = 2_000;
pub const MAX_PROPS: usize = 30;
pub const MAX_PROP_KEY_CHARS: usize = 64;
pub const MAX_PROP_STRING_CHARS: usize = 256;
/// Names the server records itself (the booking module); a storefront may not forge them.
pub const RESERVED_PREFIX: &str = "booking_";
pub const PAGE_VIEW: &str = "page_view";

/// `[a-z][a-z0-9_]{0,63}`, not reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventName(String);

impl EventName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let b = raw.as_bytes();
        let shape = (1..=64).contains(&b.len())
            && b[0].is_ascii_lowercase()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_');
        if !shape {
            return Err(NameError::Invalid);
        }
        if raw.starts_with(RESERVED_PREFIX) {
            return Err(NameError::Reserved);
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum NameError {
    Invalid,
    Reserved,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    name: String,
    url: Option<String>,
    referrer: Option<String>,
    props: Option<Value>,
}

/// One event object, or an array of 1 to 100 of them.
pub fn parse_batch(body: Value) -> Result<Vec<ClientEvent>, ApiError> {
    let raws = match body {
        Value::Array(items) => {
            if items.is_empty() || items.len() > MAX_BATCH {
                return Err(ApiError::invalid(format!(
                    "a batch holds 1 to {MAX_BATCH} events, not {}",
                    items.len()
                )));
            }
            items
        }
        Value::Object(_) => vec![body],
        _ => {
            return Err(ApiError::invalid(
                "the body must be an event object or an array of them",
            ));
        }
    };
    raws.into_iter()
        .enumerate()
        .map(|(i, raw)| parse_event(raw).map_err(|e| e.at(i)))
        .collect()
}

/// A refusal before the event's index is known: the field (if one) and what is wrong.
struct Refusal {
    reserved: bool,
    field: String,
    problem: String,
}

impl Refusal {
    fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            reserved: false,
            field: field.into(),
            problem: problem.into(),
        }
    }

    fn at(self, index: usize) -> ApiError {
        let place = if self.field.is_empty() {
            format!("events[{index}]")
        } else {
            format!("events[{index}].{}", self.field)
        };
        let detail = format!("{place}: {}", self.problem);
        if self.reserved {
            ApiError::unprocessable("reserved_event_name", detail)
        } else {
            ApiError::invalid(detail)
        }
    }
}

fn parse_event(raw: Value) -> Result<ClientEvent, Refusal> {
    if !raw.is_object() {
        return Err(Refusal::invalid("", "each event must be a JSON object"));
    }
    let raw: RawEvent =
        serde_json::from_value(raw).map_err(|e| Refusal::invalid("", e.to_string()))?;
    let name = EventName::parse(&raw.name).map_err(|e| match e {
        NameError::Invalid => Refusal::invalid("name", "must match [a-z][a-z0-9_]{0,63}"),
        NameError::Reserved => Refusal {
            reserved: true,
            field: "name".into(),
            problem: format!(
                "`{RESERVED_PREFIX}*` events are recorded by the server and cannot be posted"
            ),
        },
    })?;
    // Redacted at once (query strings but `utm_*`, fragments, credentials): never stored.
    let url = capped("url", raw.url)?.map(|u| super::url_policy::redact(&u));
    let referrer = capped("referrer", raw.referrer)?.map(|u| super::url_policy::redact(&u));
    let props = raw.props.map(parse_props).transpose()?;
    let is_page_view = name.as_str() == PAGE_VIEW;
    Ok(ClientEvent {
        path: url.as_deref().and_then(url_path),
        name: name.0,
        url,
        referrer,
        props,
        is_page_view,
    })
}

fn capped(field: &str, value: Option<String>) -> Result<Option<String>, Refusal> {
    match value {
        Some(v) if v.chars().count() > MAX_URL_CHARS => Err(Refusal::invalid(
            field,
            format!("must be at most {MAX_URL_CHARS} characters"),
        )),
        other => Ok(other),
    }
}

/// Props: a flat object of at most 30 scalar values; answers its compact JSON text.
fn parse_props(props: Value) -> Result<String, Refusal> {
    let Value::Object(map) = &props else {
        return Err(Refusal::invalid("props", "must be a JSON object"));
    };
    if map.len() > MAX_PROPS {
        return Err(Refusal::invalid(
            "props",
            format!("at most {MAX_PROPS} keys, not {}", map.len()),
        ));
    }
    for (key, value) in map {
        if key.is_empty() || key.chars().count() > MAX_PROP_KEY_CHARS {
            return Err(Refusal::invalid(
                "props",
                format!("keys must be 1 to {MAX_PROP_KEY_CHARS} characters"),
            ));
        }
        let shown: String = key.chars().take(64).collect();
        match value {
            Value::String(s) if s.chars().count() > MAX_PROP_STRING_CHARS => {
                return Err(Refusal::invalid(
                    format!("props.{shown}"),
                    format!("strings must be at most {MAX_PROP_STRING_CHARS} characters"),
                ));
            }
            Value::Array(_) | Value::Object(_) => {
                return Err(Refusal::invalid(
                    format!("props.{shown}"),
                    "values must be a string, number, boolean or null",
                ));
            }
            _ => {}
        }
    }
    Ok(props.to_string())
}

/// The path of a URL (`https://shop/services/x?y` or `/services/x?y` → `/services/x`).
fn url_path(url: &str) -> Option<String> {
    if url.starts_with('/') && !url.starts_with("//") {
        let end = url.find(['?', '#']).unwrap_or(url.len());
        return Some(url[..end].to_string());
    }
    url::Url::parse(url)
        .ok()
        .filter(|u| !u.cannot_be_a_base())
        .map(|u| u.path().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn detail(err: ApiError) -> (u16, &'static str, String) {
        (err.status().as_u16(), err.code(), err.to_string())
    }

    #[test]
    fn names() {
        assert!(EventName::parse("page_view").is_ok());
        assert!(EventName::parse("a").is_ok());
        assert!(EventName::parse(&format!("a{}", "b".repeat(63))).is_ok());
        assert!(EventName::parse("booking").is_ok());
        for bad in ["", "Page", "1a", "_a", "a-b", "a b", &"a".repeat(65)] {
            assert_eq!(EventName::parse(bad), Err(NameError::Invalid), "{bad}");
        }
        assert_eq!(
            EventName::parse("booking_confirmed"),
            Err(NameError::Reserved)
        );
    }

    #[test]
    fn one_or_many() {
        assert_eq!(parse_batch(json!({"name": "a"})).unwrap().len(), 1);
        assert_eq!(
            parse_batch(json!([{"name": "a"}, {"name": "b"}]))
                .unwrap()
                .len(),
            2
        );
        let hundred: Vec<_> = (0..100).map(|_| json!({"name": "a"})).collect();
        assert_eq!(parse_batch(json!(hundred)).unwrap().len(), 100);
        let too_many: Vec<_> = (0..101).map(|_| json!({"name": "a"})).collect();
        assert_eq!(detail(parse_batch(json!(too_many)).unwrap_err()).0, 400);
        assert_eq!(detail(parse_batch(json!([])).unwrap_err()).0, 400);
        assert_eq!(detail(parse_batch(json!("a")).unwrap_err()).0, 400);
    }

    #[test]
    fn refusals_name_index_and_field() {
        let (status, code, text) = detail(
            parse_batch(json!([{"name": "a"}, {"name": "a", "url": "x".repeat(2001)}]))
                .unwrap_err(),
        );
        assert_eq!((status, code), (400, "invalid_request"));
        assert!(text.starts_with("events[1].url"), "{text}");
        let (status, code, text) =
            detail(parse_batch(json!([{"name": "booking_confirmed"}])).unwrap_err());
        assert_eq!((status, code), (422, "reserved_event_name"));
        assert!(text.starts_with("events[0].name"), "{text}");
        let text = detail(parse_batch(json!({"name": "a", "props": {"k": [1]}})).unwrap_err()).2;
        assert!(text.starts_with("events[0].props.k"), "{text}");
        let text =
            detail(parse_batch(json!([{"name": "a"}, {"name": "a", "extra": 1}])).unwrap_err()).2;
        assert!(
            text.starts_with("events[1]") && text.contains("extra"),
            "{text}"
        );
        let text = detail(parse_batch(json!([{"name": 5}])).unwrap_err()).2;
        assert!(text.starts_with("events[0]"), "{text}");
    }

    #[test]
    fn props_caps() {
        let ok: serde_json::Map<_, _> = (0..30).map(|i| (format!("k{i}"), json!(i))).collect();
        assert!(parse_batch(json!({"name": "a", "props": ok})).is_ok());
        let many: serde_json::Map<_, _> = (0..31).map(|i| (format!("k{i}"), json!(i))).collect();
        assert!(parse_batch(json!({"name": "a", "props": many})).is_err());
        let scalars = json!({"s": "x".repeat(256), "n": 1.5, "b": true, "z": null});
        assert!(parse_batch(json!({"name": "a", "props": scalars})).is_ok());
        assert!(parse_batch(json!({"name": "a", "props": {"s": "x".repeat(257)}})).is_err());
        assert!(parse_batch(json!({"name": "a", "props": {"k".repeat(65): 1}})).is_err());
        assert!(parse_batch(json!({"name": "a", "props": [1]})).is_err());
    }

    #[test]
    fn page_views_keep_their_path() {
        let e =
            &parse_batch(json!({"name": "page_view", "url": "https://s.example/services/x?q=1"}))
                .unwrap()[0];
        assert!(e.is_page_view);
        assert_eq!(e.path.as_deref(), Some("/services/x"));
        assert_eq!(url_path("/a/b#c").as_deref(), Some("/a/b"));
        assert_eq!(url_path("mailto:x@y").as_deref(), None);
        assert_eq!(url_path("not a url").as_deref(), None);
        assert!(!parse_batch(json!({"name": "click"})).unwrap()[0].is_page_view);
    }

    #[test]
    fn caps_count_characters_as_the_schema_does() {
        let props = |key: String, value: Value| {
            let mut map = serde_json::Map::new();
            map.insert(key, value);
            Value::Object(map)
        };
        let ok = json!({"name": "a", "url": "é".repeat(MAX_URL_CHARS),
            "props": props("к".repeat(MAX_PROP_KEY_CHARS), json!("🍋".repeat(MAX_PROP_STRING_CHARS)))});
        assert!(parse_batch(ok).is_ok());
        for over in [
            json!({"name": "a", "url": "a".repeat(MAX_URL_CHARS + 1)}),
            json!({"name": "a", "props": props("k".repeat(MAX_PROP_KEY_CHARS + 1), json!(1))}),
            json!({"name": "a", "props": props("k".into(), json!("v".repeat(MAX_PROP_STRING_CHARS + 1)))}),
        ] {
            assert_eq!(detail(parse_batch(over).unwrap_err()).0, 400);
        }
    }
}
