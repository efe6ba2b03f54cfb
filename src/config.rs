//! Configuration from `MANGO_*` environment variables, optionally from a TOML file with the
//! same keys (the environment wins). Every value is parsed once, here, into a typed field; a
//! bad value names its variable in one line, so an operator knows what to fix.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use url::Url;

use crate::connections::ConnectionLimits;
use crate::db::DatabaseUrl;
pub use crate::domain::Secret;
use crate::domain::{ResourceDecl, Resources, WebhookSecret, check_biz_path, check_name};

mod limits;

#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: String,
    pub problem: String,
}

impl ConfigError {
    fn new(var: &str, problem: impl Into<String>) -> Self {
        Self {
            var: var.to_string(),
            problem: problem.into(),
        }
    }
}

/// The raw key/value pairs, before typing: the TOML file first, the environment over it.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: HashMap<String, String>,
    /// The config file's `[[resources]]` entries (CONTRACT §12), checked one by one.
    declared: Vec<ResourceDecl>,
}

impl Settings {
    /// Reads the process environment and, when given, a TOML file.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut settings = match file {
            Some(path) => Self::from_toml_file(path)?,
            None => Self::default(),
        };
        for (key, value) in std::env::vars() {
            if key.starts_with("MANGO_") {
                settings.values.insert(key, value);
            }
        }
        Ok(settings)
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            declared: Vec::new(),
        }
    }

    /// Adds the declarations of a TOML text's `[[resources]]` (as a config file gives them).
    pub fn declare_resources_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e| ConfigError::new("resources", format!("not valid TOML: {e}")))?;
        if let Some(toml::Value::Array(entries)) = table.get("resources") {
            self.declared.extend(resource_decls(entries)?);
        }
        Ok(())
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.values.insert(key.to_string(), value.into());
    }

    fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
        })?;
        let table: toml::Table = text.parse().map_err(|e| {
            ConfigError::new(
                "--config",
                format!("{} is not valid TOML: {e}", path.display()),
            )
        })?;
        let mut values = HashMap::new();
        let mut declared = Vec::new();
        for (key, value) in table {
            if let toml::Value::Array(entries) = &value
                && key == "resources"
                && entries.iter().any(toml::Value::is_table)
            {
                declared = resource_decls(entries)?;
                continue;
            }
            // Keys may be written `MANGO_CACHE_TTL_SECS` or `cache_ttl_secs`.
            let upper = key.to_ascii_uppercase();
            let var = if upper.starts_with("MANGO_") {
                upper
            } else {
                format!("MANGO_{upper}")
            };
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => {
                    return Err(ConfigError::new(
                        &var,
                        format!("unsupported TOML value {}", other.type_str()),
                    ));
                }
            };
            values.insert(var, text);
        }
        Ok(Self { values, declared })
    }

    fn get(&self, var: &str) -> Option<&str> {
        self.values
            .get(var)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    fn required(&self, var: &str) -> Result<&str, ConfigError> {
        self.get(var)
            .ok_or_else(|| ConfigError::new(var, "is required but not set"))
    }

    fn parse_or<T: std::str::FromStr>(&self, var: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e| ConfigError::new(var, format!("cannot parse {raw:?}: {e}"))),
        }
    }

    fn secs(&self, var: &str, default: u64) -> Result<Duration, ConfigError> {
        self.parse_or::<u64>(var, default).map(Duration::from_secs)
    }
}

/// The `[[resources]]` entries of a config file: each a table with `name` and optionally
/// `biz_path` and `ttl_secs`; a name at most once. Errors name `resources`.
fn resource_decls(entries: &[toml::Value]) -> Result<Vec<ResourceDecl>, ConfigError> {
    let fail =
        |n: usize, problem: String| ConfigError::new("resources", format!("entry #{n}: {problem}"));
    let mut decls: Vec<ResourceDecl> = Vec::new();
    for (n, entry) in (1..).zip(entries) {
        let Some(table) = entry.as_table() else {
            return Err(fail(n, "must be a table with `name`".into()));
        };
        if let Some(unknown) = table
            .keys()
            .find(|k| !matches!(k.as_str(), "name" | "biz_path" | "ttl_secs"))
        {
            return Err(fail(n, format!("unknown key `{unknown}`")));
        }
        let name = match table.get("name") {
            Some(toml::Value::String(name)) => name.clone(),
            Some(_) => return Err(fail(n, "`name` must be a string".into())),
            None => return Err(fail(n, "has no `name`".into())),
        };
        check_name(&name).map_err(|p| fail(n, p))?;
        let biz_path = match table.get("biz_path") {
            None => None,
            Some(toml::Value::String(path)) => {
                check_biz_path(path).map_err(|p| fail(n, p))?;
                Some(path.clone())
            }
            Some(_) => return Err(fail(n, "`biz_path` must be a string".into())),
        };
        let ttl_secs = match table.get("ttl_secs") {
            None => None,
            Some(toml::Value::Integer(secs)) if *secs > 0 => Some(*secs as u64),
            Some(_) => return Err(fail(n, "`ttl_secs` must be a positive integer".into())),
        };
        if decls.iter().any(|d| d.name == name) {
            return Err(fail(n, format!("{name:?} is declared twice")));
        }
        decls.push(ResourceDecl {
            name,
            biz_path,
            ttl_secs,
        });
    }
    Ok(decls)
}

