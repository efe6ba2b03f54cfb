//! List queries (CONTRACT §12): `?FIELD=VALUE` filters, `?ids=A,B`, `?limit=N&cursor=C`,
//! parsed and validated into a [`ListQuery`]; and the opaque cursor, bound to its query.
//!
//! A cursor is `base64url(offset ‖ tag)`, where the tag is the first 8 bytes of a SHA-256 over
//! the store, the resource, the canonical query (filters sorted, `ids` in order, `limit`) and
//! the offset. It is not a secret — every page it can reach is public — but a cursor from
//! another query, another store or a garbled one fails the tag and is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::domain::Resource;
use crate::error::ApiError;

pub const MAX_IDS: usize = 100;
pub const MAX_LIMIT: usize = 500;
pub const MAX_VALUE_BYTES: usize = 256;
const TAG_LEN: usize = 8;

/// A validated list query. Empty means "the whole list, as cached".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// `(field, value)`, sorted by field (each field at most once).
    pub filters: Vec<(String, String)>,
    pub ids: Option<Vec<String>>,
    pub limit: Option<usize>,
    /// Where the page starts (decoded from `cursor`; 0 without one).
    pub offset: usize,
}

impl ListQuery {
    pub fn is_whole_list(&self) -> bool {
        self.filters.is_empty() && self.ids.is_none() && self.limit.is_none()
    }

    /// Parses a raw query string (form-encoded: `+` is a space). Errors name the parameter.
    pub fn parse(raw: &str, store_id: i64, resource: Resource) -> Result<Self, ApiError> {
        let mut query = ListQuery::default();
        let mut seen: Vec<String> = Vec::new();
        let mut cursor = None;
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            if seen.iter().any(|k| *k == key) {
                return Err(invalid(&key, "is given more than once"));
            }
            seen.push(key.to_string());
            match key.as_ref() {
                "limit" => {
                    let n = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n));
                    query.limit = Some(n.ok_or_else(|| {
                        invalid(
                            "limit",
                            &format!("must be an integer from 1 to {MAX_LIMIT}"),
                        )
                    })?);
                }
                "cursor" => cursor = Some(value.into_owned()),
                "ids" => {
                    let ids: Vec<String> = value.split(',').map(str::to_string).collect();
                    if ids.iter().any(String::is_empty) {
                        return Err(invalid("ids", "must not contain an empty entry"));
                    }
                    if ids.len() > MAX_IDS {
                        return Err(invalid("ids", &format!("may name at most {MAX_IDS} ids")));
                    }
                    query.ids = Some(ids);
                }
                field => {
                    if !is_field_name(field) {
                        return Err(invalid(
                            field,
                            "is not a field name ([a-z_][a-z0-9_]{0,63})",
                        ));
                    }
                    if value.len() > MAX_VALUE_BYTES {
                        return Err(invalid(
                            field,
                            &format!("must be at most {MAX_VALUE_BYTES} bytes"),
                        ));
                    }
                    query.filters.push((field.to_string(), value.into_owned()));
                }
            }
        }
        query.filters.sort();
        if let Some(cursor) = cursor {
            if query.limit.is_none() {
                return Err(invalid(
                    "cursor",
                    "needs `limit` (the page size it continues)",
                ));
            }
            query.offset = query
                .decode_cursor(&cursor, store_id, resource)
                .ok_or_else(|| {
                    ApiError::other(
                        http::StatusCode::BAD_REQUEST,
                        "invalid_cursor",
                        "`cursor` is not one this query issued (it belongs to another query, \
                     store or list, or is garbled)",
                    )
                })?;
        }
        Ok(query)
    }

    fn tag(&self, store_id: i64, resource: Resource, offset: usize) -> [u8; TAG_LEN] {
        let mut h = Sha256::new();
        h.update(b"mango-list-cursor/1\0");
        h.update(store_id.to_be_bytes());
        h.update(resource.as_str().as_bytes());
        h.update([0]);
        for (field, value) in &self.filters {
            h.update(field.as_bytes());
            h.update([0]);
            h.update((value.len() as u64).to_be_bytes());
            h.update(value.as_bytes());
        }
        h.update([1]);
        if let Some(ids) = &self.ids {
            h.update((ids.len() as u64 + 1).to_be_bytes());
            for id in ids {
                h.update((id.len() as u64).to_be_bytes());
                h.update(id.as_bytes());
            }
        } else {
            h.update(0u64.to_be_bytes());
        }
        h.update((self.limit.unwrap_or(0) as u64).to_be_bytes());
        h.update((offset as u64).to_be_bytes());
        let digest = h.finalize();
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(&digest[..TAG_LEN]);
        tag
    }

    /// The cursor of the page that starts at `offset`.
    pub fn cursor(&self, store_id: i64, resource: Resource, offset: usize) -> String {
        let mut raw = Vec::with_capacity(4 + TAG_LEN);
        raw.extend_from_slice(&(offset as u32).to_be_bytes());
        raw.extend_from_slice(&self.tag(store_id, resource, offset));
        URL_SAFE_NO_PAD.encode(raw)
    }

    fn decode_cursor(&self, cursor: &str, store_id: i64, resource: Resource) -> Option<usize> {
        let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        if raw.len() != 4 + TAG_LEN {
            return None;
        }
        let offset = u32::from_be_bytes(raw[..4].try_into().ok()?) as usize;
        (raw[4..] == self.tag(store_id, resource, offset)).then_some(offset)
    }
}

