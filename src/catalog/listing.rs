//! Answering list queries from the one cached list: the list's bytes are indexed once (each
//! item's place in the body and its top-level fields), and every answered variant is kept
//! beside the entry with its own strong ETag. A filtered or paged HIT is then a map lookup,
//! not a parse; the variants die with the entry when an invalidation retires it.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use http::HeaderValue;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::entry::etag_for;
use super::query::ListQuery;
use crate::domain::Resource;

/// Variants kept per list entry; past this the map starts over (a crawler walking every
/// filter value must not grow memory without bound).
const MAX_VARIANTS: usize = 256;

/// One answered variant: the exact bytes and their ETag.
#[derive(Debug)]
pub struct Variant {
    pub body: Bytes,
    pub etag: HeaderValue,
}

/// What a list entry keeps for its queries, built on the first query.
#[derive(Debug, Default)]
pub struct ListState {
    index: OnceLock<Option<ListIndex>>,
    variants: RwLock<HashMap<Box<str>, Arc<Variant>>>,
}

impl ListState {
    /// The variant for `raw` (the request's query string, as sent), if answered before.
    pub fn cached(&self, raw: &str) -> Option<Arc<Variant>> {
        self.variants.read().ok()?.get(raw).cloned()
    }

    /// Whether the list names an item with this id (`None`: the body is not a list).
    pub fn contains(&self, body: &Bytes, id: &str) -> Option<bool> {
        let index = self.index.get_or_init(|| ListIndex::build(body)).as_ref()?;
        Some(index.items.iter().any(|i| i.id.as_deref() == Some(id)))
    }

    /// Computes the variant for a validated query and keeps it under `raw`.
    pub fn answer(
        &self,
        body: &Bytes,
        raw: &str,
        query: &ListQuery,
        store_id: i64,
        resource: Resource,
    ) -> Option<Arc<Variant>> {
        let index = self.index.get_or_init(|| ListIndex::build(body)).as_ref()?;
        let variant = Arc::new(index.variant(body, query, store_id, resource));
        if let Ok(mut variants) = self.variants.write() {
            if variants.len() >= MAX_VARIANTS {
                variants.clear();
            }
            variants.insert(raw.into(), variant.clone());
        }
        Some(variant)
    }
}

/// A top-level field of an item, as the filters compare it.
#[derive(Debug, PartialEq)]
enum Field {
    /// A string's text, or a number's or boolean's JSON text as Biz wrote it.
    Scalar(Box<str>),
    /// An array's scalar elements.
    Array(Vec<Box<str>>),
    /// `null` or an object: never matches.
    Other,
}

impl Field {
    fn of(raw: &RawValue) -> Field {
        let text = raw.get().trim();
        match text.as_bytes().first() {
            Some(b'"') => serde_json::from_str::<String>(text)
                .map(|s| Field::Scalar(s.into()))
                .unwrap_or(Field::Other),
            Some(b'[') => {
                let items: Vec<&RawValue> = serde_json::from_str(text).unwrap_or_default();
                Field::Array(
                    items
                        .into_iter()
                        .filter_map(|i| match Field::of(i) {
                            Field::Scalar(s) => Some(s),
                            _ => None,
                        })
                        .collect(),
                )
            }
            Some(b'{') | Some(b'n') | None => Field::Other,
            Some(_) => Field::Scalar(text.into()),
        }
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Field::Scalar(s) => &**s == value,
            Field::Array(items) => items.iter().any(|s| &**s == value),
            Field::Other => false,
        }
    }
}

#[derive(Debug)]
struct IndexedItem {
    range: Range<usize>,
    id: Option<Box<str>>,
    fields: Vec<(Box<str>, Field)>,
}

#[derive(Debug)]
struct ListIndex {
    items: Vec<IndexedItem>,
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    data: Vec<&'a RawValue>,
}

impl ListIndex {
    /// Indexes a `{"data":[…]}` body; `None` if it is not one (never for a body we built).
    fn build(body: &Bytes) -> Option<ListIndex> {
        let text = std::str::from_utf8(body).ok()?;
        let parsed: Body<'_> = serde_json::from_str(text).ok()?;
        let base = text.as_ptr() as usize;
        let items = parsed
            .data
            .into_iter()
            .map(|raw| {
                let start = raw.get().as_ptr() as usize - base;
                let fields: Vec<(Box<str>, Field)> =
                    serde_json::from_str::<HashMap<String, &RawValue>>(raw.get())
                        .map(|map| {
                            map.into_iter()
                                .map(|(k, v)| (k.into_boxed_str(), Field::of(v)))
                                .collect()
                        })
                        .unwrap_or_default();
                let id = fields
                    .iter()
                    .find(|(k, _)| &**k == "id")
                    .and_then(|(_, f)| match f {
                        Field::Scalar(s) => Some(s.clone()),
                        _ => None,
                    });
                IndexedItem {
                    range: start..start + raw.get().len(),
                    id,
                    fields,
                }
            })
            .collect();
        Some(ListIndex { items })
    }

