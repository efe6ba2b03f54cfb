//! What the memory cache holds: a ready-to-send body with its ETag, tagged with the
//! generation it was filled under.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::HeaderValue;
use sha2::{Digest, Sha256};

use super::listing::ListState;

/// Per `(store, resource)` state, shared by every entry of that pair. Entries hold an `Arc` to
/// it, so the HIT path validates an entry and counts the hit with atomics only: no map
/// lookup, no lock.
#[derive(Debug, Default)]
pub struct ResourceSlot {
    generation: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stale: AtomicU64,
    /// Invalidations of the pair that reached memory but failed in SQL, and how many of them
    /// a later SQL invalidation has since made good (see `CatalogCache::sql_in_step`).
    sql_missed: AtomicU64,
    sql_repaired: AtomicU64,
}

impl ResourceSlot {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Makes every entry filled under an older generation invisible at once, and every fill
    /// still in flight unstorable.
    pub fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Records an invalidation whose SQL part failed. Called before the `bump` of that
    /// invalidation, so a fill that sees the new generation also sees this.
    pub fn note_sql_missed(&self) {
        self.sql_missed.fetch_add(1, Ordering::SeqCst);
    }

    /// `Some(mark)` while an invalidation has not reached SQL; pass `mark` to `sql_repaired`
    /// once an SQL invalidation of the whole pair has succeeded since.
    pub fn sql_behind(&self) -> Option<u64> {
        let missed = self.sql_missed.load(Ordering::SeqCst);
        (missed > self.sql_repaired.load(Ordering::SeqCst)).then_some(missed)
    }

    pub fn sql_repaired(&self, mark: u64) {
        self.sql_repaired.fetch_max(mark, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Found,
    /// Biz answered 404 for this item (negative caching).
    NotFound,
}

#[derive(Debug)]
pub struct Entry {
    pub kind: EntryKind,
    /// The whole response body, `{"data": …}`; cloning it copies no bytes.
    pub body: Bytes,
    pub etag: HeaderValue,
    pub fresh_until_ms: i64,
    /// Past this, the entry may not be served even when Biz is down.
    pub usable_until_ms: i64,
    /// After a failed refresh, readers serve STALE without asking Biz again until then.
    retry_at_ms: AtomicI64,
    slot: Arc<ResourceSlot>,
    generation: u64,
    /// A list's indexed items and answered query variants (built on the first query).
    list: OnceLock<Box<ListState>>,
}

impl Entry {
    pub fn new(
        kind: EntryKind,
        body: Bytes,
        fresh_until_ms: i64,
        usable_until_ms: i64,
        slot: Arc<ResourceSlot>,
        generation: u64,
    ) -> Self {
        Self {
            kind,
            etag: etag_for(&body),
            body,
            fresh_until_ms,
            usable_until_ms,
            retry_at_ms: AtomicI64::new(0),
            slot,
            generation,
            list: OnceLock::new(),
        }
    }

    /// The query state of a list entry.
    pub fn list_state(&self) -> &ListState {
        self.list.get_or_init(Box::default)
    }

    /// False once an invalidation of its `(store, resource)` has happened since the fill.
    pub fn is_current(&self) -> bool {
        self.generation == self.slot.generation()
    }

    pub fn slot(&self) -> &ResourceSlot {
        &self.slot
    }

    pub fn defer_retry(&self, until_ms: i64) {
        self.retry_at_ms.store(until_ms, Ordering::Relaxed);
    }

    pub fn retry_deferred(&self, now_ms: i64) -> bool {
        now_ms < self.retry_at_ms.load(Ordering::Relaxed)
    }
}

/// A strong ETag: the first 128 bits of the body's SHA-256.
pub fn etag_for(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let tag = format!("\"{}\"", hex::encode(&digest[..16]));
    HeaderValue::from_str(&tag).expect("hex is a valid header value")
}

/// `{"data":[a,b,…]}` from items' JSON text, in order.
pub fn list_body<'a>(items: impl IntoIterator<Item = &'a str>) -> Bytes {
    let mut body = Vec::with_capacity(1024);
    body.extend_from_slice(b"{\"data\":[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item.as_bytes());
    }
    body.extend_from_slice(b"]}");
    Bytes::from(body)
}

/// `{"data":ITEM}`.
pub fn item_body(item: &str) -> Bytes {
    let mut body = Vec::with_capacity(item.len() + 9);
    body.extend_from_slice(b"{\"data\":");
    body.extend_from_slice(item.as_bytes());
    body.push(b'}');
    Bytes::from(body)
}

/// RFC 9110 `If-None-Match`: `*` or a list of tags, compared weakly.
pub fn matches_if_none_match(header: &[u8], etag: &HeaderValue) -> bool {
    let Ok(header) = std::str::from_utf8(header) else {
        return false;
    };
    let ours = etag.as_bytes();
    let ours = ours.strip_prefix(b"W/").unwrap_or(ours);
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_wrap_items_unchanged() {
        assert_eq!(
            &list_body(["{\"id\":1}", "{ \"id\" : 2 }"])[..],
            b"{\"data\":[{\"id\":1},{ \"id\" : 2 }]}"
        );
        assert_eq!(&list_body([])[..], b"{\"data\":[]}");
        assert_eq!(
            &item_body("{\"id\":\"a\"}")[..],
            b"{\"data\":{\"id\":\"a\"}}"
        );
    }

    #[test]
    fn etags_are_strong_and_follow_the_bytes() {
        let a = etag_for(b"one");
        assert_eq!(a, etag_for(b"one"));
        assert_ne!(a, etag_for(b"two"));
        assert!(a.to_str().unwrap().starts_with('"'));
    }

    #[test]
    fn if_none_match_forms() {
        let tag = etag_for(b"x");
        let t = tag.to_str().unwrap();
        assert!(matches_if_none_match(t.as_bytes(), &tag));
        assert!(matches_if_none_match(
            format!("\"zzz\", W/{t}").as_bytes(),
            &tag
        ));
        assert!(matches_if_none_match(b"*", &tag));
        assert!(!matches_if_none_match(b"\"zzz\"", &tag));
        assert!(!matches_if_none_match(&[0xff, 0xfe], &tag));
    }

    #[test]
    fn a_bump_retires_entries_of_older_generations() {
        let slot = Arc::new(ResourceSlot::default());
        let entry = Entry::new(
            EntryKind::Found,
            Bytes::new(),
            0,
            0,
            slot.clone(),
            slot.generation(),
        );
        assert!(entry.is_current());
        slot.bump();
        assert!(!entry.is_current());
    }
}
