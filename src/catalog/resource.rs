//! The catalog resources the store proxies, and the keys they are cached under.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// `services`, `products` or `staff`: the only catalog paths the store serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    Services,
    Products,
    Staff,
}

impl Resource {
    pub const ALL: [Resource; 3] = [Resource::Services, Resource::Products, Resource::Staff];

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "services" => Some(Self::Services),
            "products" => Some(Self::Products),
            "staff" => Some(Self::Staff),
            _ => None,
        }
    }

    /// Position in [`Resource::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Services => "services",
            Self::Products => "products",
            Self::Staff => "staff",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one cache entry holds: a store's list of a resource, or one item of it.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_known_resources() {
        for r in Resource::ALL {
            assert_eq!(Resource::parse(r.as_str()), Some(r));
        }
        assert_eq!(Resource::parse("Services"), None);
        assert_eq!(Resource::parse("clients"), None);
        assert_eq!(Resource::parse(""), None);
    }

    #[test]
    fn list_and_item_keys_differ_but_share_a_generation() {
        let list = CacheKey::list(1, Resource::Staff);
        let item = CacheKey::item(1, Resource::Staff, "stf_1");
        assert_ne!(list, item);
        assert_eq!(list.generation_key(), item.generation_key());
        assert_ne!(
            CacheKey::list(2, Resource::Staff).generation_key(),
            list.generation_key()
        );
    }
}
