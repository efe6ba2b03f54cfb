//! Which store a storefront request is for: `X-Store-Id: SLUG`, else the `Host` header
//! (a custom domain, or `SLUG.MANGO_BASE_DOMAIN`; a `:port` is ignored).
//!
//! Lookups are cached in memory, unknown hosts included (so a flood of made-up hosts costs one
//! query each per TTL, not one per request), and dropped whenever store settings change.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::{self, HeaderName};
use axum::http::request::Parts;

use crate::app::AppState;
use crate::catalog::Tenant;
use crate::db::{Db, StoreRecord};
use crate::error::ApiError;
use crate::origin;

pub const X_STORE_ID: HeaderName = HeaderName::from_static("x-store-id");

/// Bounds how long another instance's settings change can go unseen here.
const LOOKUP_TTL: Duration = Duration::from_secs(10);

/// Remembered lookups per map; past this, expired ones are dropped, then all of them.
const MAX_LOOKUPS: usize = 100_000;

#[derive(Debug)]
pub struct Store {
    pub record: StoreRecord,
    pub tenant: Tenant,
    /// The slug again, shared with the log context of each request for this store.
    pub slug: Arc<str>,
    /// `SLUG.MANGO_BASE_DOMAIN`, ready for matching browser origins without allocating.
    own_host: Box<str>,
}

impl Store {
    pub fn new(record: StoreRecord, base_domain: &str) -> Self {
        let tenant = Tenant {
            store_id: record.id,
            business_id: Arc::from(record.biz_business_id.as_str()),
        };
        let slug = Arc::from(record.slug.as_str());
        let own_host = format!("{}.{base_domain}", record.slug).into_boxed_str();
        Self {
            record,
            tenant,
            slug,
            own_host,
        }
    }

    /// Whether a browser page on `origin` may read this store's answers (CONTRACT §14): its
    /// own site (custom domain or `SLUG.MANGO_BASE_DOMAIN`, http or https, any port) or one of
    /// its `allowed_origins` (stored normalised). Allocates nothing.
    pub fn allows_origin(&self, origin: &str) -> bool {
        let Some(parts) = origin::parse(origin) else {
            return false;
        };
        parts.host.eq_ignore_ascii_case(&self.own_host)
            || self
                .record
                .custom_domain
                .as_deref()
                .is_some_and(|d| parts.host.eq_ignore_ascii_case(d))
            || self
                .record
                .allowed_origins
                .iter()
                .any(|allowed| origin::matches(allowed, &parts))
    }
}