/// The declared resources: the defaults, the config file's entries and `MANGO_RESOURCES`'
/// names, joined (a name in both takes the file's options).
pub fn resources(s: &Settings) -> Result<Resources, ConfigError> {
    let mut decls = s.declared.clone();
    if let Some(raw) = s.get("MANGO_RESOURCES") {
        let fail = |problem: String| ConfigError::new("MANGO_RESOURCES", problem);
        let names: Vec<&str> = raw.split(',').map(str::trim).collect();
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() {
                return Err(fail("has an empty entry".into()));
            }
            check_name(name).map_err(fail)?;
            if names[..i].contains(name) {
                return Err(fail(format!("names {name:?} twice")));
            }
            if !decls.iter().any(|d| d.name == *name) {
                decls.push(ResourceDecl::named(*name));
            }
        }
    }
    Resources::declare(&decls).map_err(|problem| ConfigError::new("resources", problem))
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub filter: String,
    pub json: bool,
}

impl LogConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let json = match s.get("MANGO_LOG_FORMAT") {
            None | Some("text") | Some("pretty") => false,
            Some("json") => true,
            Some(other) => {
                return Err(ConfigError::new(
                    "MANGO_LOG_FORMAT",
                    format!("must be `json` or `text`, not {other:?}"),
                ));
            }
        };
        Ok(Self {
            filter: s.get("MANGO_LOG").unwrap_or("info").to_string(),
            json,
        })
    }
}

pub fn database_url(s: &Settings) -> Result<DatabaseUrl, ConfigError> {
    let raw = s
        .get("MANGO_DATABASE_URL")
        .unwrap_or("sqlite://./data/mango-store.db");
    DatabaseUrl::parse(raw).map_err(|problem| ConfigError::new("MANGO_DATABASE_URL", problem))
}

#[derive(Debug, Clone)]
pub struct BizConfig {
    pub base_url: Url,
    pub api_key: Secret,
    pub timeout: Duration,
    /// Biz calls in flight at once (`MANGO_BIZ_MAX_CONCURRENCY`).
    pub max_concurrency: usize,
    /// How long a call waits for one of those before it is shed (`MANGO_BIZ_QUEUE_TIMEOUT_MS`).
    pub queue_timeout: Duration,
}

impl BizConfig {
    pub const DEFAULT_MAX_CONCURRENCY: usize = 64;
    pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_millis(1000);
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub ttl: Duration,
    pub stale: Duration,
    pub max_entries: u64,
    /// How long a Biz 404 for an item is remembered.
    pub negative_ttl: Duration,
    /// Availability answers (CONTRACT §13): fresh this long, then STALE this long on failure.
    pub availability_ttl: Duration,
    pub availability_stale: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            stale: Duration::from_secs(86_400),
            max_entries: 100_000,
            negative_ttl: Duration::from_secs(30),
            availability_ttl: Duration::from_secs(30),
            availability_stale: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub database: DatabaseUrl,
    pub biz: BizConfig,
    pub webhook_secrets: Vec<WebhookSecret>,
    pub webhook_tolerance: Duration,
    pub admin_token: Secret,
    pub cache: CacheConfig,
    /// The catalog's declared resources (CONTRACT §12).
    pub resources: Resources,
    pub draft_ttl: Duration,
    pub base_domain: String,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// How long SIGTERM waits for in-flight requests.
    pub shutdown_grace: Duration,
    pub log: LogConfig,
    /// Analytics events, page views and sessions are deleted after this many days.
    pub analytics_retention_days: u32,
    /// Serve the reference storefront at `/` of a store's host (CONTRACT §15).
    pub storefront: bool,
    /// The store whose storefront `/` shows on a host that names no store (the demo's
    /// `http://127.0.0.1:8080/`); `MANGO_STOREFRONT_STORE`, not in the contract.
    pub storefront_store: Option<String>,
    /// Per-connection time limits and the cap on open connections.
    pub connections: ConnectionLimits,
    /// How far ahead a booking draft may start (`MANGO_BOOKING_HORIZON_DAYS`).
    pub booking_horizon: Duration,
    /// Proxies in front of the service that append to `X-Forwarded-For`
    /// (`MANGO_TRUSTED_PROXIES`; used only with `trust_forwarded_for`).
    pub trusted_proxies: usize,
    /// Public write routes (`MANGO_RATE_LIMIT_PER_CLIENT`, `MANGO_RATE_LIMIT_PER_STORE`).
    pub rate_limits: crate::ratelimit::RateLimits,
    /// Ended drafts are deleted this long after they ended (`MANGO_DRAFT_RETENTION_DAYS`).
    pub draft_retention: Duration,
    /// Analytics events one store may record per UTC day (`MANGO_ANALYTICS_DAILY_QUOTA`).
    pub analytics_daily_quota: u64,
}

