//! What of a page's URL and referrer is kept: query strings can carry emails, tokens and
//! order numbers, so only campaign parameters (`utm_*`) survive, and the fragment and any
//! `user:password@` go. Applied once, when an event is parsed, so nothing else is ever stored.

/// Query parameters kept, by name prefix.
const KEPT_PREFIXES: [&str; 1] = ["utm_"];

/// The URL without its fragment, credentials and any query parameter not on the allow-list.
/// Relative URLs (`/services?x=1`) are handled like absolute ones; text that is not a URL is
/// cut at its first `?` or `#`.
pub fn redact(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url)
        && !parsed.cannot_be_a_base()
    {
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        parsed.set_fragment(None);
        let query = parsed.query().map(kept_query);
        parsed.set_query(query.as_deref().filter(|q| !q.is_empty()));
        return parsed.into();
    }
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let (base, rest) = url.split_at(end);
    let query = rest
        .strip_prefix('?')
        .map(|q| kept_query(q.split('#').next().unwrap_or_default()))
        .filter(|q| !q.is_empty());
    match query {
        Some(q) => format!("{base}?{q}"),
        None => base.to_string(),
    }
}

fn kept_query(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| {
            let name = pair
                .split('=')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            KEPT_PREFIXES.iter().any(|p| name.starts_with(p))
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn only_campaign_parameters_survive() {
        assert_eq!(
            redact("https://shop.example/services/x?email=a%40b.c&utm_source=ig&token=1#top"),
            "https://shop.example/services/x?utm_source=ig"
        );
        assert_eq!(
            redact("https://user:pw@shop.example/?q=secret"),
            "https://shop.example/"
        );
        assert_eq!(
            redact("/services?utm_campaign=spring&UTM_Medium=x&reset=abc#f"),
            "/services?utm_campaign=spring&UTM_Medium=x"
        );
        assert_eq!(redact("/about?session=1"), "/about");
        assert_eq!(redact("/plain"), "/plain");
        assert_eq!(redact("mailto:x@y.z?subject=hi"), "mailto:x@y.z");
    }
}