/// What a `Host` says: a store's own name under the base domain, some other domain (a custom
/// domain, or a shared API host), or nothing usable.
enum HostName<'a> {
    Store(Lookup<'a>),
    Domain(std::borrow::Cow<'a, str>),
    Invalid,
}

/// How a request names its store, borrowed from its headers.
enum Lookup<'a> {
    Slug(std::borrow::Cow<'a, str>),
    Domain(std::borrow::Cow<'a, str>),
}

#[derive(Clone)]
pub struct TenantResolver {
    db: Db,
    base_suffix: Arc<str>,
    by_slug: Arc<LookupCache>,
    by_domain: Arc<LookupCache>,
    known_stores: Arc<Mutex<HashMap<Arc<str>, BTreeSet<i64>>>>,
}

/// A lookup's answer (a store, or none by that name) and when it was read.
type Remembered = (Instant, Option<Arc<Store>>);

/// Store lookups by one kind of name, unknown names included, each kept for [`LOOKUP_TTL`].
///
/// A map behind a read-write lock rather than a moka cache: every storefront request reads it,
/// it changes only on a miss or a settings change, and it needs no eviction policy beyond its
/// bound. A read is a shared lock and a hash lookup, with no bookkeeping per hit.
#[derive(Default)]
struct LookupCache {
    entries: RwLock<HashMap<Box<str>, Remembered>>,
    /// Bumped by every `clear`: a lookup that read the database before a clear must not put
    /// what it read back afterwards.
    epoch: AtomicU64,
}

impl LookupCache {
    fn get(&self, name: &str) -> Option<Option<Arc<Store>>> {
        let entries = self.entries.read().expect("lookup cache lock");
        let (at, store) = entries.get(name)?;
        (at.elapsed() < LOOKUP_TTL).then(|| store.clone())
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Remembers `store` under `name` unless a `clear` happened since `epoch` was read.
    fn insert(&self, name: &str, store: Option<Arc<Store>>, epoch: u64) {
        let mut entries = self.entries.write().expect("lookup cache lock");
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if entries.len() >= MAX_LOOKUPS && !entries.contains_key(name) {
            entries.retain(|_, (at, _)| at.elapsed() < LOOKUP_TTL);
            if entries.len() >= MAX_LOOKUPS {
                // A flood of made-up names: start over rather than grow.
                entries.clear();
            }
        }
        entries.insert(name.into(), (Instant::now(), store));
    }

    fn clear(&self) {
        let mut entries = self.entries.write().expect("lookup cache lock");
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }
}

/// A slug as the storefront may name it: `[a-z0-9][a-z0-9-]{1,62}`.
pub fn is_valid_slug(slug: &str) -> bool {
    let b = slug.as_bytes();
    (2..=63).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

impl TenantResolver {
    pub fn new(db: Db, base_domain: &str) -> Self {
        Self {
            db,
            base_suffix: Arc::from(format!(".{base_domain}")),
            by_slug: Arc::default(),
            by_domain: Arc::default(),
            known_stores: Arc::default(),
        }
    }

    /// Notes that these stores belong to `business_id`. The map only grows (a store's business
    /// never changes, and stores are few), and every store resolved here is in it, so it holds
    /// every store whose catalog this process can have in memory: a webhook arriving while the
    /// database is down still knows whose memory to invalidate.
    pub fn learn(&self, business_id: &str, store_ids: &[i64]) {
        let mut known = self.known_stores.lock().expect("known stores lock");
        match known.get_mut(business_id) {
            Some(ids) => ids.extend(store_ids),
            None => {
                known.insert(Arc::from(business_id), store_ids.iter().copied().collect());
            }
        }
    }

    /// The stores of `business_id` this process has met (see [`TenantResolver::learn`]).
    pub fn known_stores(&self, business_id: &str) -> Vec<i64> {
        let known = self.known_stores.lock().expect("known stores lock");
        known
            .get(business_id)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Forget every cached lookup; called on any settings change.
    pub fn clear(&self) {
        self.by_slug.clear();
        self.by_domain.clear();
    }

    fn lookup_for<'h>(&self, headers: &'h HeaderMap) -> Option<Lookup<'h>> {
        if let Some(id) = headers.get(&X_STORE_ID) {
            let slug = id.to_str().ok()?.trim();
            return is_valid_slug(slug).then_some(Lookup::Slug(Cow::Borrowed(slug)));
        }
        let host = headers.get(header::HOST)?.to_str().ok()?;
        let host = strip_port(host).trim_end_matches('.');
        match self.host_lookup(host) {
            HostName::Store(lookup) => Some(lookup),
            HostName::Domain(domain) => Some(Lookup::Domain(domain)),
            HostName::Invalid => None,
        }
    }

    /// What a host name (port stripped) says about the store.
    fn host_lookup<'h>(&self, host: &'h str) -> HostName<'h> {
        if host.is_empty() || host.len() > 253 {
            return HostName::Invalid;
        }
        // Host names are case-insensitive (`Demo.mango.localhost` is store `demo`); only a
        // host that has capitals pays for the lower-cased copy.
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(host.to_ascii_lowercase())
        } else {
            Cow::Borrowed(host)
        };
        if let Some(slug) = host.strip_suffix(&*self.base_suffix) {
            let slug = match &host {
                Cow::Borrowed(h) => Cow::Borrowed(&h[..slug.len()]),
                Cow::Owned(_) => Cow::Owned(slug.to_owned()),
            };
            return if is_valid_slug(&slug) {
                HostName::Store(Lookup::Slug(slug))
            } else {
                HostName::Invalid
            };
        }
        HostName::Domain(host)
    }

    pub async fn resolve(&self, headers: &HeaderMap) -> Result<Arc<Store>, ApiError> {
        let lookup = self.lookup_for(headers).ok_or(ApiError::StoreNotFound)?;
        self.resolve_lookup(lookup)
            .await?
            .ok_or(ApiError::StoreNotFound)
    }

    /// The store with this slug (an invalid slug is no store).
    pub async fn resolve_slug(&self, slug: &str) -> Result<Option<Arc<Store>>, ApiError> {
        if !is_valid_slug(slug) {
            return Ok(None);
        }
        self.resolve_lookup(Lookup::Slug(Cow::Borrowed(slug))).await
    }

    /// Whether a preflight from `origin` is allowed (CONTRACT §14): for the store the `Host`
    /// names; on a host that names no store (a shared API host), for some store; on a host that
    /// looks like a store's but is none, never.
    pub async fn preflight_allows(
        &self,
        headers: &HeaderMap,
        origin: &str,
    ) -> Result<bool, ApiError> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| strip_port(h).trim_end_matches('.'))
            .unwrap_or_default();
        match self.host_lookup(host) {
            HostName::Store(lookup) => Ok(self
                .resolve_lookup(lookup)
                .await?
                .is_some_and(|store| store.allows_origin(origin))),
            HostName::Invalid => Ok(false),
            HostName::Domain(domain) => match self.resolve_lookup(Lookup::Domain(domain)).await? {
                Some(store) => Ok(store.allows_origin(origin)),
                None => self.some_store_allows(origin).await,
            },
        }
    }

    /// Whether any store allows `origin`: as its own site, or in its `allowed_origins`.
    async fn some_store_allows(&self, origin: &str) -> Result<bool, ApiError> {
        let Some(parts) = origin::parse(origin) else {
            return Ok(false);
        };
        let host = parts.host.to_ascii_lowercase();
        let own_site = match self.host_lookup(&host) {
            HostName::Store(lookup) => self.resolve_lookup(lookup).await?,
            HostName::Domain(domain) => self.resolve_lookup(Lookup::Domain(domain)).await?,
            HostName::Invalid => None,
        };
        if own_site.is_some() {
            return Ok(true);
        }
        let normalised = origin::normalise(origin).unwrap_or_default();
        Ok(self.db.store_allowing_origin(&normalised).await?)
    }

    async fn resolve_lookup(&self, lookup: Lookup<'_>) -> Result<Option<Arc<Store>>, ApiError> {
        let (cache, key) = match &lookup {
            Lookup::Slug(slug) => (&self.by_slug, slug.as_ref()),
            Lookup::Domain(domain) => (&self.by_domain, domain.as_ref()),
        };
        if let Some(found) = cache.get(key) {
            return Ok(found);
        }
        let epoch = cache.epoch();
        let record = match &lookup {
            Lookup::Slug(slug) => self.db.store_by_slug(slug).await?,
            Lookup::Domain(domain) => self.db.store_by_domain(domain).await?,
        };
        if let Some(r) = &record {
            self.learn(&r.biz_business_id, &[r.id]);
        }
        let store = record.map(|r| Arc::new(Store::new(r, &self.base_suffix[1..])));
        cache.insert(key, store.clone(), epoch);
        Ok(store)
    }
}

