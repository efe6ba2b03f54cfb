//! The catalog's resources (CONTRACT §12): `services`, `products` and `staff` always, plus
//! whatever the operator declares. A [`Resources`] registry is built once from the
//! configuration; a [`Resource`] is a copyable handle into it, so a cache key costs no
//! allocation and no reference count.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;

/// Always declared, in this order (their registry indices are 0, 1, 2).
pub const DEFAULT_RESOURCES: [&str; 3] = ["services", "products", "staff"];

/// Path segments of the storefront and webhook routes that no declared resource may take.
pub const RESERVED_NAMES: [&str; 5] = ["store", "booking", "analytics", "availability", "bookings"];

/// What the registry holds for one resource.
#[derive(Debug)]
pub struct ResourceDef {
    name: String,
    biz_path: String,
    ttl: Option<Duration>,
    index: usize,
    routable: bool,
}

/// A declared resource. Compares, hashes and orders by name.
#[derive(Clone, Copy)]
pub struct Resource(&'static ResourceDef);

impl Resource {
    pub fn as_str(self) -> &'static str {
        &self.0.name
    }

    /// Where Biz serves it, below `/biz-api/v1/` (may contain `/`).
    pub fn biz_path(self) -> &'static str {
        &self.0.biz_path
    }

    /// Its own freshness, when declared with `ttl_secs`.
    pub fn ttl(self) -> Option<Duration> {
        self.0.ttl
    }

    /// Position in [`Resources::all`]: a dense index for per-resource tables.
    pub fn index(self) -> usize {
        self.0.index
    }

    /// False for the store's own internal entries (availability), which have no catalog
    /// routes, webhooks or purge of their own.
    pub fn is_catalog(self) -> bool {
        self.0.routable
    }
}

impl PartialEq for Resource {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0) || self.0.name == other.0.name
    }
}

impl Eq for Resource {}

impl Hash for Resource {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl PartialOrd for Resource {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Resource {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.name.cmp(&other.0.name)
    }
}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Resource({})", self.0.name)
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.name)
    }
}

impl Serialize for Resource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.name)
    }
}

/// One declaration as the operator wrote it (config file entry or `MANGO_RESOURCES` name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDecl {
    pub name: String,
    pub biz_path: Option<String>,
    pub ttl_secs: Option<u64>,
}

impl ResourceDecl {
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            biz_path: None,
            ttl_secs: None,
        }
    }
}

/// `[a-z][a-z0-9_]{0,31}`, not reserved.
pub fn check_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let shaped = (1..=32).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_');
    if !shaped {
        return Err(format!(
            "resource name {:?} must match [a-z][a-z0-9_]{{0,31}}",
            shorten(name)
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(format!("resource name {name:?} is reserved"));
    }
    Ok(())
}

/// `[a-z0-9][a-z0-9_/-]{0,63}` without `//`.
pub fn check_biz_path(path: &str) -> Result<(), String> {
    let b = path.as_bytes();
    let shaped = (1..=64).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'/' | b'-')
        })
        && !path.contains("//");
    if shaped {
        Ok(())
    } else {
        Err(format!(
            "biz_path {:?} must match [a-z0-9][a-z0-9_/-]{{0,63}} without `//`",
            shorten(path)
        ))
    }
}

fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Every resource this instance serves, defaults first, in declaration order.
#[derive(Clone)]
pub struct Resources {
    all: Arc<[Resource]>,
    catalog: usize,
}

impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.catalog().iter()).finish()
    }
}

/// The internal resource under which availability answers are cached (never routable).
pub const AVAILABILITY: &str = "availability";

impl Resources {
    /// `services`, `products`, `staff` with default options.
    pub fn defaults() -> Self {
        static DEFAULTS: OnceLock<Resources> = OnceLock::new();
        DEFAULTS
            .get_or_init(|| Self::declare(&[]).expect("the defaults are valid"))
            .clone()
    }

