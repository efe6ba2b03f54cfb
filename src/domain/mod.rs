//! Domain types that every layer speaks — a resource and its registry, what a cache entry is
//! keyed by, what an invalidation covers, secrets. This module imports nothing else of the
//! crate: storage and configuration depend on it, never on the HTTP layer above them.

mod resource;
mod secret;
mod webhook_secret;

use std::sync::Arc;

pub use self::resource::{
    AVAILABILITY, DEFAULT_RESOURCES, RESERVED_NAMES, Resource, ResourceDecl, Resources,
    check_biz_path, check_name,
};
pub use self::secret::Secret;
pub use self::webhook_secret::{HmacSha256, WebhookSecret};

/// Longest item id worth asking Biz about; longer ones cannot exist there.
pub const MAX_ID_LEN: usize = 128;

/// Whether an id can name a Biz item: short, printable, no spaces, and not a dot segment
/// (`.` and `..` would be dropped by any URL builder and reach another path).
pub fn is_plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_graphic())
        && id != "."
        && id != ".."
}

/// What one cache entry holds: a store's list of a resource, or one item of it, or (for the
/// internal availability resource) one availability query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub store_id: i64,
    pub resource: Resource,
    /// `None` for the list.
    pub id: Option<Arc<str>>,
}

impl CacheKey {
    pub fn list(store_id: i64, resource: Resource) -> Self {
        Self {
            store_id,
            resource,
            id: None,
        }
    }

    pub fn item(store_id: i64, resource: Resource, id: &str) -> Self {
        Self {
            store_id,
            resource,
            id: Some(Arc::from(id)),
        }
    }

    /// The generation that guards this key (see `db::Generation`).
    pub fn generation_key(&self) -> (i64, Resource) {
        (self.store_id, self.resource)
    }
}

/// What an invalidation covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Everything the store has cached.
    Store,
    /// One resource: the list and every item.
    Resource(Resource),
    /// One item and the list that contains it.
    Item(Resource, String),
}

impl Scope {
    /// `(resource, item)` columns of the invalidation feed; `None` means "all".
    pub fn to_columns(&self) -> (Option<&'static str>, Option<&str>) {
        match self {
            Scope::Store => (None, None),
            Scope::Resource(r) => (Some(r.as_str()), None),
            Scope::Item(r, id) => (Some(r.as_str()), Some(id)),
        }
    }

    /// The inverse of [`Scope::to_columns`] against this instance's registry; a resource it
    /// does not know widens to the whole store.
    pub fn from_columns(
        resources: &Resources,
        resource: Option<&str>,
        item: Option<String>,
    ) -> Scope {
        match (resource.and_then(|r| resources.find(r)), item) {
            (Some(r), Some(id)) => Scope::Item(r, id),
            (Some(r), None) => Scope::Resource(r),
            (None, _) => Scope::Store,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_and_item_keys_differ_but_share_a_generation() {
        let staff = Resources::defaults().staff();
        let list = CacheKey::list(1, staff);
        let item = CacheKey::item(1, staff, "stf_1");
        assert_ne!(list, item);
        assert_eq!(list.generation_key(), item.generation_key());
        assert_ne!(
            CacheKey::list(2, staff).generation_key(),
            list.generation_key()
        );
    }

    #[test]
    fn dot_segments_and_odd_ids_are_implausible() {
        for bad in [".", "..", "", "a b", "a\u{7f}", &"x".repeat(129)] {
            assert!(!is_plausible_id(bad), "{bad:?}");
        }
        for good in ["svc_1", "...", ".a", "a.", "42"] {
            assert!(is_plausible_id(good), "{good:?}");
        }
    }

    #[test]
    fn feed_columns_round_trip() {
        let r = Resources::defaults();
        for scope in [
            Scope::Store,
            Scope::Resource(r.products()),
            Scope::Item(r.services(), "svc_1".into()),
            Scope::Resource(r.availability()),
        ] {
            let (res, item) = scope.to_columns();
            assert_eq!(
                Scope::from_columns(&r, res, item.map(str::to_string)),
                scope
            );
        }
        assert_eq!(Scope::from_columns(&r, Some("events"), None), Scope::Store);
    }
}