/// Tails the store-settings change feed (every 200 ms) and forgets this instance's cached
/// store lookups on any change, so settings changed on another instance are in force here
/// within a second, not after [`LOOKUP_TTL`]. Runs until aborted.
pub async fn tail_store_changes(db: Db, tenants: TenantResolver) {
    let mut after = loop {
        match db.latest_store_change().await {
            Ok(id) => break id,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the store-settings feed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match db.store_changes_since(after, 1000).await {
            Ok(changes) => {
                if let Some((last, _)) = changes.last() {
                    after = *last;
                    tenants.clear();
                }
            }
            Err(err) => tracing::debug!(error = %err, "store-settings feed unreadable"),
        }
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // An IPv6 literal: `[::1]:8080`.
        return host
            .split_once(']')
            .map_or(host, |(h, _)| h)
            .trim_start_matches('[');
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// The store a storefront request is for, resolved once per request.
pub struct CurrentStore(pub Arc<Store>);

impl FromRequestParts<AppState> for CurrentStore {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let store = state.tenants.resolve(&parts.headers).await?;
        crate::context::record_store(&store.slug);
        crate::context::check_origin(|origin| store.allows_origin(origin));
        Ok(Self(store))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(is_valid_slug("demo"));
        assert!(is_valid_slug("0-salon"));
        assert!(!is_valid_slug("a"));
        assert!(!is_valid_slug("-salon"));
        assert!(!is_valid_slug("Salon"));
        assert!(!is_valid_slug(&"a".repeat(64)));
        assert!(!is_valid_slug("sa lon"));
    }

    #[test]
    fn a_lookup_read_before_a_clear_is_not_remembered_after_it() {
        let cache = LookupCache::default();
        let epoch = cache.epoch();
        cache.clear();
        cache.insert("demo", None, epoch);
        assert!(cache.get("demo").is_none());
        cache.insert("demo", None, cache.epoch());
        assert_eq!(cache.get("demo").map(|s| s.is_none()), Some(true));
    }

    #[test]
    fn the_lookup_cache_stays_bounded() {
        let cache = LookupCache::default();
        for i in 0..MAX_LOOKUPS + 10 {
            cache.insert(&format!("host-{i}"), None, cache.epoch());
        }
        let len = cache.entries.read().unwrap().len();
        assert!(len <= MAX_LOOKUPS, "{len}");
        assert!(cache.get(&format!("host-{}", MAX_LOOKUPS + 9)).is_some());
    }

    fn store(custom_domain: Option<&str>, allowed: &[&str]) -> Store {
        Store::new(
            StoreRecord {
                id: 1,
                slug: "salon".into(),
                name: "Salon".into(),
                biz_business_id: "biz".into(),
                template: "classic".into(),
                theme: "{}".into(),
                custom_domain: custom_domain.map(Into::into),
                is_published: true,
                allowed_origins: allowed.iter().map(|o| o.to_string()).collect(),
                created_at_ms: 0,
                updated_at_ms: 0,
            },
            "mango.localhost",
        )
    }

    #[test]
    fn origins_a_store_allows() {
        let s = store(Some("shop.example.com"), &["https://theme.example.com"]);
        for yes in [
            "https://theme.example.com",
            "HTTPS://Theme.Example.com:443",
            "http://salon.mango.localhost:8080",
            "https://SALON.mango.localhost",
            "http://shop.example.com:3000",
        ] {
            assert!(s.allows_origin(yes), "{yes}");
        }
        for no in [
            "http://theme.example.com",
            "https://theme.example.com:8443",
            "https://other.mango.localhost",
            "https://example.com",
            "ftp://shop.example.com",
            "null",
            "",
        ] {
            assert!(!s.allows_origin(no), "{no}");
        }
        assert!(!store(None, &[]).allows_origin("https://shop.example.com"));
    }

    #[test]
    fn ports_are_ignored() {
        assert_eq!(
            strip_port("demo.mango.localhost:8080"),
            "demo.mango.localhost"
        );
        assert_eq!(strip_port("shop.example.com"), "shop.example.com");
        assert_eq!(strip_port("[::1]:8080"), "::1");
    }
}