fn is_field_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=64).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

fn invalid(param: &str, problem: &str) -> ApiError {
    let shown: String = param.chars().take(64).collect();
    ApiError::invalid(format!("query parameter `{shown}` {problem}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Resources;

    fn parse(raw: &str) -> Result<ListQuery, ApiError> {
        ListQuery::parse(raw, 7, Resources::defaults().services())
    }

    #[test]
    fn parses_filters_ids_and_limit() {
        let q = parse("category_id=cat_2&ids=a,b,a&limit=5&name=Hot+stone%21").unwrap();
        assert_eq!(
            q.filters,
            vec![
                ("category_id".into(), "cat_2".into()),
                ("name".into(), "Hot stone!".into())
            ]
        );
        assert_eq!(q.ids, Some(vec!["a".into(), "b".into(), "a".into()]));
        assert_eq!(q.limit, Some(5));
        assert!(parse("").unwrap().is_whole_list());
        assert_eq!(parse("x=").unwrap().filters, vec![("x".into(), "".into())]);
    }

    #[test]
    fn refuses_what_the_contract_refuses() {
        for (raw, code, names) in [
            ("limit=0", "invalid_request", "limit"),
            ("limit=501", "invalid_request", "limit"),
            ("limit=x", "invalid_request", "limit"),
            ("ids=a,,b", "invalid_request", "ids"),
            ("a=1&a=2", "invalid_request", "`a`"),
            ("Name=x", "invalid_request", "Name"),
            ("9x=1", "invalid_request", "9x"),
            ("cursor=abc", "invalid_request", "cursor"),
            ("limit=5&cursor=abc", "invalid_cursor", ""),
        ] {
            let err = parse(raw).unwrap_err();
            assert_eq!(err.code(), code, "{raw}");
            assert!(err.to_string().contains(names), "{raw}: {err}");
        }
        let many = format!("ids={}", vec!["x"; 101].join(","));
        assert_eq!(parse(&many).unwrap_err().code(), "invalid_request");
        let long = format!("f={}", "v".repeat(257));
        assert_eq!(parse(&long).unwrap_err().code(), "invalid_request");
    }

    #[test]
    fn cursors_are_bound_to_their_query() {
        let services = Resources::defaults().services();
        let q = parse("limit=2&category_id=a").unwrap();
        let c = q.cursor(7, services, 4);
        let same = parse(&format!("category_id=a&limit=2&cursor={c}")).unwrap();
        assert_eq!(same.offset, 4);
        for other in [
            format!("limit=3&category_id=a&cursor={c}"),
            format!("limit=2&category_id=b&cursor={c}"),
            format!("limit=2&cursor={c}"),
            format!("limit=2&category_id=a&ids=x&cursor={c}"),
            format!("limit=2&category_id=a&cursor={c}x"),
        ] {
            assert_eq!(
                parse(&other).unwrap_err().code(),
                "invalid_cursor",
                "{other}"
            );
        }
        let products = Resources::defaults().products();
        assert!(
            ListQuery::parse(&format!("limit=2&category_id=a&cursor={c}"), 8, services).is_err()
        );
        assert!(
            ListQuery::parse(&format!("limit=2&category_id=a&cursor={c}"), 7, products).is_err()
        );
    }
}
