//! Browser origins (CONTRACT §14): parsing, normalising and matching `scheme://host[:port]`.
//!
//! A leaf module: the admin API normalises what a merchant lists, the tenant resolver keeps each
//! store's list ready, and the request layer matches a request's `Origin` against it. Matching
//! allocates nothing, since it runs on every storefront request that carries an `Origin`.

/// At most this many origins per store.
pub const MAX_ALLOWED_ORIGINS: usize = 20;

/// An origin split into its parts, borrowed from the text it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginParts<'a> {
    pub https: bool,
    /// As written (compare it ignoring ASCII case).
    pub host: &'a str,
    /// `None` for the scheme's default port (80, 443) or none written.
    pub port: Option<u16>,
}

/// Parses `http(s)://host[:port]`: no path, no trailing slash, no user info, no query.
pub fn parse(origin: &str) -> Option<OriginParts<'_>> {
    let (scheme, rest) = origin.split_once("://")?;
    let https = if scheme.eq_ignore_ascii_case("https") {
        true
    } else if scheme.eq_ignore_ascii_case("http") {
        false
    } else {
        return None;
    };
    let (host, port) = if let Some(after) = rest.strip_prefix('[') {
        // An IPv6 literal.
        let (inside, tail) = after.split_once(']')?;
        // An IPv6 address in hexadecimal groups (no embedded IPv4, no zone): what a browser
        // writes in an `Origin`.
        if !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
            || inside.parse::<std::net::Ipv6Addr>().is_err()
        {
            return None;
        }
        let port = match tail {
            "" => None,
            t => Some(t.strip_prefix(':')?),
        };
        (&rest[..inside.len() + 2], port)
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && (host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
        && !host.starts_with('.')
        && !host.ends_with('.')
        && !host.contains("..");
    if !host_ok {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u16 = p.parse().ok()?;
            if n == 0 {
                return None;
            }
            Some(n)
        }
    };
    let default = if https { 443 } else { 80 };
    Some(OriginParts {
        https,
        host,
        port: port.filter(|p| *p != default),
    })
}

/// The canonical text of an origin: scheme and host in lower case, a default port dropped.
pub fn normalise(origin: &str) -> Option<String> {
    let p = parse(origin)?;
    let scheme = if p.https { "https" } else { "http" };
    let host = p.host.to_ascii_lowercase();
    Some(match p.port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// Whether `origin` (as a browser sent it) is the normalised origin `allowed`.
pub fn matches(allowed: &str, origin: &OriginParts<'_>) -> bool {
    let scheme = if origin.https { "https://" } else { "http://" };
    let Some(rest) = allowed.strip_prefix(scheme) else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !rest.ends_with(']') => (h, p.parse().ok()),
        _ => (rest, None),
    };
    host.eq_ignore_ascii_case(origin.host) && port == origin.port
}

/// Parses a merchant's list: at most [`MAX_ALLOWED_ORIGINS`], each an origin; answers them
/// normalised, duplicates dropped, or the first bad entry's index.
pub fn parse_list(raw: &[String]) -> Result<Vec<String>, ListError> {
    if raw.len() > MAX_ALLOWED_ORIGINS {
        return Err(ListError::TooMany);
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, entry) in raw.iter().enumerate() {
        let normalised = normalise(entry).ok_or(ListError::Bad(i))?;
        if !out.contains(&normalised) {
            out.push(normalised);
        }
    }
    Ok(out)
}

#[derive(Debug, PartialEq, Eq)]
pub enum ListError {
    TooMany,
    Bad(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising() {
        assert_eq!(
            normalise("HTTPS://Shop.Example.com:443").as_deref(),
            Some("https://shop.example.com")
        );
        assert_eq!(
            normalise("http://localhost:80").as_deref(),
            Some("http://localhost")
        );
        assert_eq!(
            normalise("http://localhost:3000").as_deref(),
            Some("http://localhost:3000")
        );
        assert_eq!(
            normalise("https://example.com:80").as_deref(),
            Some("https://example.com:80")
        );
        assert_eq!(
            normalise("http://[::1]:8080").as_deref(),
            Some("http://[::1]:8080")
        );
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://example.com/",
            "https://example.com/path",
            "https://",
            "https://exa mple.com",
            "https://example.com:",
            "https://example.com:99999",
            "https://user@example.com",
            "https://example.com?x",
            "null",
            "https://a..b",
            "http://[cd41e9dce2]",
            "http://[1:2]",
            "http://[]",
            "http://[::ffff:1.2.3.4]",
        ] {
            assert_eq!(normalise(bad), None, "{bad}");
        }
    }

    #[test]
    fn matching_ignores_case_and_default_ports() {
        let allowed = "https://shop.example.com";
        assert!(matches(
            allowed,
            &parse("https://SHOP.example.com:443").unwrap()
        ));
        assert!(!matches(
            allowed,
            &parse("http://shop.example.com").unwrap()
        ));
        assert!(!matches(
            allowed,
            &parse("https://shop.example.com:8443").unwrap()
        ));
        let allowed = "http://localhost:3000";
        assert!(matches(allowed, &parse("http://localhost:3000").unwrap()));
        assert!(!matches(allowed, &parse("http://localhost").unwrap()));
        assert!(matches(
            "http://[::1]:8080",
            &parse("http://[::1]:8080").unwrap()
        ));
        assert!(matches("http://[::1]", &parse("http://[::1]").unwrap()));
    }

    #[test]
    fn lists() {
        let list = |v: &[&str]| parse_list(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            list(&["https://a.com", "HTTPS://A.com:443"]).unwrap(),
            ["https://a.com"]
        );
        assert_eq!(list(&["https://a.com", "a.com"]), Err(ListError::Bad(1)));
        let many: Vec<String> = (0..21).map(|i| format!("https://a{i}.com")).collect();
        assert_eq!(parse_list(&many), Err(ListError::TooMany));
    }
}