impl Config {
    /// Everything `serve` needs; a missing required variable or a bad value is an error that
    /// names the variable.
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let base_url: Url = s
            .required("MANGO_BIZ_API_URL")?
            .parse()
            .map_err(|e| ConfigError::new("MANGO_BIZ_API_URL", format!("not a URL: {e}")))?;
        if !matches!(base_url.scheme(), "http" | "https") {
            return Err(ConfigError::new(
                "MANGO_BIZ_API_URL",
                "must be an http or https URL",
            ));
        }
        let timeout_ms: u64 = s.parse_or("MANGO_BIZ_TIMEOUT_MS", 3000)?;
        if timeout_ms == 0 {
            return Err(ConfigError::new(
                "MANGO_BIZ_TIMEOUT_MS",
                "must be greater than 0",
            ));
        }
        let (max_concurrency, queue_timeout) = limits::biz_concurrency(s)?;
        let webhook_secrets = s
            .required("MANGO_WEBHOOK_SECRETS")?
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(WebhookSecret::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|problem| ConfigError::new("MANGO_WEBHOOK_SECRETS", problem))?;
        if webhook_secrets.is_empty() {
            return Err(ConfigError::new("MANGO_WEBHOOK_SECRETS", "names no secret"));
        }
        let max_entries: u64 = s.parse_or("MANGO_CACHE_MAX_ENTRIES", 100_000)?;
        if max_entries == 0 {
            return Err(ConfigError::new(
                "MANGO_CACHE_MAX_ENTRIES",
                "must be greater than 0",
            ));
        }
        let base_domain = s
            .get("MANGO_BASE_DOMAIN")
            .unwrap_or("mango.localhost")
            .trim()
            .trim_start_matches('.')
            .to_ascii_lowercase();
        if base_domain.is_empty() {
            return Err(ConfigError::new("MANGO_BASE_DOMAIN", "must not be empty"));
        }
        let analytics_retention_days: u32 = s.parse_or("MANGO_ANALYTICS_RETENTION_DAYS", 395)?;
        if analytics_retention_days == 0 {
            return Err(ConfigError::new(
                "MANGO_ANALYTICS_RETENTION_DAYS",
                "must be greater than 0",
            ));
        }
        Ok(Self {
            bind: s.parse_or("MANGO_BIND", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            database: database_url(s)?,
            biz: BizConfig {
                base_url,
                api_key: Secret::new(s.required("MANGO_BIZ_API_KEY")?),
                timeout: Duration::from_millis(timeout_ms),
                max_concurrency,
                queue_timeout,
            },
            webhook_secrets,
            webhook_tolerance: s.secs("MANGO_WEBHOOK_TOLERANCE_SECS", 300)?,
            admin_token: Secret::new(s.required("MANGO_ADMIN_TOKEN")?),
            cache: CacheConfig {
                ttl: s.secs("MANGO_CACHE_TTL_SECS", 300)?,
                stale: s.secs("MANGO_CACHE_STALE_SECS", 86_400)?,
                max_entries,
                negative_ttl: CacheConfig::default().negative_ttl,
                availability_ttl: s.secs("MANGO_AVAILABILITY_TTL_SECS", 30)?,
                availability_stale: s.secs("MANGO_AVAILABILITY_STALE_SECS", 300)?,
            },
            resources: resources(s)?,
            draft_ttl: s.secs("MANGO_DRAFT_TTL_SECS", 900)?,
            base_domain,
            trust_forwarded_for: s.parse_or("MANGO_TRUST_FORWARDED_FOR", false)?,
            shutdown_grace: s.secs("MANGO_SHUTDOWN_GRACE_SECS", 25)?,
            log: LogConfig::from_settings(s)?,
            analytics_retention_days,
            storefront: s.parse_or("MANGO_STOREFRONT", false)?,
            storefront_store: s
                .get("MANGO_STOREFRONT_STORE")
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            connections: limits::connection_limits(s)?,
            booking_horizon: limits::booking_horizon(s)?,
            trusted_proxies: s.positive("MANGO_TRUSTED_PROXIES", 1)? as usize,
            rate_limits: limits::rate_limits(s)?,
            draft_retention: limits::draft_retention(s)?,
            analytics_daily_quota: s.positive("MANGO_ANALYTICS_DAILY_QUOTA", 200_000)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Settings {
        Settings::from_pairs([
            ("MANGO_BIZ_API_URL", "http://127.0.0.1:9000"),
            ("MANGO_BIZ_API_KEY", "key"),
            (
                "MANGO_WEBHOOK_SECRETS",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
            ("MANGO_ADMIN_TOKEN", "admin"),
        ])
    }

    #[test]
    fn defaults_apply() {
        let config = Config::from_settings(&base()).unwrap();
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.cache.ttl, Duration::from_secs(300));
        assert_eq!(config.cache.stale, Duration::from_secs(86_400));
        assert_eq!(config.biz.timeout, Duration::from_millis(3000));
        assert_eq!(config.base_domain, "mango.localhost");
        assert!(matches!(config.database, DatabaseUrl::Sqlite { .. }));
    }

    #[test]
    fn errors_name_the_variable() {
        for (var, value) in [
            ("MANGO_CACHE_TTL_SECS", "-1"),
            ("MANGO_WEBHOOK_SECRETS", "whsec_not base64!"),
            ("MANGO_DATABASE_URL", "postgres://x/y"),
            ("MANGO_BIND", "nowhere"),
            ("MANGO_LOG_FORMAT", "xml"),
        ] {
            let mut s = base();
            s.set(var, value);
            let err = Config::from_settings(&s).unwrap_err();
            assert_eq!(err.var, var, "{err}");
        }
        let mut s = base();
        s.set("MANGO_ADMIN_TOKEN", "");
        assert_eq!(
            Config::from_settings(&s).unwrap_err().var,
            "MANGO_ADMIN_TOKEN"
        );
    }

    #[test]
    fn resources_join_the_file_and_the_variable() {
        let mut s = base();
        s.declare_resources_toml(
            "[[resources]]\nname = \"events\"\nttl_secs = 60\n[[resources]]\nname = \"staff\"\nttl_secs = 5\n[[resources]]\nname = \"hours\"\nbiz_path = \"shop/working-hours\"\n",
        )
        .unwrap();
        s.set("MANGO_RESOURCES", "venues, events");
        let r = Config::from_settings(&s).unwrap().resources;
        let names: Vec<&str> = r.catalog().iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            ["services", "products", "staff", "events", "hours", "venues"]
        );
        assert_eq!(
            r.parse("events").unwrap().ttl(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(r.staff().ttl(), Some(Duration::from_secs(5)));
        assert_eq!(r.parse("hours").unwrap().biz_path(), "shop/working-hours");
    }

    #[test]
    fn bad_declarations_name_their_setting() {
        for raw in ["a,,b", "a,a", "Bad", "bookings", ","] {
            let mut s = base();
            s.set("MANGO_RESOURCES", raw);
            assert_eq!(
                Config::from_settings(&s).unwrap_err().var,
                "MANGO_RESOURCES",
                "{raw}"
            );
        }
        for toml in [
            "[[resources]]\nbiz_path = \"x\"",
            "[[resources]]\nname = \"availability\"",
            "[[resources]]\nname = \"x\"\nttl_secs = 0",
            "[[resources]]\nname = \"x\"\nttl_secs = \"60\"",
            "[[resources]]\nname = \"x\"\nbiz_path = \"a//b\"",
            "[[resources]]\nname = \"x\"\n[[resources]]\nname = \"x\"",
            "[[resources]]\nname = \"x\"\ncolour = \"red\"",
        ] {
            let err = base().declare_resources_toml(toml).unwrap_err();
            assert_eq!(err.var, "resources", "{toml}");
        }
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let config = Config::from_settings(&base()).unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert!(!printed.contains("\"admin\""));
    }
}