    /// The defaults plus `decls` (already merged: one entry per name). A declaration of a
    /// default gives it its options. Names and paths are checked here; the caller names the
    /// setting in its error.
    pub fn declare(decls: &[ResourceDecl]) -> Result<Self, String> {
        let mut merged: Vec<ResourceDecl> = DEFAULT_RESOURCES
            .iter()
            .map(|n| ResourceDecl::named(*n))
            .collect();
        for decl in decls {
            check_name(&decl.name)?;
            if let Some(path) = &decl.biz_path {
                check_biz_path(path)?;
            }
            if decl.ttl_secs == Some(0) {
                return Err(format!(
                    "ttl_secs of {:?} must be a positive integer",
                    decl.name
                ));
            }
            match merged.iter_mut().find(|m| m.name == decl.name) {
                Some(existing) if DEFAULT_RESOURCES.contains(&decl.name.as_str()) => {
                    *existing = decl.clone()
                }
                Some(_) => return Err(format!("resource {:?} is declared twice", decl.name)),
                None => merged.push(decl.clone()),
            }
        }
        let catalog = merged.len();
        merged.push(ResourceDecl::named(AVAILABILITY));
        let all: Vec<Resource> = merged
            .into_iter()
            .enumerate()
            .map(|(index, d)| {
                let def = ResourceDef {
                    biz_path: d.biz_path.unwrap_or_else(|| d.name.clone()),
                    routable: index < catalog,
                    name: d.name,
                    ttl: d.ttl_secs.map(Duration::from_secs),
                    index,
                };
                // Registries are built once per configuration; leaking makes handles `Copy`.
                Resource(Box::leak(Box::new(def)))
            })
            .collect();
        Ok(Self {
            all: all.into(),
            catalog,
        })
    }

    /// A declared catalog resource by its path segment.
    pub fn parse(&self, name: &str) -> Option<Resource> {
        self.catalog().iter().copied().find(|r| r.as_str() == name)
    }

    /// The catalog resources (routes, webhooks, purge), defaults first.
    pub fn catalog(&self) -> &[Resource] {
        &self.all[..self.catalog]
    }

    /// Every resource the cache keeps, the internal availability one last.
    pub fn all(&self) -> &[Resource] {
        &self.all
    }

    pub fn services(&self) -> Resource {
        self.all[0]
    }

    pub fn products(&self) -> Resource {
        self.all[1]
    }

    pub fn staff(&self) -> Resource {
        self.all[2]
    }

    pub fn availability(&self) -> Resource {
        self.all[self.catalog]
    }

    /// Any resource of this registry by name, the internal one included (feed entries).
    pub fn find(&self, name: &str) -> Option<Resource> {
        self.all.iter().copied().find(|r| r.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_first_with_fixed_indices() {
        let r = Resources::defaults();
        assert_eq!(r.services().as_str(), "services");
        assert_eq!(r.products().index(), 1);
        assert_eq!(r.staff().index(), 2);
        assert_eq!(r.catalog().len(), 3);
        assert_eq!(r.parse("Services"), None);
        assert_eq!(r.parse("availability"), None);
        assert_eq!(r.find("availability"), Some(r.availability()));
    }

    #[test]
    fn declarations_extend_and_configure() {
        let r = Resources::declare(&[
            ResourceDecl {
                name: "events".into(),
                biz_path: Some("catalog/events".into()),
                ttl_secs: Some(60),
            },
            ResourceDecl {
                name: "staff".into(),
                biz_path: None,
                ttl_secs: Some(10),
            },
        ])
        .unwrap();
        let events = r.parse("events").unwrap();
        assert_eq!(events.biz_path(), "catalog/events");
        assert_eq!(events.ttl(), Some(Duration::from_secs(60)));
        assert_eq!(events.index(), 3);
        assert_eq!(r.staff().ttl(), Some(Duration::from_secs(10)));
        assert_eq!(r.catalog().len(), 4);
        assert_eq!(r.availability().index(), 4);
    }

    #[test]
    fn bad_declarations_are_refused() {
        for bad in [
            ResourceDecl::named("Events"),
            ResourceDecl::named("bookings"),
            ResourceDecl::named("store"),
            ResourceDecl::named(""),
            ResourceDecl::named("9lives"),
            ResourceDecl::named("a".repeat(33)),
            ResourceDecl {
                name: "x".into(),
                biz_path: Some("a//b".into()),
                ttl_secs: None,
            },
            ResourceDecl {
                name: "x".into(),
                biz_path: Some("/abs".into()),
                ttl_secs: None,
            },
            ResourceDecl {
                name: "x".into(),
                biz_path: None,
                ttl_secs: Some(0),
            },
        ] {
            assert!(
                Resources::declare(std::slice::from_ref(&bad)).is_err(),
                "{bad:?}"
            );
        }
        let twice = [ResourceDecl::named("events"), ResourceDecl::named("events")];
        assert!(Resources::declare(&twice).is_err());
        assert!(Resources::declare(&[ResourceDecl::named("a".repeat(32))]).is_ok());
    }

    #[test]
    fn handles_compare_by_name_across_registries() {
        let a = Resources::defaults();
        let b = Resources::declare(&[ResourceDecl::named("events")]).unwrap();
        assert_eq!(a.services(), b.services());
        assert_ne!(a.services(), b.staff());
    }
}
