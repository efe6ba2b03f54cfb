//! Store settings as the admin API accepts them; each type is valid by construction.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::db::StoreRecord;
use crate::error::ApiError;
use crate::tenant::is_valid_slug;

/// Largest theme document accepted, as JSON text.
pub const MAX_THEME_BYTES: usize = 32 * 1024;
pub const DEFAULT_TEMPLATE: &str = "classic";
/// Longest store name, in characters once trimmed.
pub const MAX_STORE_NAME: usize = 200;

pub struct StoreSlug(pub String);

impl StoreSlug {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        if is_valid_slug(raw) {
            Ok(Self(raw.to_string()))
        } else {
            Err(ApiError::invalid(
                "`slug` must match [a-z0-9][a-z0-9-]{1,62}",
            ))
        }
    }
}

pub fn parse_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty()
        || name.chars().count() > MAX_STORE_NAME
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(format!(
            "`name` must be 1 to {MAX_STORE_NAME} printable characters"
        )));
    }
    Ok(name.to_string())
}

pub fn parse_business_id(raw: &str) -> Result<String, ApiError> {
    if raw.is_empty() || raw.len() > 128 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "`biz_business_id` must be 1 to 128 printable ASCII characters",
        ));
    }
    Ok(raw.to_string())
}

/// Templates are free-form names (themes ship their own), kept to a safe identifier shape.
pub fn parse_template(raw: &str) -> Result<String, ApiError> {
    let b = raw.as_bytes();
    let ok = (1..=64).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_');
    if ok {
        Ok(raw.to_string())
    } else {
        Err(ApiError::invalid(
            "`template` must match [a-z0-9][a-z0-9_-]{0,63}",
        ))
    }
}

/// A theme is a JSON object of at most 32 KiB; answers its compact text.
pub fn parse_theme(value: &serde_json::Value) -> Result<String, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid("`theme` must be a JSON object"));
    }
    let text = value.to_string();
    if text.len() > MAX_THEME_BYTES {
        return Err(ApiError::invalid(format!(
            "`theme` must be at most {MAX_THEME_BYTES} bytes of JSON"
        )));
    }
    Ok(text)
}

/// A host name: dot-separated labels of letters, digits and inner hyphens, at least two
/// labels, 253 characters at most, and not `MANGO_BASE_DOMAIN` or a name under it (those
/// resolve by slug and could never reach the store). Stored lower-case.
pub fn parse_custom_domain(raw: &str, base_domain: &str) -> Result<String, ApiError> {
    let host = raw.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let labels: Vec<&str> = host.split('.').collect();
    let ok = host.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| label_ok(l))
        && !labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|c| c.is_ascii_digit()));
    if !ok {
        return Err(ApiError::invalid(
            "`custom_domain` must be a valid host name such as shop.example.com",
        ));
    }
    if host == base_domain || host.ends_with(&format!(".{base_domain}")) {
        return Err(ApiError::invalid(format!(
            "`custom_domain` cannot be {base_domain} or under it; those names resolve by slug"
        )));
    }
    Ok(host)
}

/// `allowed_origins` (CONTRACT §14): at most 20 origins `scheme://host[:port]`, answered
/// normalised (lower-case scheme and host, default port dropped, duplicates dropped).
pub fn parse_allowed_origins(raw: &[String]) -> Result<Vec<String>, ApiError> {
    use crate::origin::{ListError, MAX_ALLOWED_ORIGINS, parse_list};
    parse_list(raw).map_err(|e| match e {
        ListError::TooMany => ApiError::invalid(format!(
            "`allowed_origins` may list at most {MAX_ALLOWED_ORIGINS} origins"
        )),
        ListError::Bad(i) => ApiError::invalid(format!(
            "`allowed_origins[{i}]` must be an origin scheme://host[:port] (http or https, \
             no path, no trailing slash)"
        )),
    })
}

/// A Unix-milliseconds time as RFC 3339 (UTC).
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A store as the admin API shows it.
#[derive(Serialize)]
pub struct StoreView {
    pub slug: String,
    pub name: String,
    pub biz_business_id: String,
    pub template: String,
    pub theme: serde_json::Value,
    pub custom_domain: Option<String>,
    pub is_published: bool,
    pub allowed_origins: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<StoreRecord> for StoreView {
    fn from(r: StoreRecord) -> Self {
        Self {
            theme: serde_json::from_str(&r.theme).unwrap_or_default(),
            slug: r.slug,
            name: r.name,
            biz_business_id: r.biz_business_id,
            template: r.template,
            custom_domain: r.custom_domain,
            is_published: r.is_published,
            allowed_origins: r.allowed_origins,
            created_at: rfc3339(r.created_at_ms),
            updated_at: rfc3339(r.updated_at_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        let base = "mango.localhost";
        assert_eq!(
            parse_custom_domain("Shop.Example.COM", base).unwrap(),
            "shop.example.com"
        );
        assert!(parse_custom_domain("mango.localhost", base).is_err());
        assert!(parse_custom_domain("other.mango.localhost", base).is_err());
        assert!(parse_custom_domain("notmango.localhost", base).is_ok());
        for bad in [
            "localhost",
            "-a.com",
            "a-.com",
            "a..com",
            "exa mple.com",
            "1.2.3.4",
            "",
            "ü.com",
        ] {
            assert!(parse_custom_domain(bad, base).is_err(), "{bad}");
        }
        assert!(parse_custom_domain(&format!("{}.com", "a".repeat(64)), base).is_err());
    }

    #[test]
    fn themes() {
        assert!(parse_theme(&serde_json::json!({"color": "#fff"})).is_ok());
        assert!(parse_theme(&serde_json::json!([1])).is_err());
        assert!(parse_theme(&serde_json::json!({"x": "a".repeat(MAX_THEME_BYTES)})).is_err());
    }

    #[test]
    fn templates() {
        assert!(parse_template("classic").is_ok());
        assert!(parse_template("spa_2").is_ok());
        assert!(parse_template("").is_err());
        assert!(parse_template("Classic").is_err());
    }
}