    fn variant(&self, body: &Bytes, q: &ListQuery, store_id: i64, resource: Resource) -> Variant {
        let selected: Vec<&IndexedItem> = match &q.ids {
            Some(ids) => {
                let mut picked: Vec<&IndexedItem> = Vec::with_capacity(ids.len());
                for id in ids {
                    let found = self.items.iter().find(|i| i.id.as_deref() == Some(id));
                    if let Some(item) = found
                        && !picked.iter().any(|p| std::ptr::eq(*p, item))
                    {
                        picked.push(item);
                    }
                }
                picked
            }
            None => self.items.iter().collect(),
        };
        let kept: Vec<&IndexedItem> = selected
            .into_iter()
            .filter(|item| {
                q.filters.iter().all(|(field, value)| {
                    item.fields
                        .iter()
                        .find(|(k, _)| &**k == field)
                        .is_some_and(|(_, f)| f.matches(value))
                })
            })
            .collect();
        let (page, next) = match q.limit {
            None => (&kept[..], None),
            Some(limit) => {
                let start = q.offset.min(kept.len());
                let end = start.saturating_add(limit).min(kept.len());
                let next = (end < kept.len()).then(|| q.cursor(store_id, resource, end));
                (&kept[start..end], Some(next))
            }
        };
        let mut out =
            Vec::with_capacity(page.iter().map(|i| i.range.len() + 1).sum::<usize>() + 64);
        out.extend_from_slice(b"{\"data\":[");
        for (n, item) in page.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&body[item.range.clone()]);
        }
        out.push(b']');
        if let Some(next) = next {
            out.extend_from_slice(b",\"next_cursor\":");
            match next {
                Some(cursor) => {
                    out.push(b'"');
                    out.extend_from_slice(cursor.as_bytes());
                    out.push(b'"');
                }
                None => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
        let body = Bytes::from(out);
        Variant {
            etag: etag_for(&body),
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Resources;

    const LIST: &str = r#"{"data":[{"id":"a","cat":"x","n":1,"tags":["t1",2,true],"o":{"k":1}},{"id":"b","cat":"y","n":1.50,"flag":true,"z":null},{"id":"c","cat":"x","empty":"","tags":[]}]}"#;

    fn run(raw: &str) -> serde_json::Value {
        let services = Resources::defaults().services();
        let body = Bytes::from_static(LIST.as_bytes());
        let q = ListQuery::parse(raw, 1, services).unwrap();
        let state = ListState::default();
        let v = state.answer(&body, raw, &q, 1, services).unwrap();
        assert!(Arc::ptr_eq(&v, &state.cached(raw).unwrap()));
        serde_json::from_slice(&v.body).unwrap()
    }

    fn ids(v: &serde_json::Value) -> Vec<&str> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn filters_compare_text_and_array_membership() {
        assert_eq!(ids(&run("cat=x")), ["a", "c"]);
        assert_eq!(ids(&run("n=1")), ["a"]);
        assert_eq!(ids(&run("n=1.50")), ["b"]);
        assert_eq!(ids(&run("n=1.5")), Vec::<&str>::new());
        assert_eq!(ids(&run("flag=true")), ["b"]);
        assert_eq!(ids(&run("tags=t1")), ["a"]);
        assert_eq!(ids(&run("tags=2")), ["a"]);
        assert_eq!(ids(&run("tags=true")), ["a"]);
        assert_eq!(ids(&run("empty=")), ["c"]);
        assert_eq!(ids(&run("z=null")), Vec::<&str>::new());
        assert_eq!(ids(&run("o=x")), Vec::<&str>::new());
        assert_eq!(ids(&run("missing=x")), Vec::<&str>::new());
        assert_eq!(ids(&run("cat=x&id=c")), ["c"]);
    }

    #[test]
    fn ids_select_in_order_once_and_compose() {
        assert_eq!(ids(&run("ids=c,zz,a,c")), ["c", "a"]);
        assert_eq!(ids(&run("ids=c,b,a&cat=x")), ["c", "a"]);
        let page = run("ids=c,b,a&limit=2");
        assert_eq!(ids(&page), ["c", "b"]);
        assert!(page["next_cursor"].is_string());
    }

    #[test]
    fn pages_follow_their_cursor_to_a_null_end() {
        let services = Resources::defaults().services();
        let first = run("limit=2");
        assert_eq!(ids(&first), ["a", "b"]);
        let cursor = first["next_cursor"].as_str().unwrap().to_string();
        let second = run(&format!("limit=2&cursor={cursor}"));
        assert_eq!(ids(&second), ["c"]);
        assert!(second["next_cursor"].is_null());
        let q = ListQuery::parse("limit=2", 1, services).unwrap();
        assert_eq!(q.cursor(1, services, 2), cursor);
    }

    #[test]
    fn the_whole_list_keeps_the_bytes_biz_wrote() {
        let services = Resources::defaults().services();
        let body = Bytes::from_static(LIST.as_bytes());
        let q = ListQuery::parse("cat=y", 1, services).unwrap();
        let v = ListState::default()
            .answer(&body, "cat=y", &q, 1, services)
            .unwrap();
        assert_eq!(
            &v.body[..],
            br#"{"data":[{"id":"b","cat":"y","n":1.50,"flag":true,"z":null}]}"#
        );
    }
}
